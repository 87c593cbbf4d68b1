package nodes

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/store"
)

// benchFleet is clusters of nodesPer nodes (a mix of idle, running and
// starting ones), each with a queue of queueLen runs.
type benchFleet struct {
	clusters []Cluster
	nodes    [][]Node
	queues   [][]Run
}

func newBenchFleet(clusters, nodesPer, queueLen int) benchFleet {
	rng := rand.New(rand.NewPCG(7, 11))
	f := benchFleet{
		clusters: make([]Cluster, clusters),
		nodes:    make([][]Node, clusters),
		queues:   make([][]Run, clusters),
	}
	for i := range clusters {
		c := Cluster{
			Key: fmt.Sprintf("ws%d/c%d", i%17, i), MinNodes: rng.IntN(4), MaxNodes: nodesPer + rng.IntN(nodesPer),
			IdleAfter: 10 * time.Minute, NodeCores: 8, NodeMemGB: 64, NodeGPUs: 2, QuotaNodes: -1,
		}
		if i%5 == 0 {
			c.QuotaNodes = nodesPer + rng.IntN(10)
		}
		f.clusters[i] = c
		nodes := make([]Node, nodesPer)
		for k := range nodes {
			n := Node{ID: fmt.Sprintf("c%d-n%03d", i, k)}
			switch p := rng.IntN(10); {
			case p < 3:
				n.State = store.NodeIdle
				n.FreeCores, n.FreeMemGB, n.FreeGPUs = c.NodeCores, c.NodeMemGB, c.NodeGPUs
				n.IdleSince = base.Add(-time.Duration(rng.IntN(1200)) * time.Second)
			case p < 9:
				n.State = store.NodeRunning
				n.FreeCores = float64(rng.IntN(3))
				n.FreeMemGB = float64(rng.IntN(17))
				n.FreeGPUs = rng.IntN(2) * rng.IntN(2)
			default:
				n.State = store.NodeStarting
				n.FreeCores, n.FreeMemGB, n.FreeGPUs = c.NodeCores, c.NodeMemGB, c.NodeGPUs
			}
			nodes[k] = n
		}
		f.nodes[i] = nodes
		queue := make([]Run, queueLen)
		for k := range queue {
			queue[k] = Run{
				Nodes:    1 + rng.IntN(2)*rng.IntN(2)*rng.IntN(4),
				Cores:    float64(1 + rng.IntN(8)),
				MemoryGB: float64(1 + rng.IntN(64)),
				GPUs:     rng.IntN(3),
			}
		}
		f.queues[i] = queue
	}
	return f
}

// BenchmarkDecide1000x100 is one autoscaler pass over 1,000 clusters of
// 100 nodes with 50 queued runs each; one op is the whole pass.
func BenchmarkDecide1000x100(b *testing.B) {
	f := newBenchFleet(1000, 100, 50)
	var created int
	b.ReportAllocs()
	for b.Loop() {
		for i := range f.clusters {
			d := Decide(f.clusters[i], f.nodes[i], f.queues[i], base)
			created += d.Create
		}
	}
	if created == 0 {
		b.Fatal("the fleet never needs new nodes; the benchmark measures too little")
	}
}
