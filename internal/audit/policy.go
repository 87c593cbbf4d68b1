package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
)

// Policies records the events of a workspace's policy (policy.Event) in
// the audit log: policy.refused when a request asked for more than the
// policy allows, policy.stopped when the policy stopped a run or an
// instance. It implements policy.Auditor: PolicyFired returns at once
// and the entry is appended in the background, since the dispatcher
// reports from its loop.
type Policies struct {
	Recorder Recorder
	// Log is told when an entry cannot be written.
	Log *slog.Logger
}

var _ policy.Auditor = Policies{}

// PolicyFired implements policy.Auditor.
func (p Policies) PolicyFired(ctx context.Context, ev policy.Event) {
	e := PolicyEntry(ev)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := p.Recorder.Record(ctx, e); err != nil && p.Log != nil {
			p.Log.Error("writing the audit log", "action", e.Action, "err", err)
		}
	}()
}

// PolicyEntry is the audit entry of a policy event. A refusal is the
// user's request, denied; a stop is the server's own act on the user's
// run or instance.
func PolicyEntry(ev policy.Event) store.AuditEntry {
	e := store.AuditEntry{Workspace: ev.Workspace, Action: "policy." + ev.Action, User: ev.User,
		Outcome: OK, Message: ev.Policy + " " + ev.Limit + ": " + ev.Message}
	switch {
	case ev.Run != "":
		e.Target = "runs/" + ev.Run
	case ev.Compute != "":
		e.Target = "computes/" + ev.Compute
	}
	if ev.Action == "refused" {
		e.Outcome = Denied
	} else {
		e.User = "paddock" // the server acted; the owner is in the message
		e.Message += " (owner " + ev.User + ")"
	}
	return e
}
