package nodes

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/paddock-ml/paddock/internal/scheduler"
	"github.com/paddock-ml/paddock/internal/store"
)

// slot is the free capacity of one node in the placement simulation: an
// existing usable node, or a virtual node the cluster would have to create.
type slot struct {
	cores, mem float64
	gpus       int
	used       bool // a queued run was placed on it
}

func (s *slot) fits(r *Run) bool {
	return scheduler.FitsIn(r.Cores, r.MemoryGB, r.GPUs, s.cores, s.mem, s.gpus)
}

func (s *slot) take(r *Run) {
	s.cores -= r.Cores
	s.mem -= r.MemoryGB
	s.gpus -= r.GPUs
	s.used = true
}

// shape is what one node of a run asks for.
type shape struct {
	cores, mem float64
	gpus       int
}

// firstFit places runs first fit on slots. Slots only lose capacity, so a
// slot that did not fit a shape never will: from says, per shape, where
// its next search starts, which keeps a long queue of like runs linear
// instead of runs × slots.
type firstFit struct {
	slots []slot
	from  map[shape]int
}

// place puts up to n nodes' worth of r onto distinct slots, first fit,
// and returns how many of the gang's nodes are still unplaced.
func (f *firstFit) place(r *Run, n int) int {
	key := shape{r.Cores, r.MemoryGB, r.GPUs}
	start := f.from[key]
	next := -1
	for k := start; k < len(f.slots) && n > 0; k++ {
		if f.slots[k].fits(r) {
			f.slots[k].take(r)
			n--
			if next < 0 {
				next = k
			}
		}
	}
	if next < 0 {
		next = len(f.slots)
	}
	if next != start {
		if f.from == nil {
			f.from = map[shape]int{}
		}
		f.from[key] = next
	}
	return n
}

// deletion is one node to delete, kept with its idle time for sorting.
type deletion struct {
	id        string
	idleSince time.Time
}

// Decide says what one cluster should do now, given its settings, the
// nodes observed in it, its queued runs in queue order and the current
// time. It is a pure function: no clock reads, no I/O, and the same inputs
// always give the same Decision.
//
// Capacity. Nodes that are starting, idle or running are usable capacity.
// Starting nodes count with their whole size, so a pass made while nodes
// boot sees the demand already covered and starts no more. Leaving nodes
// count for nothing (they are on their way out). Unusable and preempted
// nodes are always deleted; they count for nothing, so the target replaces
// them with new nodes when demand (or MinNodes) needs it.
//
// Demand. The queued runs are placed, in order and first fit, on the free
// capacity of the usable nodes: running and starting nodes first, then idle
// nodes most recently idle first, so that the longest-idle nodes stay free
// to scale down. A gang run (Nodes = N) takes N distinct nodes that each
// fit it; the part of a run that existing capacity cannot hold goes onto
// virtual empty nodes of the cluster's size, and later runs are packed
// first fit into those virtual nodes' remaining capacity before another is
// added. The virtual nodes are the extra nodes the queue needs. A run that
// cannot run in this cluster at all (larger than one node, or a gang larger
// than MaxNodes) is skipped: it adds no demand.
//
// Target. Target is usable+extra clamped to [MinNodes, MaxNodes] and, when
// QuotaNodes ≥ 0, to at most QuotaNodes. The quota wins over MinNodes: a
// workspace without quota for this cluster gets no nodes kept warm. Create
// is how far the target is above the usable count. After deletions the
// reported Target is the node count the cluster is heading to, within the
// same bounds.
//
// Scale down. Busy (running) and starting nodes are never deleted, nor an
// idle node the simulation placed a queued run on. If MaxNodes was lowered
// below the usable count, idle nodes beyond MaxNodes go at once, longest
// idle first, whatever their idle timer. Otherwise idle nodes go only when
// the queue needs no new node (nothing is created in the same pass), their
// idle time (now − IdleSince) has reached IdleAfter, and the cluster stays
// at or above MinNodes (or the quota, if lower); longest idle first.
// NextCheck is then the earliest idle deadline still ahead, when some node
// could go at it; zero otherwise.
//
// Why it does not flap. A pass never both creates nodes and deletes idle
// ones for being idle; starting nodes count as capacity, so demand already
// being served does not create twice; a node is deleted only after a full
// IdleAfter of idleness and never while the queue needs it, so a node
// created for a run is not removed before the run reaches it, and a short
// gap between runs does not shrink the cluster.
//
// Reason is for the queued runs' status_reason: "" when the queue is empty
// or every queued run fits existing usable capacity. Otherwise, first that
// applies: the quota limits the nodes the queue needs; MaxNodes does; a
// gang run waits for several nodes together; the cluster is scaling from
// the usable count to Target. When the only runs that do not fit are ones
// that can never run here, Reason says why.
//
// Delete lists the nodes to delete (unusable, preempted and idle ones),
// sorted by IdleSince, then ID.
func Decide(c Cluster, nodes []Node, queue []Run, now time.Time) Decision {
	ceil := max(c.MaxNodes, 0)
	if c.QuotaNodes >= 0 && c.QuotaNodes < ceil {
		ceil = c.QuotaNodes
	}
	floor := min(max(c.MinNodes, 0), ceil)

	// Sort the nodes out. The fixed-size buffers keep the common case
	// (clusters of up to a few hundred nodes) free of heap allocations.
	var slotBuf [256]slot
	var idleBuf [256]int32
	var delBuf [16]deletion
	slots := slotBuf[:0]
	idle := idleBuf[:0] // indexes into nodes
	dels := delBuf[:0]
	for i := range nodes {
		n := &nodes[i]
		switch n.State {
		case store.NodeStarting, store.NodeRunning:
			slots = append(slots, slot{cores: n.FreeCores, mem: n.FreeMemGB, gpus: n.FreeGPUs})
		case store.NodeIdle:
			idle = append(idle, int32(i))
		case store.NodeUnusable, store.NodePreempted, store.NodeLeaving:
			// Leaving nodes are deleted again: a removal that failed or was
			// cut short by a restart must not leak the node.
			dels = append(dels, deletion{id: n.ID, idleSince: n.IdleSince})
		}
	}
	// Longest idle first; ID breaks ties so the order never depends on
	// the order the nodes were listed in.
	slices.SortFunc(idle, func(a, b int32) int {
		if o := nodes[a].IdleSince.Compare(nodes[b].IdleSince); o != 0 {
			return o
		}
		return cmp.Compare(nodes[a].ID, nodes[b].ID)
	})
	busy := len(slots)
	usable := busy + len(idle)
	// Idle nodes go into the simulation most recently idle first:
	// idle[j] is slots[busy+len(idle)-1-j].
	for j := len(idle) - 1; j >= 0; j-- {
		n := &nodes[idle[j]]
		slots = append(slots, slot{cores: n.FreeCores, mem: n.FreeMemGB, gpus: n.FreeGPUs})
	}
	idleSlot := func(j int) *slot { return &slots[busy+len(idle)-1-j] }

	// Place the queue.
	var virtBuf [64]slot
	real, virt := firstFit{slots: slots}, firstFit{slots: virtBuf[:0]}
	allFit := true
	gang := 0        // size of the first gang run that needs new nodes
	var tooBig *Run  // first run larger than one node
	var tooWide *Run // first gang run larger than MaxNodes
	for i := range queue {
		r := &queue[i]
		n := max(r.Nodes, 1)
		if !scheduler.FitsIn(r.Cores, r.MemoryGB, r.GPUs, c.NodeCores, c.NodeMemGB, c.NodeGPUs) {
			allFit = false
			if tooBig == nil {
				tooBig = r
			}
			continue
		}
		if n > 1 && n > c.MaxNodes {
			allFit = false
			if tooWide == nil {
				tooWide = r
			}
			continue
		}
		if n = real.place(r, n); n == 0 {
			continue
		}
		allFit = false
		if r.Nodes > 1 && gang == 0 {
			gang = r.Nodes
		}
		for n = virt.place(r, n); n > 0; n-- {
			virt.slots = append(virt.slots, slot{
				cores: c.NodeCores - r.Cores,
				mem:   c.NodeMemGB - r.MemoryGB,
				gpus:  c.NodeGPUs - r.GPUs,
			})
		}
	}
	extra := len(virt.slots)

	target := min(max(usable+extra, floor), ceil)
	create := max(0, target-usable)

	// Scale down. j walks the idle nodes longest idle first; both rules
	// take a prefix of the ones the queue does not need.
	deleted := 0
	j := 0
	if maxNodes := max(c.MaxNodes, 0); usable > maxNodes {
		for ; j < len(idle) && usable-deleted > maxNodes; j++ {
			if !idleSlot(j).used {
				n := &nodes[idle[j]]
				dels = append(dels, deletion{id: n.ID, idleSince: n.IdleSince})
				deleted++
			}
		}
	}
	var next time.Time
	if create == 0 && extra == 0 {
		for ; j < len(idle) && usable-deleted > floor; j++ {
			if idleSlot(j).used {
				continue
			}
			n := &nodes[idle[j]]
			if now.Sub(n.IdleSince) < c.IdleAfter {
				next = n.IdleSince.Add(c.IdleAfter)
				break
			}
			dels = append(dels, deletion{id: n.ID, idleSince: n.IdleSince})
			deleted++
		}
	}

	d := Decision{
		Target:    min(max(usable+create-deleted, floor), ceil),
		Create:    create,
		NextCheck: next,
	}
	if len(dels) > 0 {
		slices.SortFunc(dels, func(a, b deletion) int {
			if o := a.idleSince.Compare(b.idleSince); o != 0 {
				return o
			}
			return cmp.Compare(a.id, b.id)
		})
		d.Delete = make([]string, len(dels))
		for i := range dels {
			d.Delete[i] = dels[i].id
		}
	}

	if len(queue) == 0 || allFit {
		return d
	}
	wanted := usable + extra
	switch {
	case extra > 0 && wanted > ceil && c.QuotaNodes >= 0 && c.QuotaNodes <= c.MaxNodes:
		d.Reason = fmt.Sprintf("quota: the workspace's core quota allows %d %s of this cluster; the queue needs %d",
			c.QuotaNodes, plural(c.QuotaNodes, "node", "nodes"), wanted)
	case extra > 0 && wanted > ceil:
		d.Reason = fmt.Sprintf("cluster at max_nodes (%d); waiting for a node to free up", c.MaxNodes)
	case gang > 0:
		d.Reason = fmt.Sprintf("waiting for %d nodes together", gang)
	case extra > 0:
		d.Reason = fmt.Sprintf("scaling cluster %d→%d nodes", usable, d.Target)
	case tooBig != nil:
		d.Reason = fmt.Sprintf("a queued run needs more than one node of this cluster has (%g cores, %g GB memory, %d GPUs)",
			c.NodeCores, c.NodeMemGB, c.NodeGPUs)
	case tooWide != nil:
		d.Reason = fmt.Sprintf("a queued run needs %d nodes together but max_nodes is %d", tooWide.Nodes, c.MaxNodes)
	}
	return d
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
