// Package cli is the paddock command line: cobra commands that parse flags,
// call the API client and format what comes back, and the two commands
// that start the long-running processes instead (`paddock up`, the
// server, and `paddock agent`, the node agent). It holds no business
// rules; those live behind the API.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/clientconfig"
	"github.com/paddock-ml/paddock/internal/version"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// globals are the flags every command has.
type globals struct {
	server, token, workspace, output, caFile string
}

// Main runs the CLI with args and returns the process exit code. more are
// commands the binary adds that this package knows nothing of (the
// server's `up` and the node's `agent`, which the main package builds).
func Main(args []string, stdout, stderr io.Writer, more ...*cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := Root(more...)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	fmt.Fprintln(stderr, "error: "+err.Error())
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// exitError ends the program with a code after its message was printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Exit is an error that ends the program with code, saying nothing more
// (the command printed what there was to say).
func Exit(code int) error { return exitError{code: code} }

// NoArgs refuses positional arguments with an error that exits 2.
func NoArgs() cobra.PositionalArgs { return exactArgs() }

// Root is the whole command tree, with the binary's own commands added
// (the docs test walks it).
func Root(more ...*cobra.Command) *cobra.Command {
	root := newRoot(&globals{})
	root.AddCommand(more...)
	rejectUnknownCommands(root) // the groups among more too
	return root
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "paddock",
		Short: "Paddock: a self-hosted control plane for machine-learning compute",
		Long: `Paddock runs a workspace server that manages compute targets (autoscaling
clusters, personal instances, attached machines and schedulers) and the
training runs submitted to them.

Start a server with 'paddock up'; it writes ~/.paddock/config so every other
command finds it with no flags.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("paddock {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "server URL (default from ~/.paddock/config, else "+clientconfig.DefaultServer+"; env PADDOCK_SERVER)")
	pf.StringVar(&g.token, "token", "", "bearer token (default from ~/.paddock/config; env PADDOCK_TOKEN)")
	pf.StringVar(&g.workspace, "workspace", "", "workspace (default from ~/.paddock/config, else default; env PADDOCK_WORKSPACE)")
	pf.StringVar(&g.caFile, "ca-file", "", "trust only the CA certificate(s) in this PEM file for an https server (default: the CA in ~/.paddock/config when it names the server, else the system's roots; env "+clientconfig.EnvCAFile+")")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return api.Invalid("flags", "%v (see '%s --help')", err, c.CommandPath())
	})
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch g.output {
		case "table", "json", "yaml":
			return nil
		}
		return api.Invalid("output", "--output must be table, json or yaml, not %q", g.output)
	}
	root.AddCommand(newComputeCmd(g), newRunCmd(g), newQuotaCmd(g), newUserCmd(g), newTokenCmd(g), newAuditCmd(g), newIdentityCmd(g), newWorkspaceCmd(g), newStudioCmd(g))
	// cobra adds these when it executes; add them now so that they get the
	// same treatment as every other command.
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return api.Invalid("command", "unknown help topic %q; see 'paddock --help'", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	})
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	rejectUnknownCommands(root)
	return root
}

// rejectUnknownCommands makes every command group (a command with
// subcommands), the root included, refuse an unknown subcommand with exit 2
// instead of printing its help and exiting 0, so a typo in a script fails.
// A group given no subcommand still prints its help.
func rejectUnknownCommands(c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = unknownCommand
		c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
		if c.Run == nil && c.RunE == nil {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	for _, sub := range c.Commands() {
		rejectUnknownCommands(sub)
	}
}

// unknownCommand is the Args of a command group: any argument is a
// subcommand it does not have. The error names it and suggests the nearest
// one (cobra's SuggestionsFor), or the group's help.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := fmt.Sprintf("see '%s --help'", cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf("did you mean %q?", strings.Join(s, `" or "`))
	}
	return api.Invalid("command", "unknown command %q for %q; %s", args[0], cmd.CommandPath(), hint)
}

// client builds an API client from flags, environment and the config file,
// in that order of precedence.
func (g *globals) client() (*api.Client, error) {
	cfg, path, err := clientconfig.Load()
	if err != nil {
		return nil, err
	}
	pick := func(flag, env, file, def string) string {
		for _, v := range []string{flag, os.Getenv(env), file} {
			if v != "" {
				return v
			}
		}
		return def
	}
	server := pick(g.server, "PADDOCK_SERVER", cfg.Server, clientconfig.DefaultServer)
	opts, err := g.trust(server, cfg, path)
	if err != nil {
		return nil, err
	}
	return api.NewClient(
		server,
		pick(g.token, "PADDOCK_TOKEN", cfg.Token, ""),
		pick(g.workspace, "PADDOCK_WORKSPACE", cfg.Workspace, "default"),
		opts...,
	), nil
}

// trust is the CA the client pins for server: --ca-file, else
// $PADDOCK_CA_FILE, else the config's CA when the config names this
// server. Without one the system's roots are trusted.
func (g *globals) trust(server string, cfg clientconfig.Config, cfgPath string) ([]api.Option, error) {
	var data []byte
	var what string
	switch env := os.Getenv(clientconfig.EnvCAFile); {
	case g.caFile != "" || env != "":
		file := g.caFile
		what = "--ca-file " + file
		if file == "" {
			file, what = env, clientconfig.EnvCAFile+" "+env
		}
		var err error
		if data, err = os.ReadFile(file); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, api.Invalid("ca-file", "%s cannot be read: %v", what, err)
		}
	case cfg.CA != "" && sameServers(server, cfg.Server):
		data, what = []byte(cfg.CA), "the \"ca\" of "+cfgPath
	default:
		return nil, nil
	}
	pool, err := certs.Pool(data)
	if err != nil {
		return nil, api.Invalid("ca-file", "%s is not a CA certificate: %v", what, err)
	}
	return []api.Option{api.WithRootCAs(pool)}, nil
}

// sameServers reports whether every server URL of list is one of those of
// the config (a workspace's replicas, in any order).
func sameServers(list, config string) bool {
	have := api.Servers(strings.ToLower(config))
	want := api.Servers(strings.ToLower(list))
	if len(want) == 0 {
		return false
	}
	for _, u := range want {
		if !slices.Contains(have, u) {
			return false
		}
	}
	return true
}

// exactArgs is cobra.ExactArgs with an error that names what is missing and
// exits 2.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(args) < len(names) {
			return api.Invalid(names[len(args)], "%s is required: %s", names[len(args)], cmd.UseLine())
		}
		return api.Invalid("args", "too many arguments: %s", cmd.UseLine())
	}
}

// isTerminal reports whether w is a terminal, so progress is shown to people
// and kept out of scripts' output.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
