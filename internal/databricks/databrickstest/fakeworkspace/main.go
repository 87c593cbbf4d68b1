// Command fakeworkspace serves package databrickstest's FAKE Databricks
// workspace on a free loopback port, for tests outside Go (the Python SDK's):
// it prints the URL on stdout and serves until its stdin closes or it is
// signalled. It is a test tool, never built into paddock.
//
//	go run ./internal/databricks/databrickstest/fakeworkspace -token dapi-x -root /tmp/dbfs
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/paddock-ml/paddock/internal/databricks/databrickstest"
)

func main() {
	token := flag.String("token", "", "the access token the fake takes (required)")
	root := flag.String("root", "", "the directory holding the fake's DBFS (required)")
	flag.Parse()
	if *token == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "fakeworkspace: -token and -root are required")
		os.Exit(2)
	}
	f, err := databrickstest.Start(*token, *root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeworkspace:", err)
		os.Exit(1)
	}
	defer f.Close()
	fmt.Println(f.URL)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-done:
	case <-sig:
	}
	for _, r := range f.Refused() {
		fmt.Fprintln(os.Stderr, "REFUSED", r)
	}
}
