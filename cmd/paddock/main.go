// Command paddock is Paddock's one binary: the workspace server
// (`paddock up`), the CLI, and the node agent (`paddock agent`, which the
// server and node providers start). It hands its arguments to internal/cli.
package main

import (
	"os"

	"github.com/paddock-ml/paddock/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, newUpCmd(), newAgentCmd(), newStoreCmd()))
}
