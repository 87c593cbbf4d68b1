// Package nodes is the node controller: it keeps each compute target's
// nodes what the target needs — a cluster's autoscaling, an instance's one
// node, an attached machine's agent, a Slurm cluster's pilot jobs. The
// generic loop (controller.go) dispatches by target key to the reconciler
// registered for the target's kind, one file per kind; each reconciler acts
// through the target's node provider and the dispatcher.
//
// Decide, the autoscaling decision, is a pure function of (cluster
// settings, observed nodes, queued demand, now) → actions, so it is tested
// with tables and a fake clock.
package nodes

import (
	"time"

	"github.com/paddock-ml/paddock/internal/scheduler"
)

// Cluster is what the autoscaler knows of one cluster's settings.
type Cluster struct {
	Key       string // workspace/name (lower case)
	MinNodes  int
	MaxNodes  int
	IdleAfter time.Duration // idle_seconds_before_scaledown
	// The size of every node (vm_size).
	NodeCores, NodeMemGB float64
	NodeGPUs             int
	// QuotaNodes is how many nodes the workspace's core quota allows this
	// cluster in all (its existing nodes included); -1 means no limit.
	QuotaNodes int
}

// Node is one observed node of the cluster (the scheduler's view).
type Node = scheduler.NodeView

// Run is one queued run's request, in queue order.
type Run = scheduler.Demand

// Decision is what to do now.
type Decision struct {
	// Target is the node count the cluster should have (within
	// [MinNodes, MaxNodes] and the quota).
	Target int
	// Create is how many nodes to start.
	Create int
	// Delete lists nodes to remove: idle past their deadline (never below
	// MinNodes, never one the queue needs), and unusable or preempted nodes
	// (which are then replaced if the target needs them).
	Delete []string
	// Reason says why queued runs wait, for their status_reason, e.g.
	// "scaling cluster 1→3 nodes", "quota: ...", or "" when nothing waits.
	Reason string
	// NextCheck is when the decision may change without any event (the
	// earliest idle deadline); zero when only events matter.
	NextCheck time.Time
}
