package dispatch

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/policy"
)

type auditor struct {
	mu     sync.Mutex
	events []policy.Event
}

func (a *auditor) PolicyFired(_ context.Context, ev policy.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

func (a *auditor) got() []policy.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// A run's identities reach its assignment (names only); a run the policy
// gave its duration limit is recorded when it is stopped at it, and one
// that chose its own limit is not.
func TestAssignmentIdentitiesAndPolicyStops(t *testing.T) {
	t.Parallel()
	a := &auditor{}
	h := newHarness(t, Options{Policy: &policy.Recorder{Auditor: a}})
	byPolicy := newRun(1)
	byPolicy.MaxRunDurationSeconds, byPolicy.MaxRunDurationFromPolicy = 60, true
	byPolicy.IdentityType, byPolicy.Identities = api.IdentityUserAssigned, []string{"blob-reader"}
	own := newRun(1)
	own.MaxRunDurationSeconds = 30
	r1, r2 := h.submitRun(byPolicy), h.submitRun(own)
	ag := h.addNode("n1", 4, 0)
	w := ag.poll()
	if len(w.Assignments) != 2 {
		t.Fatalf("poll = %+v, want both runs", w)
	}
	for _, as := range w.Assignments {
		want := []string(nil)
		if as.RunID == r1.ID {
			want = []string{"blob-reader"}
		}
		if !slices.Equal(as.Identities, want) {
			t.Errorf("assignment of %s: identities %v, want %v", as.RunID, as.Identities, want)
		}
	}
	for _, id := range []string{r1.ID, r2.ID} {
		ag.running(id)
		ag.report(id, api.AttemptReport{Status: api.RunCanceled, Reason: "MaxRunDurationExceeded", Error: "the run exceeded max_run_duration_seconds"})
	}
	h.wantStatus(r1.ID, api.RunCanceled)
	h.wantStatus(r2.ID, api.RunCanceled)
	evs := a.got()
	if len(evs) != 1 || evs[0].Run != r1.ID || evs[0].Action != "stopped" || evs[0].Policy != policy.NameMaxRunDuration || evs[0].Limit != "60" {
		t.Fatalf("policy events = %+v, want one stop of %s", evs, r1.ID)
	}
}
