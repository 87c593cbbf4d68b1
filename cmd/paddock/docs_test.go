package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// userDocs is the text users read: the README and docs/*.md.
func userDocs(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	files = append(files, "../../README.md")
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteString("\n")
	}
	return b.String()
}

// docFlag is a long flag as the docs write it: "--name", not preceded by a
// letter, digit or '-' (so "a--b" and the "--" that ends options are not).
var docFlag = regexp.MustCompile(`(?:^|[^\w-])--([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)`)

// otherTools are flags the docs show for programs other than paddock, in
// examples of what a run or a node does. Each says whose it is.
var otherTools = map[string]string{
	"nnodes":      "torchrun, in the multi-node example (clusters.md)",
	"node-rank":   "torchrun, in the multi-node example (clusters.md)",
	"master-addr": "torchrun, in the multi-node example (clusters.md)",
	"master-port": "torchrun, in the multi-node example (clusters.md)",
	"network":     "podman/docker: how a run's container is started (runs.md)",
	"init":        "podman/docker: how a run's container is started (runs.md)",
	"mem":         "sbatch: how a pilot job is sized (slurm.md)",
	"gres":        "sbatch: how a pilot job is sized (slurm.md)",
	"time":        "sbatch: how a pilot job is sized (slurm.md)",
	"epochs":      "an argument of the example train.py (runs.md)",
	"cacert":      "curl: trusting the server's CA (README.md)",
	"deploy-mode": "spark-submit: how a spark target's run is submitted (spark.md)",
	"duration":    "kubectl: a token for Paddock's service account (kubernetes.md)",
	"minify":      "kubectl: the cluster's CA for Paddock's kubeconfig (kubernetes.md)",
	"raw":         "kubectl: the cluster's CA for Paddock's kubeconfig (kubernetes.md)",
}

// cliFlags maps every long flag of every command (the hidden agent's
// included) to the commands that have it, as their --help shows them.
func cliFlags() map[string][]string {
	root := cli.Root(newUpCmd(), newAgentCmd())
	root.InitDefaultVersionFlag()
	root.InitDefaultCompletionCmd("completion")
	out := map[string][]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			out[f.Name] = append(out[f.Name], c.CommandPath())
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// Every flag the CLI has is in the docs, and every paddock flag the docs
// name exists: a flag added, renamed or removed without its docs fails here.
func TestFlagsAndDocsAgree(t *testing.T) {
	docs := userDocs(t)
	documented := map[string]bool{}
	for _, m := range docFlag.FindAllStringSubmatch(docs, -1) {
		documented[m[1]] = true
	}
	flags := cliFlags()
	var missing, unknown []string
	for name, cmds := range flags {
		if name == "help" {
			continue // every command has it; cobra adds it
		}
		if !documented[name] {
			missing = append(missing, "--"+name+" ("+strings.Join(cmds, ", ")+")")
		}
	}
	for name := range documented {
		if flags[name] == nil && otherTools[name] == "" {
			unknown = append(unknown, "--"+name)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("flags not in README.md or docs/*.md:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(unknown) > 0 {
		t.Errorf("flags in README.md or docs/*.md that no paddock command has:\n  %s", strings.Join(unknown, "\n  "))
	}
	for name := range otherTools {
		if !documented[name] {
			t.Errorf("--%s is listed as another tool's flag but the docs no longer show it: drop it from otherTools", name)
		}
		if flags[name] != nil {
			t.Errorf("--%s is listed as another tool's flag but paddock has it too: drop it from otherTools", name)
		}
	}
}
