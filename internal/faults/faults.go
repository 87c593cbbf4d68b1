// Package faults lets the end-to-end tests kill a server at a named point
// of its work, exactly as `kill -9` would at that moment: with
// PADDOCK_CRASH_AT=point:n in its environment, the nth time the process
// reaches point (the first, without :n) it sends itself SIGKILL. Without
// the variable, Point costs one comparison.
//
// The points (each named where it is reached):
//
//	dispatch.place    the dispatcher has placed runs in memory, before its commit
//	dispatch.commit   a batch of run changes is committed, before anyone is told
//	nodes.created     a cluster node is recorded and its provider started it, before its agent registers
package faults

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env is the variable that arms a crash point.
const Env = "PADDOCK_CRASH_AT"

var (
	armed, nth = parse(os.Getenv(Env))
	hits       atomic.Int64
)

func parse(v string) (string, int64) {
	name, count, ok := strings.Cut(v, ":")
	if !ok {
		return name, 1
	}
	n, err := strconv.ParseInt(count, 10, 64)
	if err != nil || n < 1 {
		return name, 1
	}
	return name, n
}

// Point is a place a test may kill the process at.
func Point(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) != nth {
		return
	}
	fmt.Fprintf(os.Stderr, "paddock: crash point %s reached (time %d): killing this process with SIGKILL\n", name, nth)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
