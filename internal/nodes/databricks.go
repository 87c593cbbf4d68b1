package nodes

import (
	"context"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/reconcile"
	"github.com/paddock-ml/paddock/internal/store"
)

func init() { Register("databricks", reconcileDatabricks) }

// reconcileDatabricks keeps one node on a databricks target: the in-server
// agent that submits its runs to the workspace, with one core per run it
// may have in flight (max_concurrent_runs), replaced if it is lost.
func reconcileDatabricks(ctx context.Context, c *Controller, rec store.Compute) (reconcile.Result, error) {
	prov, ok := c.provider(rec)
	if !ok {
		return reconcile.Result{}, nil
	}
	p, err := compute.Props[compute.DatabricksProperties](rec)
	if err != nil {
		return reconcile.Result{}, err
	}
	nodes, err := c.Dispatch.Nodes(ctx, rec.Workspace, rec.Name)
	if err != nil {
		return reconcile.Result{}, err
	}
	cores := float64(p.MaxConcurrentRuns)
	return reconcile.Result{}, c.keepOneNode(ctx, prov, rec, nodes, "waiting for the Databricks agent of "+rec.Name+" to start",
		store.Node{Cores: cores, MemoryGB: compute.DatabricksNodeMemoryGB},
		provider.NodeSpec{Cores: cores, MemoryGB: compute.DatabricksNodeMemoryGB, Host: rec.Name})
}
