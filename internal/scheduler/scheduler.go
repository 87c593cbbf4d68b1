// Package scheduler decides where queued runs go. Place is a pure function
// of a snapshot — the queue and the nodes' free resources in, placements
// out — so it is tested with tables and knows nothing of stores or agents.
// The dispatcher applies its plan.
//
// Rules:
//   - Each target's queue is FIFO: runs are considered in order, and the
//     first run that does not fit blocks the runs behind it on that target,
//     so a large run is never starved by a stream of small ones.
//   - A multi-node run (gang) gets all its nodes in one placement or none;
//     nothing is reserved while it waits.
//   - Among nodes that fit, the one with the least free cores wins (best
//     fit), which keeps other nodes empty so they can be scaled down.
package scheduler

import (
	"sort"
	"time"
)

// Request is a queued run as the scheduler sees it.
type Request struct {
	RunID    string
	Target   string // the compute target; runs only go to its nodes
	Nodes    int    // node count, ≥ 1
	Cores    float64
	MemoryGB float64
	GPUs     int
	// NoBlock keeps a run that does not fit from holding up the runs behind
	// it: for targets where every run has a node of its own (Slurm pilots).
	NoBlock bool
}

// Node is a node's free capacity.
type Node struct {
	ID        string
	Target    string
	FreeCores float64
	FreeMemGB float64
	FreeGPUs  []int // indices of unassigned GPUs
	// Limited nodes run at most a number of runs at once (a compute
	// instance's max_concurrent_runs); FreeSlots is how many more.
	Limited   bool
	FreeSlots int
	// Pin, when set, is the only run the node takes (a Slurm pilot job).
	Pin string
}

// Placement puts one run on its nodes.
type Placement struct {
	RunID string
	Nodes []string         // one per node of the run
	GPUs  map[string][]int // GPU indices assigned on each node
}

// Place returns placements for runs in queue order. queue must be in
// priority-then-submission order; nodes is not modified.
func Place(queue []Request, nodes []Node) []Placement {
	free := make([]Node, len(nodes))
	byTarget := map[string][]int{}
	for i, n := range nodes {
		free[i] = n
		free[i].FreeGPUs = append([]int(nil), n.FreeGPUs...)
		byTarget[n.Target] = append(byTarget[n.Target], i)
	}
	blocked := map[string]bool{}
	var out []Placement
	for _, r := range queue {
		if blocked[r.Target] {
			continue
		}
		picked := pick(r, free, byTarget[r.Target])
		if picked == nil {
			if !r.NoBlock {
				blocked[r.Target] = true
			}
			continue
		}
		p := Placement{RunID: r.RunID}
		for _, i := range picked {
			n := &free[i]
			n.FreeCores -= r.Cores
			n.FreeMemGB -= r.MemoryGB
			n.FreeSlots--
			if r.GPUs > 0 {
				if p.GPUs == nil {
					p.GPUs = map[string][]int{}
				}
				p.GPUs[n.ID] = n.FreeGPUs[:r.GPUs:r.GPUs]
				n.FreeGPUs = n.FreeGPUs[r.GPUs:]
			}
			p.Nodes = append(p.Nodes, n.ID)
		}
		out = append(out, p)
	}
	return out
}

// pick chooses r.Nodes distinct nodes among candidates (the indices of
// r's target's nodes) that fit, best fit first (ties: input order), or
// returns nil. A one-node request is a single pass; a gang sorts the nodes
// that fit.
func pick(r Request, free []Node, candidates []int) []int {
	need := max(r.Nodes, 1)
	if need == 1 {
		best := -1
		for _, i := range candidates {
			if fits(r, free[i]) && (best < 0 || free[i].FreeCores < free[best].FreeCores) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		return []int{best}
	}
	var fit []int
	for _, i := range candidates {
		if fits(r, free[i]) {
			fit = append(fit, i)
		}
	}
	if len(fit) < need {
		return nil
	}
	sort.SliceStable(fit, func(a, b int) bool { return free[fit[a]].FreeCores < free[fit[b]].FreeCores })
	return fit[:need]
}

// eps absorbs float rounding when fractional cores or memory are added up
// (ten runs of 0.1 cores fill a 1-core node).
const eps = 1e-9

// FitsIn is the one rule for whether a run's share of one node (cores,
// memory, GPUs) fits in what a node has free. Placement and the node
// controller's scaling decisions both use it.
func FitsIn(cores, memGB float64, gpus int, freeCores, freeMemGB float64, freeGPUs int) bool {
	return cores <= freeCores+eps && memGB <= freeMemGB+eps && gpus <= freeGPUs
}

func fits(r Request, n Node) bool {
	return FitsIn(r.Cores, r.MemoryGB, r.GPUs, n.FreeCores, n.FreeMemGB, len(n.FreeGPUs)) &&
		(!n.Limited || n.FreeSlots > 0) && (n.Pin == "" || n.Pin == r.RunID)
}

// Fits reports whether a run could ever run on a node of this total
// capacity; runs that could not are refused at submission instead of
// waiting forever.
func Fits(r Request, capacity Node) bool {
	capacity.Limited = false
	return fits(r, capacity)
}

// NodeView is one node of a target as its node controller sees it: its
// state and what it has free.
type NodeView struct {
	ID    string
	State string // a store.Node state
	// Free capacity now (for starting nodes: the whole node).
	FreeCores, FreeMemGB float64
	FreeGPUs             int
	// IdleSince is when the node last became idle (zero unless idle).
	IdleSince time.Time
}

// Demand is one queued run's need, in queue order.
type Demand struct {
	Nodes    int // gang size, ≥ 1
	Cores    float64
	MemoryGB float64
	GPUs     int
}
