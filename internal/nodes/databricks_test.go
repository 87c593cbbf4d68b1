package nodes_test

import (
	"testing"

	"github.com/paddock-ml/paddock/internal/databricks/databrickstest"
	"github.com/paddock-ml/paddock/internal/store"
)

// A databricks target keeps one node, the in-server agent, with one core
// per run it may have in flight; a lost node is replaced.
func TestDatabricksKeepsOneNode(t *testing.T) {
	ws, err := databrickstest.Start("dapi-nodes", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ws.Close)
	f := newFixture(t)
	f.create("dbx", "databricks", map[string]any{"workspace_url": ws.URL, "access_token": "dapi-nodes",
		"cluster_id": databrickstest.ClusterID, "max_concurrent_runs": 3})
	f.submit("dbx", 1)
	f.pass("dbx")
	f.pass("dbx")
	nodes := f.nodes("dbx")
	if len(nodes) != 1 || nodes[0].Cores != 3 {
		t.Fatalf("nodes after two passes: %+v", nodes)
	}
	if spec, _ := f.dbx.spec(nodes[0].ID); spec.Host != "dbx" || spec.Cores != 3 {
		t.Errorf("the node's spec: %+v", spec)
	}
	f.ready("dbx")
	f.pass("dbx")
	if err := f.disp.NodeGone(f.ctx, nodes[0].ID, false); err != nil {
		t.Fatal(err)
	}
	f.pass("dbx")
	after := f.nodes("dbx")
	if len(after) != 1 || after[0].ID == nodes[0].ID || !f.dbx.wasDeleted(nodes[0].ID) || after[0].State != store.NodeStarting {
		t.Errorf("after the node was lost: %+v (deleted %v)", after, f.dbx.wasDeleted(nodes[0].ID))
	}
}
