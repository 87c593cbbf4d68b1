package dispatch

import (
	"context"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// ReasonMarkedFailed is the reason of a run that said it failed (Run.fail
// from inside it) and then exited 0.
const ReasonMarkedFailed = "MarkedFailed"

// StartInteractive records an interactive run (Azure ML's
// Experiment.start_logging): it runs nothing, is Running at once, and
// ends when its client ends it (EndInteractive) or cancels it. r must be
// validated. A repeated idempotency key returns the first run.
func (d *Dispatcher) StartInteractive(ctx context.Context, r store.Run) (store.Run, error) {
	var out store.Run
	err := d.do(ctx, func(tx *txn) error {
		if prev, ok, err := d.byIdempotencyKey(ctx, tx, r); err != nil || ok {
			out = prev
			return err
		}
		d.seq++
		now := d.now()
		r.Seq, r.ID, r.Interactive = d.seq, NewRunID(), true
		r.Status, r.CreatedAt, r.StartedAt = api.RunRunning, now, &now
		r.Attempt = 1
		r.Attempts = []api.Attempt{{Number: 1, Status: api.RunRunning, StartedAt: &now}}
		run := r
		d.runs[run.ID] = &run
		tx.touchRun(&run)
		out = clone(&run)
		return nil
	})
	return out, err
}

// EndInteractive ends an interactive run Completed or Failed (with msg).
// Ending a run that has already ended is a conflict, unless it ended with
// that status.
func (d *Dispatcher) EndInteractive(ctx context.Context, ws, id string, status api.RunStatus, msg string) (store.Run, error) {
	if status != api.RunCompleted && status != api.RunFailed {
		return store.Run{}, api.Invalid("status", "an interactive run ends Completed or Failed, not %s", status)
	}
	var out store.Run
	found, err := d.withLiveRun(ctx, ws, id, func(tx *txn, r *store.Run) error {
		if !r.Interactive {
			return api.Conflict("run %s runs a command: it ends when the command does (cancel it to stop it)", id)
		}
		reason := ""
		if status == api.RunFailed {
			reason = "Failed"
		}
		d.finish(tx, r, status, nil, reason, msg)
		out = clone(r)
		return nil
	})
	if err != nil || found {
		return out, err
	}
	r, err := d.st.GetRun(ctx, ws, id)
	switch {
	case err != nil:
		return store.Run{}, err
	case !r.Interactive:
		return store.Run{}, api.Conflict("run %s runs a command: it ends when the command does (cancel it to stop it)", id)
	case r.Status != status:
		return store.Run{}, api.Conflict("run %s has already ended %s", id, r.Status)
	}
	return r, nil
}

// RequestFail records that a run says it failed (Run.fail from inside it):
// its attempt ends Failed with msg even if its command exits 0. The
// command goes on; an interactive run ends at once.
func (d *Dispatcher) RequestFail(ctx context.Context, ws, id, msg string) (store.Run, error) {
	if msg == "" {
		msg = "the run marked itself failed"
	}
	var out store.Run
	found, err := d.withLiveRun(ctx, ws, id, func(tx *txn, r *store.Run) error {
		if r.Interactive {
			d.finish(tx, r, api.RunFailed, nil, "Failed", msg)
		} else {
			r.FailRequested = msg
			tx.touchRun(r)
		}
		out = clone(r)
		return nil
	})
	if err != nil || found {
		return out, err
	}
	r, err := d.st.GetRun(ctx, ws, id)
	if err != nil {
		return store.Run{}, err
	}
	return store.Run{}, api.Conflict("run %s has already ended %s", id, r.Status)
}
