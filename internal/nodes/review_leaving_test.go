package nodes

import (
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/store"
)

// A node the controller drained (state leaving) but failed to delete —
// provider Delete errored, or the server stopped between Drain and
// RemoveNode — must be retried; Decide never lists leaving nodes again, so
// the node (and its VM) stays forever.
func TestReviewLeavingNodeIsDeletedAgain(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := Cluster{Key: "ws/c", MinNodes: 0, MaxNodes: 4, IdleAfter: time.Minute, NodeCores: 4, NodeMemGB: 16, QuotaNodes: -1}
	dec := Decide(c, []Node{{ID: "c-1", State: store.NodeLeaving}}, nil, now)
	if len(dec.Delete) != 1 || dec.Delete[0] != "c-1" {
		t.Fatalf("Delete = %v, want [c-1]", dec.Delete)
	}
}
