package main

import (
	"os"
	"strconv"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/launch"
	"github.com/paddock-ml/paddock/internal/cli"
	"github.com/spf13/cobra"
)

// newLaunchCmd is `paddock agent launch`: what the node agent runs in a
// run's sandbox to start its processes (internal/agent/launch). Not for
// people; positional arguments only, so the run's command passes through
// untouched.
func newLaunchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "launch",
		Short:  "Start a run's processes (run by the node agent inside a run)",
		Hidden: true,
		Args:   cli.NoArgs(),
	}
	self, _ := os.Executable()
	sub := func(use, short string, min int, run func(args []string) int) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, DisableFlagParsing: true,
			RunE: func(c *cobra.Command, args []string) error {
				if len(args) > 0 && args[0] == "--" {
					args = args[1:]
				}
				if len(args) < min {
					return api.Invalid("args", "usage: paddock agent launch %s", use)
				}
				return cli.Exit(run(args))
			}}
	}
	ints := func(args []string, n int) ([]int, []string, bool) {
		out := make([]int, n)
		for i := range n {
			v, err := strconv.Atoi(args[i])
			if err != nil {
				return nil, nil, false
			}
			out[i] = v
		}
		rest := args[n:]
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		return out, rest, true
	}
	cmd.AddCommand(
		sub("procs COUNT RANK_BASE -- COMMAND...", "Start COUNT processes of COMMAND, with LOCAL_RANK and RANK", 3, func(args []string) int {
			n, rest, ok := ints(args, 2)
			if !ok || len(rest) == 0 {
				os.Stderr.WriteString("[paddock] launch procs: want COUNT RANK_BASE -- COMMAND...\n")
				return 2
			}
			return launch.Procs(n[0], n[1], rest, os.Stdout, os.Stderr)
		}),
		sub("mpirun NODES PER_NODE -- COMMAND...", "Start COMMAND through mpirun on every node of the run (rank 0)", 3, func(args []string) int {
			n, rest, ok := ints(args, 2)
			if !ok || len(rest) == 0 {
				os.Stderr.WriteString("[paddock] launch mpirun: want NODES PER_NODE -- COMMAND...\n")
				return 2
			}
			return launch.MPIRun(self, n[0], n[1], rest, os.Stdout, os.Stderr)
		}),
		sub("mpi-rsh HOST COMMAND...", "mpirun's rsh agent: run COMMAND on the run's node HOST", 2, func(args []string) int {
			return launch.Rsh(args, os.Stdin, os.Stdout, os.Stderr)
		}),
		sub("mpi-worker RANK", "Serve mpirun's launch on this node of the run (ranks above 0)", 1, func(args []string) int {
			n, _, ok := ints(args, 1)
			if !ok {
				os.Stderr.WriteString("[paddock] launch mpi-worker: want RANK\n")
				return 2
			}
			return launch.Serve(n[0], os.Stderr)
		}),
	)
	return cmd
}
