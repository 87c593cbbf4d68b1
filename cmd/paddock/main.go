// Command paddock is Paddock's one binary: the workspace server
// (`paddock up`), the CLI, and later the node agent.
package main

import (
	"os"

	"github.com/paddock-ml/paddock/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, newUpCmd(), newAgentCmd())) }
