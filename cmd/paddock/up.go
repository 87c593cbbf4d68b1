package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/cli"
	"github.com/paddock-ml/paddock/internal/daemon"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newUpCmd() *cobra.Command {
	var dataDir, listen, logLevel, logFormat string
	var nodeLost, preemptEvery, simWait, simBeat time.Duration
	var simOn, tlsOn, insecureListen bool
	var tlsCert, tlsKey, tlsCA string
	var maxLogMB int64
	var auditDays int
	var pprofListen, storeURL string
	var leaseTTL time.Duration
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the workspace server (embedded SQLite store, local provider)",
		Long: `Start a Paddock workspace server in the foreground.

On first start it creates the data dir, the workspace 'default' and an admin
token. Every start writes the server URL and the admin token to
~/.paddock/config (or $PADDOCK_CONFIG), so the CLI works with no flags.
Stop it with Ctrl-C (SIGINT) or SIGTERM; it shuts down cleanly.

It serves plain HTTP on loopback only. With --tls it serves HTTPS with a CA
and server certificate it makes in the data dir on first start, and writes
the CA to the CLI config for the CLI, agents and SDK to pin; --tls-cert and
--tls-key serve a certificate you have instead.

With --store postgres://… (or $PADDOCK_STORE) the workspace lives in that
PostgreSQL database instead, and several servers (replicas) may serve it:
one leads, the others serve reads and forward the rest to it, and one of
them takes over within seconds when the leader dies (docs/ha.md).`,
		Example: `  paddock up
  paddock up --listen 127.0.0.1:9000 --data-dir /srv/paddock
  paddock up --tls --listen 0.0.0.0:8765
  paddock up --listen paddock.example.com:443 --tls-cert fullchain.pem --tls-key key.pem
  PADDOCK_STORE=postgres://paddock:secret@db.example.com/paddock paddock up --tls --listen 0.0.0.0:8765`,
		Args: cli.NoArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return api.Invalid("log-level", "--log-level must be debug, info, warn or error, not %q", logLevel)
			}
			hopts := &slog.HandlerOptions{Level: level}
			var h slog.Handler
			switch logFormat {
			case "text":
				h = slog.NewTextHandler(cmd.ErrOrStderr(), hopts)
			case "json":
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), hopts)
			default:
				return api.Invalid("log-format", "--log-format must be text or json, not %q", logFormat)
			}
			if maxLogMB < 0 || maxLogMB > 1<<30 {
				return api.Invalid("max-run-log-mb", "--max-run-log-mb must be from 0 (no limit) to %d, not %d", 1<<30, maxLogMB)
			}
			if auditDays < 0 || auditDays > 36500 {
				return api.Invalid("audit-retention-days", "--audit-retention-days must be from 0 (keep everything) to 36500, not %d", auditDays)
			}
			if storeURL == "" {
				storeURL = os.Getenv("PADDOCK_STORE")
			}
			if leaseTTL < time.Second || leaseTTL > 5*time.Minute {
				return api.Invalid("lease-ttl", "--lease-ttl must be from 1s to 5m, not %s", leaseTTL)
			}
			if dataDir == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return api.Invalid("data-dir", "cannot find the home directory; pass --data-dir")
				}
				dataDir = filepath.Join(home, ".paddock")
			}
			return daemon.Run(cmd.Context(), daemon.Options{DataDir: dataDir, Listen: listen, Log: slog.New(h), NodeLostAfter: nodeLost, PreemptEvery: preemptEvery,
				Sim: simOn, SimPollWait: simWait, SimHeartbeat: simBeat, PprofListen: pprofListen, MaxRunLogBytes: maxLogMB << 20,
				AuditRetention: time.Duration(auditDays) * 24 * time.Hour, InsecureListen: insecureListen,
				TLS: tlsOn, TLSCertFile: tlsCert, TLSKeyFile: tlsKey, TLSCAFile: tlsCA, Store: storeURL, LeaseTTL: leaseTTL})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "where the server keeps its database, secret key and admin token (default ~/.paddock); replicas of a --store share it")
	f.StringVar(&storeURL, "store", "", "keep the workspace in this PostgreSQL database (postgres://user:password@host/db), which several servers may share, instead of SQLite in the data dir (default $PADDOCK_STORE)")
	f.DurationVar(&leaseTTL, "lease-ttl", 5*time.Second, "with --store: how long a leader that stopped renewing its lease (paused, cut off) holds up a takeover; a leader whose process died is replaced within a second")
	f.StringVar(&listen, "listen", "127.0.0.1:8765", "address to serve on; port 0 picks a free port")
	f.BoolVar(&tlsOn, "tls", false, "serve HTTPS with a CA and server certificate made in the data dir (tls/) on first start; clients pin the CA")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM, chain after it) instead; needs --tls-key")
	f.StringVar(&tlsKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	f.StringVar(&tlsCA, "tls-ca", "", "the CA certificate (PEM) that issued --tls-cert when the system does not trust it: the CLI config and agents pin it")
	f.BoolVar(&insecureListen, "insecure-listen", false, "allow plain HTTP on an address other than loopback (tokens cross the network unencrypted)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&simOn, "sim", false, "enable the sim node provider: in-process simulated agents for load and scale tests (never for real work)")
	f.DurationVar(&simWait, "sim-poll-wait", 25*time.Second, "sim agents: long-poll wait (0: poll every --sim-heartbeat without holding a connection)")
	f.DurationVar(&simBeat, "sim-heartbeat", 10*time.Second, "sim agents: heartbeat interval when --sim-poll-wait is 0")
	f.StringVar(&pprofListen, "pprof-listen", "", "serve Go runtime profiles (/debug/pprof/, unauthenticated) on this address, e.g. 127.0.0.1:6060; off by default")
	f.DurationVar(&preemptEvery, "local-preempt-every", 0, "local provider: preempt a random low-priority node on average this often (demos, soak tests; 0: never)")
	f.Int64Var(&maxLogMB, "max-run-log-mb", runs.DefaultMaxRunLogBytes>>20, "the most log a run may store, in MiB; later lines are dropped with a marker (0: no limit)")
	f.IntVar(&auditDays, "audit-retention-days", 365, "keep audit log entries this many days (0: keep everything)")
	f.DurationVar(&nodeLost, "node-lost-timeout", 60*time.Second, "a node silent this long is lost: its runs fail with reason NodeLost")
	withoutClientFlags(cmd)
	return cmd
}

// withoutClientFlags keeps the CLI's global flags (--server, --token,
// --workspace, --output) out of a command's help: the server and the
// agent do not use them.
func withoutClientFlags(cmd *cobra.Command) {
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.InheritedFlags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
		c.Parent().HelpFunc()(c, args)
	})
}
