package nodes_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/nodes"

	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/policy"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// wantNodes fails unless target has exactly n nodes (leaving ones aside).
func (f *fixture) wantNodes(target string, n int) []store.Node {
	f.t.Helper()
	nodes := f.nodes(target)
	if len(nodes) != n {
		var seen []string
		for _, nd := range nodes {
			seen = append(seen, nd.ID+" "+nd.State)
		}
		f.t.Fatalf("%s has %d nodes, want %d: %v", target, len(nodes), n, seen)
	}
	return nodes
}

// A node is removed once it has been idle for idle_seconds_before_scaledown
// — counted from when it last became idle, not from when it was made —
// and not a second earlier.
func TestControllerScalesDownAfterIdleTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const idle = 120 * time.Second
	f.cluster("cpu", "STANDARD_D2_V2", 2, idle, nil)

	run := f.submit("cpu", 1)
	f.pass("cpu")
	node := f.wantNodes("cpu", 1)[0].ID
	f.ready("cpu")
	if got := f.poll(node, 0); len(got) != 1 || got[0] != run {
		t.Fatalf("the new node was given %v, want [%s]", got, run)
	}
	// The run takes longer than the idle time: the node is busy, not idle.
	f.clock.Advance(10 * time.Minute)
	f.pass("cpu")
	f.wantNodes("cpu", 1)
	f.finish(node, run)

	f.clock.Advance(idle - time.Second)
	f.pass("cpu")
	if f.prov.wasDeleted(node) {
		t.Fatalf("node %s was deleted after %s idle, before idle_seconds_before_scaledown (%s)", node, idle-time.Second, idle)
	}
	f.wantNodes("cpu", 1)
	// A run in the gap restarts the idle timer.
	run = f.submit("cpu", 1)
	if got := f.poll(node, 0); len(got) != 1 || got[0] != run {
		t.Fatalf("the idle node was given %v, want [%s]", got, run)
	}
	f.clock.Advance(time.Minute)
	f.finish(node, run)
	f.clock.Advance(idle - time.Second)
	f.pass("cpu")
	if f.prov.wasDeleted(node) {
		t.Fatalf("node %s was deleted %s after its last run ended, before idle_seconds_before_scaledown (%s)", node, idle-time.Second, idle)
	}
	f.wantNodes("cpu", 1)

	f.clock.Advance(time.Second)
	f.pass("cpu")
	f.wantNodes("cpu", 0)
	if !f.prov.wasDeleted(node) {
		t.Fatalf("node %s, idle for %s, was not deleted by the provider", node, idle)
	}
	var st compute.ClusterStatus
	if f.status("cpu", &st); st.CurrentNodeCount != 0 || st.TargetNodeCount != 0 {
		t.Errorf("status after the scale-down: %+v", st)
	}
}

// min_nodes keeps idle nodes however long they are idle.
func TestControllerKeepsMinNodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cluster("warm", "STANDARD_D2_V2", 3, time.Minute, map[string]any{"min_nodes": 1})
	f.pass("warm")
	f.wantNodes("warm", 1)
	f.ready("warm")
	f.clock.Advance(time.Hour)
	f.pass("warm")
	if n := f.wantNodes("warm", 1)[0]; n.State != store.NodeIdle || f.prov.wasDeleted(n.ID) {
		t.Fatalf("min_nodes 1: node %+v deleted %v", n, f.prov.wasDeleted(n.ID))
	}
}

// submitN queues n runs of cores each on target.
func (f *fixture) submitN(target string, n int, cores float64) []string {
	f.t.Helper()
	var ids []string
	for range n {
		ids = append(ids, f.submit(target, cores))
	}
	return ids
}

// Core quotas cap the nodes the autoscaler starts: exactly up to the
// limit, dedicated and low-priority cores apart, per size family.
func TestControllerQuotas(t *testing.T) {
	t.Parallel()
	unlimited := store.Unlimited

	t.Run("a quota that is exactly used up", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.quota("", 4, unlimited)
		f.cluster("capped", "STANDARD_D2_V2", 4, time.Minute, nil) // 2 cores a node
		ids := f.submitN("capped", 4, 2)
		f.pass("capped")
		f.wantNodes("capped", 2) // 4 cores: two nodes, not one, not three
		if r := f.reason(ids[3]); !strings.HasPrefix(r, "quota:") {
			t.Errorf("the run the quota holds back says %q", r)
		}
		var st compute.ClusterStatus
		if f.status("capped", &st); len(st.Errors) != 1 || st.Errors[0].Code != "QuotaExceeded" {
			t.Errorf("the cluster's errors: %+v", st.Errors)
		}
		f.quota("", 6, unlimited) // the 4 cores in use count: room for one more
		f.pass("capped")
		f.wantNodes("capped", 3)
	})

	t.Run("low-priority cores do not count against the dedicated quota", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.quota("", 2, 4)
		f.cluster("spot", "STANDARD_D2_V2", 4, time.Minute, map[string]any{"vm_priority": "lowpriority"})
		f.cluster("ded", "STANDARD_D2_V2", 4, time.Minute, nil)
		f.submitN("spot", 3, 2)
		f.pass("spot")
		f.wantNodes("spot", 2) // the low-priority quota: 4 cores
		f.submitN("ded", 3, 2)
		f.pass("ded")
		f.wantNodes("ded", 1) // the dedicated quota: 2 cores, the spot nodes' 4 aside
		f.pass("spot")
		f.wantNodes("spot", 2) // and the dedicated node takes nothing of the low-priority quota
	})

	t.Run("a family's quota binds that family only", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		f.quota("", 100, unlimited)
		f.quota("standardNCFamily", 6, unlimited)
		f.cluster("gpu", "STANDARD_NC6", 3, time.Minute, nil) // 6 cores a node
		f.cluster("gpu2", "STANDARD_NC6", 3, time.Minute, nil)
		f.cluster("cpu", "STANDARD_D2_V2", 3, time.Minute, nil)
		f.submitN("cpu", 3, 2)
		f.pass("cpu")
		f.wantNodes("cpu", 3) // another family: not bound by the NC quota
		f.submitN("gpu", 3, 6)
		f.pass("gpu")
		f.wantNodes("gpu", 1) // the family's 6 cores, cpu's 6 cores aside
		held := f.submitN("gpu2", 1, 6)
		f.pass("gpu2")
		f.wantNodes("gpu2", 0) // gpu's node holds the family's 6 cores
		if r := f.reason(held[0]); !strings.HasPrefix(r, "quota:") {
			t.Errorf("the run the family quota holds back says %q", r)
		}
	})
}

// instanceStatus reads an instance's status.
func (f *fixture) instanceStatus(name string) compute.InstanceStatus {
	f.t.Helper()
	var st compute.InstanceStatus
	f.status(name, &st)
	return st
}

// startInstance makes an instance with these extra properties and brings
// its node up; it returns the node's id.
func (f *fixture) startInstance(name string, extra map[string]any) string {
	f.t.Helper()
	props := map[string]any{"vm_size": "STANDARD_DS3_V2", "max_concurrent_runs": 2}
	for k, v := range extra {
		props[k] = v
	}
	f.create(name, "instance", props)
	f.pass(name)
	node := f.wantNodes(name, 1)[0].ID
	f.ready(name)
	f.pass(name)
	if st := f.instanceState(name); st != "Running" {
		f.t.Fatalf("instance %s is %s once its node is ready, want Running", name, st)
	}
	return node
}

func (f *fixture) instanceState(name string) string { return f.instanceStatus(name).State }

// An open SSH session keeps an idle instance from stopping; once it closes,
// the instance stops after idle_time_before_shutdown, not before.
func TestInstanceIdleShutdownWaitsForSSHSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	node := f.startInstance("box", map[string]any{"idle_time_before_shutdown": "30m"})

	f.clock.Advance(time.Minute)
	f.poll(node, 1) // a session opens
	f.clock.Advance(40 * time.Minute)
	f.pass("box")
	if st := f.instanceState("box"); st != "Running" {
		t.Fatalf("with an SSH session open for 40m the instance is %s, want Running", st)
	}
	f.poll(node, 1) // the agent's last heartbeat with it open
	f.poll(node, 0) // it closes
	f.clock.Advance(30*time.Minute - time.Second)
	f.pass("box")
	if st := f.instanceState("box"); st != "Running" {
		t.Fatalf("%s after the last session the instance is %s, want Running until 30m", 30*time.Minute-time.Second, st)
	}
	f.clock.Advance(time.Second)
	f.pass("box")
	if st := f.instanceState("box"); st != "Stopping" {
		t.Fatalf("30m after the last session the instance is %s, want Stopping", st)
	}
	f.pass("box")
	if st := f.instanceState("box"); st != "Stopped" || !f.prov.wasDeleted(node) {
		t.Fatalf("after the stop: %s, node deleted %v", st, f.prov.wasDeleted(node))
	}
}

// compute status counts an instance's queued and running runs, and
// restart replaces the node and runs what it ran again.
func TestInstanceCountsAndRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	node := f.startInstance("box", nil)
	ids := f.submitN("box", 3, 0)
	f.pass("box")
	if st := f.instanceStatus("box"); st.RunningRuns != 2 || st.QueuedRuns != 1 {
		t.Fatalf("3 runs on max_concurrent_runs 2: running %d, queued %d; want 2 and 1", st.RunningRuns, st.QueuedRuns)
	}
	got := f.poll(node, 0)
	if len(got) != 2 {
		t.Fatalf("the node was given %v, want two runs", got)
	}
	f.finish(node, got[0])
	var left []string // the runs the restart must run again
	for _, id := range ids {
		if id != got[0] {
			left = append(left, id)
		}
	}
	f.pass("box")
	if st := f.instanceStatus("box"); st.RunningRuns != 2 || st.QueuedRuns != 0 {
		t.Fatalf("after one of 3 runs ended: running %d, queued %d; want 2 and 0", st.RunningRuns, st.QueuedRuns)
	}

	if _, err := f.ws.InstanceAction(f.ctx, "default", authz.System, "box", "restart"); err != nil {
		t.Fatal(err)
	}
	if st := f.instanceState("box"); st != "Restarting" {
		t.Fatalf("after restart: %s, want Restarting", st)
	}
	f.pass("box")
	if st := f.instanceStatus("box"); st.State != "Starting" || st.QueuedRuns != 2 || st.RunningRuns != 0 || !f.prov.wasDeleted(node) {
		t.Fatalf("after the restart's first pass: %+v, old node deleted %v; want Starting with both runs queued again", st, f.prov.wasDeleted(node))
	}
	f.pass("box")
	fresh := f.wantNodes("box", 1)[0].ID
	if fresh == node {
		t.Fatalf("the restarted instance kept node %s", node)
	}
	f.ready("box")
	f.pass("box")
	if st := f.instanceStatus("box"); st.State != "Running" || st.RunningRuns != 2 {
		t.Fatalf("after the restart: %+v, want Running with 2 runs", st)
	}
	got = f.poll(fresh, 0)
	slices.Sort(got)
	slices.Sort(left)
	if !slices.Equal(got, left) {
		t.Fatalf("the new node was given %v, want the runs that had not ended %v", got, left)
	}
}

// The controller's own loop scales an idle node down when its idle
// deadline comes on the clock: the pass that sees the node idle asks to
// look again at the deadline, and the fake clock firing that timer is all
// it takes. Nothing sleeps; the test waits only for the loop to act.
func TestLoopScalesDownOnTheClock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const idle = 5 * time.Minute
	f.cluster("cpu", "STANDARD_D2_V2", 1, idle, nil)
	run := f.submit("cpu", 1)
	f.pass("cpu")
	node := f.wantNodes("cpu", 1)[0].ID
	f.ready("cpu")
	f.poll(node, 0)
	f.finish(node, run)
	armed := f.clock.Waiters() // the dispatcher's ticker
	testenv.Go(t, func(ctx context.Context) { f.ctrl.Run(ctx) })
	f.ctrl.Enqueue(store.Key("default", "cpu"))
	// The pass finds the node idle and arms its deadline.
	if !f.clock.WaitForWaiters(armed+1, 10*time.Second) {
		t.Fatal("no requeue was armed for the idle deadline")
	}
	f.clock.Advance(idle - time.Second)
	if f.prov.wasDeleted(node) {
		t.Fatalf("node deleted %s before its deadline", time.Second)
	}
	f.clock.Advance(time.Second)
	testenv.Eventually(t, 10*time.Second, "the idle node to be deleted by the loop", func() bool { return f.prov.wasDeleted(node) })
}

// policyAuditor collects the policy events the controller records.
type policyAuditor struct {
	mu     sync.Mutex
	events []policy.Event
}

func (a *policyAuditor) PolicyFired(_ context.Context, ev policy.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
}

// An instance with no idle shutdown of its own is stopped after the
// workspace policy's maximum, and the stop is recorded; one with a
// shorter time of its own keeps it, and nothing is recorded for it.
func TestInstanceIdlePolicyStopsInstances(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := &policyAuditor{}
	f.ctrl.Policy = &policy.Recorder{Auditor: a}
	f.startInstance("never-box", nil)
	f.startInstance("short-box", map[string]any{"idle_time_before_shutdown": "10m"})
	if err := f.st.PutPolicy(f.ctx, store.Policy{Workspace: "default", MaxIdleSeconds: 3600, UpdatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Minute)
	f.pass("short-box")
	f.pass("never-box")
	if st := f.instanceState("short-box"); st != "Stopping" {
		t.Fatalf("short-box after its own 10m: %s, want Stopping", st)
	}
	if st := f.instanceState("never-box"); st != "Running" {
		t.Fatalf("never-box after 10m: %s, want Running until the policy's 1h", st)
	}
	f.clock.Advance(50 * time.Minute)
	f.pass("never-box")
	if st := f.instanceState("never-box"); st != "Stopping" {
		t.Fatalf("never-box after the policy's 1h: %s, want Stopping", st)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.events) != 1 || a.events[0].Compute != "never-box" || a.events[0].Action != "stopped" || a.events[0].Policy != policy.NameMaxIdle {
		t.Fatalf("policy events = %+v, want one stop of never-box", a.events)
	}
}

// A large scale-up is spread over passes that follow each other at once:
// each pass starts a bounded number of nodes and writes the status, so the
// cluster says where it is going while it grows, and other targets get
// their turn in between.
func TestLargeScaleUpWritesStatusBetweenPasses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.quota("", store.Unlimited, store.Unlimited)
	const want = 600
	f.cluster("big", "STANDARD_D2_V2", want, time.Hour, map[string]any{"min_nodes": want})
	var passes int
	for passes = 1; ; passes++ {
		res, err := f.ctrl.Reconcile(f.ctx, "default/big")
		if err != nil {
			t.Fatal(err)
		}
		var st compute.ClusterStatus
		f.status("big", &st)
		if st.TargetNodeCount != want || st.CurrentNodeCount != len(f.nodes("big")) {
			t.Fatalf("pass %d: status target %d, current %d, with %d nodes made", passes, st.TargetNodeCount, st.CurrentNodeCount, len(f.nodes("big")))
		}
		if n := len(f.nodes("big")); n > passes*nodes.MaxCreatesPerPass {
			t.Fatalf("pass %d started %d nodes in all, more than %d a pass", passes, n, nodes.MaxCreatesPerPass)
		}
		if !res.Requeue {
			break
		}
		if passes > want {
			t.Fatal("the passes never end")
		}
	}
	f.wantNodes("big", want)
	if min := (want + nodes.MaxCreatesPerPass - 1) / nodes.MaxCreatesPerPass; passes != min || passes < 2 {
		t.Errorf("%d passes for %d nodes, want %d and more than one", passes, want, min)
	}
}
