package daemon

import "golang.org/x/sys/unix"

// notDumpable keeps processes of the server's user (runs on the local
// target when the server is not root) from reading its memory and
// environment through /proc or ptrace.
func notDumpable() { unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }
