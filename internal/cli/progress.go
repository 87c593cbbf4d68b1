package cli

import (
	"fmt"
	"io"
	"sync"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

// showProgress reports whether a command shows progress as it waits: when
// its stdout is a terminal (a person is watching), never for scripts.
// Progress goes to stderr, so it stays out of what stdout carries.
func showProgress(cmd *cobra.Command) bool { return isTerminal(cmd.OutOrStdout()) }

// runProgress returns a progress func for api.Client.WaitRun that prints a
// run's status, and why it waits while it is queued, each time either
// changes. The end state is left to the caller, which reports the outcome.
func runProgress(w io.Writer, id string) func(*api.Run) {
	var last string
	return func(r *api.Run) {
		if r.Status.Terminal() {
			return
		}
		line := fmt.Sprintf("%s: %s", id, r.Status)
		if r.StatusReason != "" {
			line += " (" + r.StatusReason + ")"
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
	}
}

// syncWriter serialises writes from the goroutine that shows progress and
// the one that prints log lines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
