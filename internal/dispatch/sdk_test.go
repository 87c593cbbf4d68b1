package dispatch

import (
	"errors"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// An interactive run is Running at once, is placed on no node (not even
// after a restart), and ends when its client says so; ending it again
// the same way is fine, another way a conflict.
func TestInteractiveRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	r, err := h.d.StartInteractive(h.ctx, store.Run{Workspace: "default", Run: api.Run{Experiment: "nb", CreatedBy: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	got := h.wantStatus(r.ID, api.RunRunning)
	if !got.Interactive || got.StartedAt == nil || got.Node != "" || len(got.Attempts) != 1 {
		t.Fatalf("interactive run = %+v", got)
	}
	h.restart()
	if w := a.poll(); len(w.Assignments) != 0 {
		t.Fatalf("an interactive run was handed to an agent after a restart: %+v", w)
	}
	if _, err := h.d.RequestFail(h.ctx, "default", "run-nope", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("RequestFail of an unknown run: %v", err)
	}
	if _, err := h.d.EndInteractive(h.ctx, "default", r.ID, api.RunCompleted, ""); err != nil {
		t.Fatal(err)
	}
	done := h.wantStatus(r.ID, api.RunCompleted)
	if done.EndedAt == nil || done.Attempts[0].Status != api.RunCompleted {
		t.Fatalf("ended run = %+v", done)
	}
	if _, err := h.d.EndInteractive(h.ctx, "default", r.ID, api.RunCompleted, ""); err != nil {
		t.Errorf("completing it again: %v", err)
	}
	if _, err := h.d.EndInteractive(h.ctx, "default", r.ID, api.RunFailed, "x"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("failing a completed run: %v, want a conflict", err)
	}

	// Failing one ends it at once, with the error; cancelling one too.
	f, _ := h.d.StartInteractive(h.ctx, store.Run{Workspace: "default", Run: api.Run{CreatedBy: "alice"}})
	if _, err := h.d.RequestFail(h.ctx, "default", f.ID, "diverged"); err != nil {
		t.Fatal(err)
	}
	if got := h.wantStatus(f.ID, api.RunFailed); got.Error != "diverged" {
		t.Errorf("error %q", got.Error)
	}
	c, _ := h.d.StartInteractive(h.ctx, store.Run{Workspace: "default", Run: api.Run{CreatedBy: "alice"}})
	if _, err := h.d.Cancel(h.ctx, "default", c.ID, "user"); err != nil {
		t.Fatal(err)
	}
	h.wantStatus(c.ID, api.RunCanceled)

	// A submitted run cannot be ended as if it were interactive.
	run := h.submit(1)
	if _, err := h.d.EndInteractive(h.ctx, "default", run.ID, api.RunCompleted, ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("completing a submitted run: %v, want a conflict", err)
	}
}

// A run that marked itself failed ends Failed even when its command exits
// 0; one that fails on its own keeps its own reason.
func TestRunMarkedFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 4, 0)
	run := h.submit(1)
	a.poll()
	a.running(run.ID)
	if _, err := h.d.RequestFail(h.ctx, "default", run.ID, "validation loss is NaN"); err != nil {
		t.Fatal(err)
	}
	h.wantStatus(run.ID, api.RunRunning) // it goes on
	a.exit(run.ID, 0)
	got := h.wantStatus(run.ID, api.RunFailed)
	if got.StatusReason != ReasonMarkedFailed || got.Error != "validation loss is NaN" {
		t.Fatalf("reason %q error %q", got.StatusReason, got.Error)
	}
	if _, err := h.d.RequestFail(h.ctx, "default", run.ID, ""); !errors.Is(err, api.ErrConflict) {
		t.Errorf("marking an ended run failed: %v, want a conflict", err)
	}

	other := h.submit(1)
	a.poll()
	a.running(other.ID)
	h.d.RequestFail(h.ctx, "default", other.ID, "")
	a.exit(other.ID, 3)
	if got := h.wantStatus(other.ID, api.RunFailed); got.StatusReason == ReasonMarkedFailed || *got.ExitCode != 3 {
		t.Errorf("reason %q exit %d, want the command's failure", got.StatusReason, *got.ExitCode)
	}
}

// Several processes per node: the assignment says how many and carries
// torch.distributed's variables, also on one node.
func TestProcessesPerNodeAssignment(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	a := h.addNode("n1", 8, 0)
	r := newRun(1)
	r.ProcessCountPerNode, r.Distribution = 4, "pytorch"
	run := h.submitRun(r)
	w := a.poll()
	if len(w.Assignments) != 1 {
		t.Fatalf("poll = %+v", w)
	}
	as := w.Assignments[0]
	if as.ProcessCountPerNode != 4 || as.Distribution != "pytorch" || len(as.Hosts) != 0 {
		t.Errorf("assignment: %d processes, distribution %q, hosts %v", as.ProcessCountPerNode, as.Distribution, as.Hosts)
	}
	for k, want := range map[string]string{"WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1"} {
		if as.Env[k] != want {
			t.Errorf("%s = %q, want %q", k, as.Env[k], want)
		}
	}
	if as.Env["MASTER_PORT"] == "" || as.Env["PADDOCK_HOSTS"] != "" {
		t.Errorf("MASTER_PORT %q, PADDOCK_HOSTS %q", as.Env["MASTER_PORT"], as.Env["PADDOCK_HOSTS"])
	}
	a.running(run.ID)
	a.exit(run.ID, 0)
	h.wantStatus(run.ID, api.RunCompleted)
}

// With mpi, mpirun on rank 0 is the run: when it completes, the other
// nodes (which only serve it) are stopped and the run is Completed, even
// when one of them ended first; when mpirun fails, the run fails.
func TestMPIRankZeroDecides(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	n1, n2 := h.addNode("n1", 4, 0), h.addNode("n2", 4, 0)
	r := newRun(1)
	r.NodeCount, r.ProcessCountPerNode, r.Distribution = 2, 2, "mpi"
	run := h.submitRun(r)
	w1, w2 := n1.poll(), n2.poll()
	if len(w1.Assignments) != 1 || len(w2.Assignments) != 1 {
		t.Fatalf("polls = %+v, %+v", w1, w2)
	}
	if hosts := w2.Assignments[0].Hosts; len(hosts) != 2 || hosts[0] != "n1" || hosts[1] != "n2" {
		t.Errorf("hosts %v, want the two nodes (their addresses, here their ids), rank 0 first", hosts)
	}
	if w2.Assignments[0].Env["WORLD_SIZE"] != "4" || w2.Assignments[0].Env["RANK"] != "2" {
		t.Errorf("rank 1 env WORLD_SIZE %q RANK %q", w2.Assignments[0].Env["WORLD_SIZE"], w2.Assignments[0].Env["RANK"])
	}
	n1.running(run.ID)
	n2.running(run.ID)
	n1.exit(run.ID, 0)
	if w := n2.poll(); len(w.Cancel) != 1 {
		t.Fatalf("rank 1 was not told to stop once mpirun ended: %+v", w)
	}
	n2.report(run.ID, api.AttemptReport{Status: api.RunCanceled, Reason: "Canceled"})
	h.wantStatus(run.ID, api.RunCompleted)

	failed := h.submitRun(r)
	n1.poll()
	n2.poll()
	n1.running(failed.ID)
	n2.exit(failed.ID, 1)
	n1.poll()
	n1.report(failed.ID, api.AttemptReport{Status: api.RunCanceled, Reason: "Canceled"})
	if got := h.wantStatus(failed.ID, api.RunFailed); got.StatusReason != "NonZeroExit" {
		t.Errorf("reason %q", got.StatusReason)
	}

	// A serving node stopped by mpirun's shutdown may report before rank
	// 0 does: mpirun is not stopped for it, and its success decides.
	raced := h.submitRun(r)
	n1.poll()
	n2.poll()
	n1.running(raced.ID)
	n2.running(raced.ID)
	n2.exit(raced.ID, 143)
	n1.exit(raced.ID, 0)
	h.wantStatus(raced.ID, api.RunCompleted)
}
