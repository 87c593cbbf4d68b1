package nodes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/store"
)

// base is the fake clock's "now" for the table tests.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testCluster is a cluster of 4-core, 16 GB, 1-GPU nodes, 0..10 nodes,
// idle nodes go after 10 minutes, no quota.
func testCluster() Cluster {
	return Cluster{
		Key: "ws/gpu", MinNodes: 0, MaxNodes: 10, IdleAfter: 10 * time.Minute,
		NodeCores: 4, NodeMemGB: 16, NodeGPUs: 1, QuotaNodes: -1,
	}
}

func with(f func(*Cluster)) Cluster {
	c := testCluster()
	f(&c)
	return c
}

func idleNode(id string, idleFor time.Duration) Node {
	return Node{ID: id, State: store.NodeIdle, FreeCores: 4, FreeMemGB: 16, FreeGPUs: 1, IdleSince: base.Add(-idleFor)}
}

func startingNode(id string) Node {
	return Node{ID: id, State: store.NodeStarting, FreeCores: 4, FreeMemGB: 16, FreeGPUs: 1}
}

// busyNode is a running node with the given free cores (and memory and GPU
// to match nothing larger than that).
func busyNode(id string, freeCores float64) Node {
	return Node{ID: id, State: store.NodeRunning, FreeCores: freeCores, FreeMemGB: 4 * freeCores}
}

func node(id, state string) Node { return Node{ID: id, State: state} }

func runs(n int, r Run) []Run {
	q := make([]Run, n)
	for i := range q {
		q[i] = r
	}
	return q
}

var (
	small = Run{Nodes: 1, Cores: 1, MemoryGB: 2}
	whole = Run{Nodes: 1, Cores: 4, MemoryGB: 16, GPUs: 1}
)

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cluster Cluster
		nodes   []Node
		queue   []Run
		want    Decision
	}{
		{
			name:    "empty cluster, empty queue: nothing",
			cluster: testCluster(),
			want:    Decision{},
		},
		{
			name:    "scale from zero",
			cluster: testCluster(),
			queue:   []Run{small},
			want:    Decision{Target: 1, Create: 1, Reason: "scaling cluster 0→1 nodes"},
		},
		{
			name:    "runs pack several per node",
			cluster: testCluster(),
			queue:   runs(8, small),
			want:    Decision{Target: 2, Create: 2, Reason: "scaling cluster 0→2 nodes"},
		},
		{
			name:    "fractional runs pack without rounding loss",
			cluster: testCluster(),
			queue:   runs(40, Run{Nodes: 1, Cores: 0.1, MemoryGB: 0.4}),
			want:    Decision{Target: 1, Create: 1, Reason: "scaling cluster 0→1 nodes"},
		},
		{
			name:    "later runs fill earlier new nodes first fit",
			cluster: testCluster(),
			// 3+3 cannot share a node; the 1-core runs fill the gaps.
			queue: []Run{{Nodes: 1, Cores: 3}, {Nodes: 1, Cores: 3}, {Nodes: 1, Cores: 1}, {Nodes: 1, Cores: 1}},
			want:  Decision{Target: 2, Create: 2, Reason: "scaling cluster 0→2 nodes"},
		},
		{
			name:    "many runs capped at max_nodes",
			cluster: with(func(c *Cluster) { c.MaxNodes = 3 }),
			queue:   runs(10, whole),
			want:    Decision{Target: 3, Create: 3, Reason: "cluster at max_nodes (3); waiting for a node to free up"},
		},
		{
			name:    "at max_nodes already: nothing to create",
			cluster: with(func(c *Cluster) { c.MaxNodes = 2 }),
			nodes:   []Node{busyNode("a", 0), busyNode("b", 0)},
			queue:   []Run{small},
			want:    Decision{Target: 2, Reason: "cluster at max_nodes (2); waiting for a node to free up"},
		},
		{
			name:    "starting nodes count as capacity",
			cluster: testCluster(),
			nodes:   []Node{startingNode("a"), startingNode("b")},
			queue:   runs(8, small),
			want:    Decision{Target: 2},
		},
		{
			name:    "starting nodes cover part of the demand",
			cluster: testCluster(),
			nodes:   []Node{startingNode("a")},
			queue:   runs(3, whole),
			want:    Decision{Target: 3, Create: 2, Reason: "scaling cluster 1→3 nodes"},
		},
		{
			name:    "busy capacity is used before new nodes",
			cluster: testCluster(),
			nodes:   []Node{busyNode("a", 2), busyNode("b", 1)},
			queue:   runs(4, small),
			want:    Decision{Target: 3, Create: 1, Reason: "scaling cluster 2→3 nodes"},
		},
		{
			name:    "gang of 2 with one idle node",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", time.Hour)},
			queue:   []Run{{Nodes: 2, Cores: 4, MemoryGB: 8}},
			want:    Decision{Target: 2, Create: 1, Reason: "waiting for 2 nodes together"},
		},
		{
			name:    "gang of 2 fits two idle nodes",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", time.Hour), idleNode("b", time.Hour)},
			queue:   []Run{{Nodes: 2, Cores: 4, MemoryGB: 8}},
			want:    Decision{Target: 2},
		},
		{
			name:    "gang needs distinct nodes even when one node has room for two",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", time.Hour)},
			queue:   []Run{{Nodes: 3, Cores: 1}},
			want:    Decision{Target: 3, Create: 2, Reason: "waiting for 3 nodes together"},
		},
		{
			name:    "gang capped at max_nodes: max reason wins",
			cluster: with(func(c *Cluster) { c.MaxNodes = 2 }),
			nodes:   []Node{busyNode("a", 0)},
			queue:   []Run{{Nodes: 2, Cores: 4}},
			want:    Decision{Target: 2, Create: 1, Reason: "cluster at max_nodes (2); waiting for a node to free up"},
		},
		{
			name:    "gang wider than max_nodes is skipped",
			cluster: with(func(c *Cluster) { c.MaxNodes = 2 }),
			queue:   []Run{{Nodes: 3, Cores: 1}},
			want:    Decision{Reason: "a queued run needs 3 nodes together but max_nodes is 2"},
		},
		{
			name:    "min_nodes kept warm with empty queue",
			cluster: with(func(c *Cluster) { c.MinNodes = 2 }),
			want:    Decision{Target: 2, Create: 2},
		},
		{
			name:    "min_nodes: idle nodes past the deadline stay",
			cluster: with(func(c *Cluster) { c.MinNodes = 2 }),
			nodes:   []Node{idleNode("a", time.Hour), idleNode("b", time.Hour)},
			want:    Decision{Target: 2},
		},
		{
			name:    "min_nodes: only the idle nodes above it go, longest idle first",
			cluster: with(func(c *Cluster) { c.MinNodes = 1 }),
			nodes:   []Node{idleNode("a", 20*time.Minute), idleNode("b", time.Hour), idleNode("c", 30*time.Minute)},
			want:    Decision{Target: 1, Delete: []string{"b", "c"}},
		},
		{
			name:    "idle node before the deadline kept",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", 4*time.Minute)},
			want:    Decision{Target: 1, NextCheck: base.Add(6 * time.Minute)},
		},
		{
			name:    "NextCheck is the earliest deadline still ahead",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", 2*time.Minute), idleNode("b", 7*time.Minute), busyNode("c", 0)},
			want:    Decision{Target: 3, NextCheck: base.Add(3 * time.Minute)},
		},
		{
			name:    "idle node at the deadline deleted",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", 10*time.Minute)},
			want:    Decision{Target: 0, Delete: []string{"a"}},
		},
		{
			name:    "expired ones go, the next deadline is reported",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", 5*time.Minute), idleNode("b", 15*time.Minute)},
			want:    Decision{Target: 1, Delete: []string{"b"}, NextCheck: base.Add(5 * time.Minute)},
		},
		{
			name:    "equal idle times: ID decides",
			cluster: with(func(c *Cluster) { c.MinNodes = 1 }),
			nodes:   []Node{idleNode("z", time.Hour), idleNode("m", time.Hour), idleNode("b", time.Hour)},
			want:    Decision{Target: 1, Delete: []string{"b", "m"}},
		},
		{
			name:    "busy nodes never deleted",
			cluster: testCluster(),
			nodes:   []Node{busyNode("a", 0), busyNode("b", 4), startingNode("c")},
			want:    Decision{Target: 3},
		},
		{
			name:    "idle node the queue needs is not deleted",
			cluster: testCluster(),
			nodes:   []Node{idleNode("a", time.Hour)},
			queue:   []Run{small},
			want:    Decision{Target: 1},
		},
		{
			name:    "the queue keeps the most recently idle node, the other goes",
			cluster: testCluster(),
			nodes:   []Node{idleNode("old", time.Hour), idleNode("new", 20*time.Minute)},
			queue:   runs(4, small),
			want:    Decision{Target: 1, Delete: []string{"old"}},
		},
		{
			name:    "no idle scale-down while the queue needs new nodes",
			cluster: with(func(c *Cluster) { c.MaxNodes = 3 }),
			nodes:   []Node{busyNode("a", 0), busyNode("b", 0), busyNode("c", 0)},
			queue:   []Run{whole},
			want:    Decision{Target: 3, Reason: "cluster at max_nodes (3); waiting for a node to free up"},
		},
		{
			name:    "no idle scale-down in a pass that creates",
			cluster: testCluster(),
			// The agent keeps a core back, so the idle node cannot take a
			// whole-node run; it still stays until the pass creates nothing.
			nodes: []Node{{ID: "a", State: store.NodeIdle, FreeCores: 3, FreeMemGB: 16, FreeGPUs: 1, IdleSince: base.Add(-time.Hour)}},
			queue: []Run{whole},
			want:  Decision{Target: 2, Create: 1, Reason: "scaling cluster 1→2 nodes"},
		},
		{
			name:    "max lowered: idle extras go at once, busy ones stay",
			cluster: with(func(c *Cluster) { c.MaxNodes = 2 }),
			nodes: []Node{
				busyNode("r1", 0), busyNode("r2", 1), busyNode("r3", 0),
				idleNode("i1", time.Minute), idleNode("i2", 2*time.Minute),
			},
			want: Decision{Target: 2, Delete: []string{"i2", "i1"}},
		},
		{
			name:    "max lowered: only as many idle nodes as needed, longest idle first",
			cluster: with(func(c *Cluster) { c.MaxNodes = 3 }),
			nodes: []Node{
				busyNode("r1", 0), idleNode("i1", time.Minute), idleNode("i2", 3*time.Minute),
				idleNode("i3", 2*time.Minute),
			},
			want: Decision{Target: 3, Delete: []string{"i2"}, NextCheck: base.Add(8 * time.Minute)},
		},
		{
			name:    "max lowered: an idle node the queue needs stays",
			cluster: with(func(c *Cluster) { c.MaxNodes = 1 }),
			nodes:   []Node{busyNode("r1", 0), idleNode("i1", time.Minute)},
			queue:   []Run{small},
			want:    Decision{Target: 1},
		},
		{
			name:    "unusable and preempted nodes deleted and replaced",
			cluster: testCluster(),
			nodes:   []Node{busyNode("a", 0), node("u", store.NodeUnusable), node("p", store.NodePreempted)},
			queue:   runs(2, whole),
			want:    Decision{Target: 3, Create: 2, Delete: []string{"p", "u"}, Reason: "scaling cluster 1→3 nodes"},
		},
		{
			name:    "unusable node replaced to keep min_nodes",
			cluster: with(func(c *Cluster) { c.MinNodes = 1 }),
			nodes:   []Node{node("u", store.NodeUnusable)},
			want:    Decision{Target: 1, Create: 1, Delete: []string{"u"}},
		},
		{
			name:    "preempted node not replaced without demand",
			cluster: testCluster(),
			nodes:   []Node{node("p", store.NodePreempted), idleNode("i", time.Minute)},
			want:    Decision{Target: 1, Delete: []string{"p"}, NextCheck: base.Add(9 * time.Minute)},
		},
		{
			name:    "quota caps the target",
			cluster: with(func(c *Cluster) { c.QuotaNodes = 1 }),
			queue:   runs(3, whole),
			want:    Decision{Target: 1, Create: 1, Reason: "quota: the workspace's core quota allows 1 node of this cluster; the queue needs 3"},
		},
		{
			name:    "quota and max both limit: quota reason first",
			cluster: with(func(c *Cluster) { c.QuotaNodes = 2; c.MaxNodes = 2 }),
			queue:   runs(3, whole),
			want:    Decision{Target: 2, Create: 2, Reason: "quota: the workspace's core quota allows 2 nodes of this cluster; the queue needs 3"},
		},
		{
			name:    "quota above max: max is what limits",
			cluster: with(func(c *Cluster) { c.QuotaNodes = 5; c.MaxNodes = 2 }),
			queue:   runs(3, whole),
			want:    Decision{Target: 2, Create: 2, Reason: "cluster at max_nodes (2); waiting for a node to free up"},
		},
		{
			name:    "quota 0 wins over min_nodes",
			cluster: with(func(c *Cluster) { c.QuotaNodes = 0; c.MinNodes = 2 }),
			want:    Decision{Target: 0},
		},
		{
			name:    "quota 0 lets idle min_nodes go after the timer",
			cluster: with(func(c *Cluster) { c.QuotaNodes = 0; c.MinNodes = 2 }),
			nodes:   []Node{idleNode("a", time.Hour), idleNode("b", time.Minute)},
			want:    Decision{Target: 0, Delete: []string{"a"}, NextCheck: base.Add(9 * time.Minute)},
		},
		{
			name:    "leaving nodes are not capacity and are deleted again",
			cluster: testCluster(),
			nodes:   []Node{{ID: "l", State: store.NodeLeaving, FreeCores: 4, FreeMemGB: 16, FreeGPUs: 1}},
			queue:   []Run{small},
			want:    Decision{Target: 1, Create: 1, Delete: []string{"l"}, Reason: "scaling cluster 0→1 nodes"},
		},
		{
			name:    "a run bigger than a node is skipped",
			cluster: testCluster(),
			queue:   []Run{{Nodes: 1, Cores: 8}},
			want:    Decision{Reason: "a queued run needs more than one node of this cluster has (4 cores, 16 GB memory, 1 GPUs)"},
		},
		{
			name:    "a run bigger than a node does not hide the others",
			cluster: testCluster(),
			queue:   []Run{{Nodes: 1, Cores: 1, GPUs: 2}, small},
			want:    Decision{Target: 1, Create: 1, Reason: "scaling cluster 0→1 nodes"},
		},
		{
			name:    "GPUs and memory limit packing, not only cores",
			cluster: testCluster(),
			// Cores alone would fit all five on two nodes.
			queue: []Run{
				{Nodes: 1, Cores: 1, GPUs: 1}, {Nodes: 1, Cores: 1, GPUs: 1},
				{Nodes: 1, Cores: 1, MemoryGB: 10}, {Nodes: 1, Cores: 1, MemoryGB: 10}, {Nodes: 1, Cores: 1, MemoryGB: 10},
			},
			want: Decision{Target: 3, Create: 3, Reason: "scaling cluster 0→3 nodes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Decide(tt.cluster, tt.nodes, tt.queue, base)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideNoDoubleCreate plays two passes: the nodes the first pass
// created are starting in the second, which must create none.
func TestDecideNoDoubleCreate(t *testing.T) {
	t.Parallel()
	c := testCluster()
	queue := runs(10, Run{Nodes: 1, Cores: 2, MemoryGB: 4})
	first := Decide(c, nil, queue, base)
	if first.Create != 5 {
		t.Fatalf("first pass Create = %d, want 5", first.Create)
	}
	var nodes []Node
	for i := range first.Create {
		nodes = append(nodes, startingNode(fmt.Sprintf("n%d", i)))
	}
	second := Decide(c, nodes, queue, base.Add(time.Second))
	want := Decision{Target: 5}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("second pass mismatch (-want +got):\n%s", diff)
	}
}

// TestDecideProperties checks invariants over random clusters, nodes and
// queues.
func TestDecideProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	states := []string{store.NodeStarting, store.NodeIdle, store.NodeIdle, store.NodeRunning, store.NodeLeaving, store.NodeUnusable, store.NodePreempted}
	seen := map[string]int{}
	for i := range 2000 {
		c := randomCluster(rng)
		nodes := make([]Node, rng.IntN(14))
		for k := range nodes {
			st := states[rng.IntN(len(states))]
			n := Node{ID: fmt.Sprintf("n%02d", rng.IntN(100)*100+k), State: st}
			switch st {
			case store.NodeStarting, store.NodeIdle:
				n.FreeCores, n.FreeMemGB, n.FreeGPUs = c.NodeCores, c.NodeMemGB, c.NodeGPUs
			case store.NodeRunning:
				n.FreeCores = float64(rng.IntN(int(c.NodeCores) + 1))
				n.FreeMemGB = float64(rng.IntN(int(c.NodeMemGB) + 1))
				n.FreeGPUs = rng.IntN(c.NodeGPUs + 1)
			}
			if st == store.NodeIdle {
				// Whole minutes, so equal idle times (ID tie-breaks) happen.
				n.IdleSince = base.Add(-time.Duration(rng.IntN(30)) * time.Minute)
			}
			nodes[k] = n
		}
		queue := make([]Run, rng.IntN(12))
		for k := range queue {
			queue[k] = Run{
				Nodes:    1 + rng.IntN(3)*rng.IntN(2),
				Cores:    float64(rng.IntN(int(c.NodeCores)+2)) / 2,
				MemoryGB: float64(rng.IntN(int(c.NodeMemGB) + 2)),
				GPUs:     rng.IntN(c.NodeGPUs + 2),
			}
		}
		name := fmt.Sprintf("case %d: cluster %+v nodes %+v queue %+v", i, c, nodes, queue)
		d := checkDecision(t, name, c, nodes, queue)
		if t.Failed() {
			return
		}
		seen["create"] += min(d.Create, 1)
		seen["delete"] += min(len(d.Delete), 1)
		seen["next check"] += min(int(d.NextCheck.Sub(base)), 1)
		seen["reason"] += min(len(d.Reason), 1)
	}
	// The generator must reach the interesting cases, or the checks above
	// prove little.
	for _, what := range []string{"create", "delete", "next check", "reason"} {
		if seen[what] < 100 {
			t.Errorf("only %d of 2000 cases with a %s", seen[what], what)
		}
	}
	t.Logf("cases with: %v", seen)
}

func randomCluster(rng *rand.Rand) Cluster {
	sizes := []float64{1, 2, 4, 8}
	c := Cluster{
		Key:        "ws/rand",
		MinNodes:   rng.IntN(4),
		MaxNodes:   rng.IntN(9),
		IdleAfter:  time.Duration(rng.IntN(21)) * time.Minute,
		NodeCores:  sizes[rng.IntN(len(sizes))],
		NodeMemGB:  float64(4 * (1 + rng.IntN(8))),
		NodeGPUs:   rng.IntN(3),
		QuotaNodes: -1,
	}
	if rng.IntN(3) == 0 {
		c.QuotaNodes = rng.IntN(7)
	}
	return c
}

// checkDecision checks one Decide call's invariants and returns its
// Decision.
func checkDecision(t *testing.T, name string, c Cluster, nodes []Node, queue []Run) Decision {
	t.Helper()
	nodesCopy, queueCopy := slices.Clone(nodes), slices.Clone(queue)
	d := Decide(c, nodes, queue, base)
	if again := Decide(c, nodes, queue, base); !cmp.Equal(d, again) {
		t.Errorf("%s: not deterministic: %+v then %+v", name, d, again)
	}
	if !slices.Equal(nodes, nodesCopy) || !slices.Equal(queue, queueCopy) {
		t.Errorf("%s: Decide changed its inputs", name)
	}

	ceil := c.MaxNodes
	if c.QuotaNodes >= 0 {
		ceil = min(ceil, c.QuotaNodes)
	}
	floor := min(c.MinNodes, ceil)
	if d.Target < 0 || d.Target > c.MaxNodes {
		t.Errorf("%s: Target %d outside [0, %d]", name, d.Target, c.MaxNodes)
	}
	if c.QuotaNodes >= 0 && d.Target > c.QuotaNodes {
		t.Errorf("%s: Target %d above quota %d", name, d.Target, c.QuotaNodes)
	}
	if d.Create < 0 {
		t.Errorf("%s: Create %d < 0", name, d.Create)
	}
	if len(queue) == 0 && d.Reason != "" {
		t.Errorf("%s: Reason %q with an empty queue", name, d.Reason)
	}
	if !d.NextCheck.IsZero() && !d.NextCheck.After(base) {
		t.Errorf("%s: NextCheck %v not in the future", name, d.NextCheck)
	}

	byID := map[string]Node{}
	usable, dead := 0, 0
	for _, n := range nodes {
		byID[n.ID] = n
		switch n.State {
		case store.NodeStarting, store.NodeIdle, store.NodeRunning:
			usable++
		case store.NodeUnusable, store.NodePreempted, store.NodeLeaving:
			dead++
		}
	}
	if len(byID) != len(nodes) {
		return d // duplicate IDs: only the checks above apply
	}
	idleDeleted, deadDeleted := 0, 0
	for k, id := range d.Delete {
		n, ok := byID[id]
		if !ok {
			t.Errorf("%s: deletes unknown node %q", name, id)
			continue
		}
		switch n.State {
		case store.NodeIdle:
			idleDeleted++
			if usable <= c.MaxNodes && base.Sub(n.IdleSince) < c.IdleAfter {
				t.Errorf("%s: deletes %s before its idle deadline", name, id)
			}
		case store.NodeUnusable, store.NodePreempted, store.NodeLeaving:
			deadDeleted++
		default:
			t.Errorf("%s: deletes %s node %s", name, n.State, id)
		}
		if k > 0 {
			p := byID[d.Delete[k-1]]
			if o := p.IdleSince.Compare(n.IdleSince); o > 0 || o == 0 && p.ID >= n.ID {
				t.Errorf("%s: Delete not sorted by idle time, then ID: %v", name, d.Delete)
			}
		}
	}
	if deadDeleted != dead {
		t.Errorf("%s: deletes %d of %d unusable/preempted/leaving nodes", name, deadDeleted, dead)
	}
	if d.Create > 0 {
		if idleDeleted > 0 {
			t.Errorf("%s: creates %d and deletes %d idle nodes in one pass", name, d.Create, idleDeleted)
		}
		if usable+d.Create > ceil {
			t.Errorf("%s: %d usable + %d created above the limit %d", name, usable, d.Create, ceil)
		}
	}
	after := usable + d.Create - idleDeleted
	if after > c.MaxNodes {
		if d.Create > 0 {
			t.Errorf("%s: creates %d while above max_nodes", name, d.Create)
		}
		if len(queue) == 0 {
			for _, n := range nodes {
				if n.State == store.NodeIdle && !slices.Contains(d.Delete, n.ID) {
					t.Errorf("%s: %d nodes above max_nodes %d but idle %s kept", name, after, c.MaxNodes, n.ID)
				}
			}
		}
	}
	if after < min(usable, floor) {
		t.Errorf("%s: scales down to %d, below min_nodes %d", name, after, floor)
	}

	// Applying the decision and deciding again at the same time must
	// change nothing: no flapping, no double create.
	var next []Node
	for _, n := range nodes {
		if !slices.Contains(d.Delete, n.ID) {
			next = append(next, n)
		}
	}
	for k := range d.Create {
		next = append(next, Node{ID: fmt.Sprintf("new%d", k), State: store.NodeStarting,
			FreeCores: c.NodeCores, FreeMemGB: c.NodeMemGB, FreeGPUs: c.NodeGPUs})
	}
	d2 := Decide(c, next, queue, base)
	if d2.Create != 0 || len(d2.Delete) != 0 {
		t.Errorf("%s: not stable: first %+v, then %+v", name, d, d2)
	}
	return d
}

// TestFirstFitSkipsOnlyWhatCannotFit checks the per-shape search start
// against a plain first fit from slot 0: for random slots and queues of
// a few repeated shapes (gangs included), every placement lands on the
// same slots and leaves the same remainder.
func TestFirstFitSkipsOnlyWhatCannotFit(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	shapes := []Run{{Nodes: 1, Cores: 1}, {Nodes: 1, Cores: 2, MemoryGB: 4}, {Nodes: 2, Cores: 1}, {Nodes: 1, Cores: 0.5, GPUs: 1}, {Nodes: 3, Cores: 3}}
	plain := func(slots []slot, r *Run, n int) int {
		for k := range slots {
			if n > 0 && slots[k].fits(r) {
				slots[k].take(r)
				n--
			}
		}
		return n
	}
	for round := range 200 {
		slots := make([]slot, rng.IntN(20))
		for i := range slots {
			slots[i] = slot{cores: float64(rng.IntN(5)), mem: float64(rng.IntN(9)), gpus: rng.IntN(2)}
		}
		want := slices.Clone(slots)
		f := firstFit{slots: slots}
		for i := range 60 {
			r := shapes[rng.IntN(len(shapes))]
			if got, exp := f.place(&r, r.Nodes), plain(want, &r, r.Nodes); got != exp || !slices.Equal(f.slots, want) {
				t.Fatalf("round %d, run %d (%+v): left %d unplaced, slots %v; plain first fit left %d, slots %v", round, i, r, got, f.slots, exp, want)
			}
			if rng.IntN(10) == 0 { // a virtual node added at the end
				f.slots = append(f.slots, slot{cores: 4, mem: 8, gpus: 1})
				want = append(want, slot{cores: 4, mem: 8, gpus: 1})
			}
		}
	}
}
