package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent"
	"github.com/paddock-ml/paddock/internal/cli"
	"github.com/spf13/cobra"
)

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent (started by the server or a node provider)",
		// Not a command for people: the server and node providers start it.
		Hidden: true,
		Long: `Run the node agent on a node: it connects to the server with a node token,
reports the node's cores, memory and GPUs, and runs the work assigned to it.
The server starts it for the local target; node providers start it on the
nodes they make. Stop it with SIGTERM: its runs are stopped and reported.`,
		Args: cli.NoArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cfg.NoIsolation {
				// Not root: go on in a user namespace of the agent's own,
				// which lets it hide its files from runs.
				if entered, code := agent.EnterUserNamespace(); entered {
					return cli.Exit(code)
				}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return api.Invalid("log-level", "--log-level must be debug, info, warn or error, not %q", logLevel)
			}
			if cfg.Token == "" {
				cfg.Token = os.Getenv("PADDOCK_NODE_TOKEN")
			}
			if cfg.Server == "" && cfg.ServerFile == "" {
				return api.Invalid("server", "--server or --server-file is required")
			}
			if cfg.WorkDir == "" {
				return api.Invalid("work-dir", "--work-dir is required")
			}
			cfg.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return agent.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "", "server URL")
	f.StringVar(&cfg.ServerFile, "server-file", "", "file holding the server URL, re-read when the server cannot be reached")
	f.StringVar(&cfg.CAFile, "ca-file", "", "file holding the CA certificate (PEM) to trust, and no other, for an https server; re-read with --server-file (unset or missing: the system's roots)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "file holding the node token (or set PADDOCK_NODE_TOKEN)")
	f.StringVar(&cfg.WorkDir, "work-dir", "", "directory for runs, caches and environments")
	f.StringVar(&cfg.PIDFile, "pid-file", "", "write the agent's pid here")
	f.DurationVar(&cfg.KillGrace, "kill-grace", 10*time.Second, "time a run has between SIGTERM and SIGKILL when stopped")
	f.DurationVar(&cfg.OrphanTimeout, "orphan-timeout", 10*time.Minute, "exit when idle and the server has been unreachable this long")
	f.Float64Var(&cfg.Cores, "cores", 0, "cores to offer (default: all)")
	f.Float64Var(&cfg.MemoryGB, "memory-gb", 0, "memory to offer in GiB (default: all)")
	f.BoolVar(&cfg.OneRun, "one-run", false, "exit after the first run ends (Slurm pilot jobs, Kubernetes Jobs)")
	f.StringVar(&cfg.Image, "image", "", "the container image this agent runs in (a Kubernetes pod's): runs asking for it run directly")
	f.DurationVar(&cfg.CheckpointInterval, "checkpoint-interval", 5*time.Second, "upload ./outputs this often while a run runs, when it changed (0: only at the end)")
	f.StringVar(&cfg.Home, "home", "", "HOME for runs and SSH sessions (a compute instance's home directory)")
	f.StringVar(&cfg.SSHListen, "ssh-listen", "", "serve SSH on this address (compute instances)")
	f.StringVar(&cfg.SSHHostKeyFile, "ssh-host-key-file", "", "the SSH host key (made on first use)")
	f.StringVar(&cfg.SSHAuthorizedKeysFile, "ssh-authorized-keys-file", "", "public keys allowed to log in over SSH")
	f.StringVar(&cfg.Address, "address", "", "address other nodes reach this one at (default: the hostname)")
	f.StringVar(&cfg.Owner, "owner", "", "the Paddock user a compute instance belongs to: its home and SSH sessions are theirs")
	f.StringArrayVar(&cfg.Hide, "hide", nil, "a file or directory runs must not see (repeatable); the work dir and the token file are always hidden")
	f.StringVar(&cfg.RunUserPrefix, "run-user-prefix", envOr("PADDOCK_RUN_USER_PREFIX", agent.DefaultRunUserPrefix), "when root: runs of Paddock user U execute as the OS user PREFIX+U, made on first use")
	f.BoolVar(&cfg.NoIsolation, "no-isolation", false, "run every run as the agent's own user, seeing what the agent sees (trusted single-user setups only)")
	f.StringVar(&logLevel, "log-level", "info", "log level")
	withoutClientFlags(cmd)
	cmd.AddCommand(newLaunchCmd())
	return cmd
}

// envOr returns an environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
