package runs

import (
	"context"
	"fmt"
	"sync"

	"github.com/paddock-ml/paddock/internal/store"
)

// DefaultMaxRunLogBytes is how much log a run may store by default.
const DefaultMaxRunLogBytes = 512 << 20

// logLimit keeps each run's stored log under a size: the lines that would
// pass it are dropped, and one marker line says so. A run goes on running;
// its agent is told the dropped lines were stored, so it sends them once.
type logLimit struct {
	max int64 // 0: no limit
	st  store.Store

	mu   sync.Mutex
	used map[string]int64 // by run: bytes stored or being stored
}

func newLogLimit(max int64, st store.Store) *logLimit {
	return &logLimit{max: max, st: st, used: map[string]int64{}}
}

// maxTracked bounds the runs remembered; forgotten ones are read again.
const maxTracked = 10000

// admit returns the lines of a batch to store (with the marker when the
// batch reaches the limit) and the bytes reserved for them; release gives
// back a reservation whose lines could not be stored.
func (l *logLimit) admit(ctx context.Context, runID string, lines []store.LogLine) ([]store.LogLine, int64, error) {
	if l.max <= 0 || len(lines) == 0 {
		return lines, 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	used, ok := l.used[runID]
	if !ok {
		var err error
		if used, err = l.st.LogBytes(ctx, runID); err != nil {
			return nil, 0, err
		}
		if len(l.used) >= maxTracked {
			clear(l.used)
		}
	}
	if used >= l.max {
		l.used[runID] = used
		return nil, 0, nil // the marker is stored already
	}
	var size int64
	for i, ln := range lines {
		if used+size+int64(len(ln.Text)) > l.max {
			marker := ln
			marker.Stream = "stderr"
			marker.Text = fmt.Sprintf("[paddock] this run's log reached its limit of %s (paddock up --max-run-log-mb); later lines are not kept", mib(l.max))
			kept := append(lines[:i:i], marker)
			size += int64(len(marker.Text))
			l.used[runID] = max(used+size, l.max)
			return kept, size, nil
		}
		size += int64(len(ln.Text))
	}
	l.used[runID] = used + size
	return lines, size, nil
}

// release gives back bytes reserved by admit for lines not stored.
func (l *logLimit) release(runID string, n int64) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.used[runID]; ok {
		l.used[runID] -= n
	}
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
