package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

type recorded struct {
	mu sync.Mutex
	es []store.AuditEntry
}

func (r *recorded) Record(_ context.Context, e store.AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.es = append(r.es, e)
	return nil
}

// A refusal is the user's request, denied; a stop is the server's act on
// the user's run or instance, which the entry names.
func TestPolicyEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ev                            policy.Event
		action, user, target, outcome string
	}{
		{policy.Event{Workspace: "default", Policy: policy.NameMaxRunDuration, Action: "refused", Compute: "cpu", User: "bob", Limit: "3600"},
			"policy.refused", "bob", "computes/cpu", Denied},
		{policy.Event{Workspace: "default", Policy: policy.NameMaxRunDuration, Action: "stopped", Compute: "cpu", Run: "run-1", User: "bob", Limit: "3600"},
			"policy.stopped", "paddock", "runs/run-1", OK},
		{policy.Event{Workspace: "default", Policy: policy.NameMaxIdle, Action: "stopped", Compute: "box", User: "ann", Limit: "2h0m0s"},
			"policy.stopped", "paddock", "computes/box", OK},
	}
	for _, tc := range tests {
		e := PolicyEntry(tc.ev)
		if e.Action != tc.action || e.User != tc.user || e.Target != tc.target || e.Outcome != tc.outcome || e.Workspace != "default" {
			t.Errorf("PolicyEntry(%+v) = %+v", tc.ev, e)
		}
	}
	rec := &recorded{}
	Policies{Recorder: rec}.PolicyFired(t.Context(), tests[1].ev)
	testenv.Eventually(t, 5*time.Second, "the policy entry to be recorded", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.es) == 1
	})
}
