package scheduler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestPlace(t *testing.T) {
	t.Parallel()
	two := func(id string) Node { return Node{ID: id, Target: "local", FreeCores: 2, FreeMemGB: 8} }
	req := func(id string, cores float64) Request {
		return Request{RunID: id, Target: "local", Nodes: 1, Cores: cores}
	}
	tests := []struct {
		name  string
		queue []Request
		nodes []Node
		want  []Placement
	}{
		{"empty queue", nil, []Node{two("n1")}, nil},
		{"no nodes", []Request{req("r1", 1)}, nil, nil},
		{"fills the node then waits", []Request{req("r1", 1), req("r2", 1), req("r3", 1)}, []Node{two("n1")},
			[]Placement{{RunID: "r1", Nodes: []string{"n1"}}, {RunID: "r2", Nodes: []string{"n1"}}}},
		{"FIFO: a big head blocks smaller runs behind it", []Request{req("r1", 1), req("big", 2), req("r3", 1)}, []Node{two("n1")},
			[]Placement{{RunID: "r1", Nodes: []string{"n1"}}}},
		{"other targets are not blocked", []Request{req("big", 4), {RunID: "c1", Target: "gpu", Nodes: 1, Cores: 1}},
			[]Node{two("n1"), {ID: "g1", Target: "gpu", FreeCores: 4}},
			[]Placement{{RunID: "c1", Nodes: []string{"g1"}}}},
		{"runs only go to their target's nodes", []Request{req("r1", 1)}, []Node{{ID: "x", Target: "other", FreeCores: 8}}, nil},
		{"best fit picks the fuller node", []Request{req("r1", 1)},
			[]Node{{ID: "empty", Target: "local", FreeCores: 4}, {ID: "half", Target: "local", FreeCores: 1.5}},
			[]Placement{{RunID: "r1", Nodes: []string{"half"}}}},
		{"memory must fit", []Request{{RunID: "r1", Target: "local", Nodes: 1, Cores: 1, MemoryGB: 16}}, []Node{two("n1")}, nil},
		{"fractional cores", []Request{req("a", 0.5), req("b", 0.5), req("c", 0.5), req("d", 0.5), req("e", 0.5)}, []Node{two("n1")},
			[]Placement{{RunID: "a", Nodes: []string{"n1"}}, {RunID: "b", Nodes: []string{"n1"}}, {RunID: "c", Nodes: []string{"n1"}}, {RunID: "d", Nodes: []string{"n1"}}}},
		{"GPUs are assigned by index", []Request{{RunID: "r1", Target: "local", Nodes: 1, GPUs: 1}, {RunID: "r2", Target: "local", Nodes: 1, GPUs: 2}},
			[]Node{{ID: "n1", Target: "local", FreeCores: 8, FreeGPUs: []int{0, 1, 3}}},
			[]Placement{{RunID: "r1", Nodes: []string{"n1"}, GPUs: map[string][]int{"n1": {0}}}, {RunID: "r2", Nodes: []string{"n1"}, GPUs: map[string][]int{"n1": {1, 3}}}}},
		{"gang gets all its nodes at once", []Request{{RunID: "g", Target: "local", Nodes: 2, Cores: 2}}, []Node{two("n1"), two("n2")},
			[]Placement{{RunID: "g", Nodes: []string{"n1", "n2"}}}},
		{"a limited node runs at most its slots", []Request{req("a", 0), req("b", 0), req("c", 0)},
			[]Node{{ID: "i1", Target: "local", FreeCores: 4, Limited: true, FreeSlots: 2}},
			[]Placement{{RunID: "a", Nodes: []string{"i1"}}, {RunID: "b", Nodes: []string{"i1"}}}},
		{"a pinned node takes only its run; NoBlock runs do not block", []Request{
			{RunID: "a", Target: "s", Nodes: 1, Cores: 1, NoBlock: true}, {RunID: "b", Target: "s", Nodes: 1, Cores: 1, NoBlock: true}},
			[]Node{{ID: "pilot-b", Target: "s", FreeCores: 2, Pin: "b"}},
			[]Placement{{RunID: "b", Nodes: []string{"pilot-b"}}}},
		{"gang waits without reserving", []Request{{RunID: "g", Target: "local", Nodes: 3, Cores: 2}, req("r2", 1)}, []Node{two("n1"), two("n2")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := append([]Node(nil), tc.nodes...)
			got := Place(tc.queue, tc.nodes)
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Place (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, tc.nodes); d != "" {
				t.Errorf("Place modified its input:\n%s", d)
			}
		})
	}
}

// BenchmarkPlace is one scheduling pass: 1,000 nodes with 2 free cores,
// a queue of 5,000 one-core runs (the pass places 2,000 and stops).
func BenchmarkPlace(b *testing.B) {
	nodes := make([]Node, 1000)
	for i := range nodes {
		nodes[i] = Node{ID: string(rune('a'+i%26)) + string(rune(i)), Target: "c", FreeCores: 2, FreeMemGB: 8}
	}
	queue := make([]Request, 5000)
	for i := range queue {
		queue[i] = Request{RunID: "r", Target: "c", Nodes: 1, Cores: 1}
	}
	for b.Loop() {
		if got := Place(queue, nodes); len(got) != 2000 {
			b.Fatal(len(got))
		}
	}
}
