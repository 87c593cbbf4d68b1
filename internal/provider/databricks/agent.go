package databricks

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// pollWait is how long the server may hold an agent's poll.
const pollWait = 25 * time.Second

// agent is one node's in-server agent.
type agent struct {
	p      *Provider
	client *api.AgentClient
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup

	mu       sync.Mutex
	st       nodeState
	attempts map[string]*attempt // running, by run id
}

// attempt is one attempt the agent runs; stop ends it.
type attempt struct {
	ref      api.AttemptRef
	as       *api.Assignment // nil for an attempt resumed after a restart
	stopped  chan struct{}
	stopOnce sync.Once

	mu sync.Mutex
	// silent attempts are stale: nothing more is reported for them.
	silent bool
	why    string
}

func (at *attempt) stop(why string, silent bool) {
	at.stopOnce.Do(func() {
		at.mu.Lock()
		at.why, at.silent = why, silent
		at.mu.Unlock()
		close(at.stopped)
	})
}

// stopReason is why the attempt was stopped, and whether it is silent.
func (at *attempt) stopReason() (string, bool) {
	at.mu.Lock()
	defer at.mu.Unlock()
	return at.why, at.silent
}

// run says hello, resumes the attempts a previous server left in flight,
// and polls for work until ctx ends.
func (a *agent) run(ctx context.Context) {
	defer a.wg.Done()
	a.mu.Lock()
	for runID, s := range a.st.Attempts {
		a.startLocked(ctx, &attempt{ref: api.AttemptRef{RunID: runID, Attempt: s.Attempt}, stopped: make(chan struct{})})
	}
	a.mu.Unlock()
	for ctx.Err() == nil {
		if !a.hello(ctx) {
			return
		}
		for ctx.Err() == nil {
			work, err := a.client.Poll(ctx, api.AgentPoll{Active: a.active(), WaitMS: int(pollWait / time.Millisecond)})
			if errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrNotFound) {
				break // say hello again
			}
			if err != nil {
				sleep(ctx, nil, time.Second)
				continue
			}
			a.handle(ctx, work)
		}
	}
}

func (a *agent) hello(ctx context.Context) bool {
	for {
		a.mu.Lock()
		h := api.AgentHello{Hostname: "databricks-" + a.st.Target, Cores: a.st.Cores, MemoryGB: a.st.MemoryGB, Version: "databricks", Address: a.st.ID}
		a.mu.Unlock()
		h.Active = a.active()
		if _, err := a.client.Hello(ctx, h); err == nil {
			return true
		} else if ctx.Err() == nil {
			a.log.Debug("hello failed; trying again", "err", err)
		}
		if !sleep(ctx, nil, time.Second) {
			return false
		}
	}
}

// active are the attempts the agent runs or has in flight on Databricks.
func (a *agent) active() []api.AttemptRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	refs := []api.AttemptRef{}
	for _, at := range a.attempts {
		refs = append(refs, at.ref)
	}
	return refs
}

func (a *agent) handle(ctx context.Context, w api.AgentWork) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range w.Stale {
		if at := a.attempts[s.RunID]; at != nil && at.ref.Attempt == s.Attempt {
			at.stop("stale", true)
		}
	}
	for _, c := range w.Cancel {
		if at := a.attempts[c.RunID]; at != nil && at.ref.Attempt == c.Attempt {
			at.stop(c.Reason, false)
		}
	}
	for i := range w.Assignments {
		as := w.Assignments[i]
		cur := a.attempts[as.RunID]
		if cur != nil && cur.ref.Attempt >= as.Attempt {
			if cur.as == nil && cur.ref.Attempt == as.Attempt {
				cur.as = &as // resumed; now with its assignment
			}
			continue
		}
		a.startLocked(ctx, &attempt{ref: api.AttemptRef{RunID: as.RunID, Attempt: as.Attempt}, as: &as, stopped: make(chan struct{})})
	}
}

// startLocked runs an attempt in its own goroutine; a.mu is held.
func (a *agent) startLocked(ctx context.Context, at *attempt) {
	a.attempts[at.ref.RunID] = at
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ended := a.execute(ctx, at)
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.attempts[at.ref.RunID] == at {
			delete(a.attempts, at.ref.RunID)
		}
		if ended {
			a.setAttempt(at.ref, nil)
		}
	}()
}

// stopAll stops the attempts in flight, which cancels their Databricks
// runs, and waits at most d for them to report how they ended, so that no
// Databricks run outlives its node.
func (a *agent) stopAll(why string, d time.Duration) {
	a.mu.Lock()
	for _, at := range a.attempts {
		at.stop(why, false)
	}
	a.mu.Unlock()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a.mu.Lock()
		n := len(a.attempts)
		a.mu.Unlock()
		if n == 0 {
			return
		}
	}
	a.log.Warn("the node goes with Databricks runs that did not end in time", "waited", d)
}

// attemptState returns what is kept of an attempt.
func (a *agent) attemptState(ref api.AttemptRef) (attemptState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.st.Attempts[ref.RunID]
	return s, ok && s.Attempt == ref.Attempt
}

// keep records an attempt's state on disk before anything depends on it.
func (a *agent) keep(ref api.AttemptRef, s attemptState) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.setAttempt(ref, &s)
}

// setAttempt records (s) or forgets (nil) an attempt; a.mu is held.
func (a *agent) setAttempt(ref api.AttemptRef, s *attemptState) error {
	if s == nil {
		if cur, ok := a.st.Attempts[ref.RunID]; !ok || cur.Attempt != ref.Attempt {
			return nil
		}
		delete(a.st.Attempts, ref.RunID)
	} else {
		a.st.Attempts[ref.RunID] = *s
	}
	a.p.mu.Lock()
	_, live := a.p.nodes[a.st.ID]
	a.p.mu.Unlock()
	if !live {
		return nil // deleted: its file is gone
	}
	return a.p.save(a.st)
}
