package targets

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/quota"
	"github.com/paddock-ml/paddock/internal/store"
)

// checkQuota refuses a cluster whose min_nodes would hold more cores than
// the workspace's quotas leave.
func (s *Service) checkQuota(ctx context.Context, ws, name, typ string, props json.RawMessage) error {
	vmSize, minNodes, low, holds := compute.QuotaOf(store.Compute{Type: typ, Properties: props})
	if !holds || minNodes == 0 || s.Nodes == nil {
		return nil
	}
	size, _ := s.Sizes.Find(vmSize)
	qs, err := s.Store.Quotas(ctx, ws)
	if err != nil || len(qs) == 0 {
		return err
	}
	all, err := s.Nodes(ctx, ws, "")
	if err != nil {
		return err
	}
	usage, err := quota.Measure(ctx, s.Store, s.Sizes, ws, all)
	if err != nil {
		return err
	}
	have := 0
	for _, n := range all {
		if strings.EqualFold(n.Compute, name) && n.State != "leaving" {
			have++
		}
	}
	need := float64(max(minNodes-have, 0) * size.Cores)
	if left, why := quota.Remaining(qs, usage, size.Family, low); need > left {
		what := fmt.Sprintf("min_nodes %d of %s", minNodes, size.Name)
		if compute.CanStartStop(store.Compute{Type: typ}) {
			what = "an instance of " + size.Name
		}
		return api.Conflict("quota exceeded: %s needs %g more cores, but %s (see `paddock quota show`)", what, need, why)
	}
	return nil
}

// MaxQuotaCores bounds a quota: a million cores.
const MaxQuotaCores = 1000000

// Quotas returns the workspace's quotas with what is in use, the
// workspace-wide row first.
func (s *Service) Quotas(ctx context.Context, ws string) ([]api.Quota, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return nil, err
	}
	qs, err := s.Store.Quotas(ctx, ws)
	if err != nil {
		return nil, err
	}
	var nodes []store.Node
	if s.Nodes != nil {
		if nodes, err = s.Nodes(ctx, ws, ""); err != nil {
			return nil, err
		}
	}
	usage, err := quota.Measure(ctx, s.Store, s.Sizes, ws, nodes)
	if err != nil {
		return nil, err
	}
	rows := map[string]api.Quota{"": {Family: "", DedicatedCores: store.Unlimited, LowPriorityCores: store.Unlimited}}
	for _, q := range qs {
		rows[q.Family] = api.Quota{Family: q.Family, DedicatedCores: q.DedicatedCores, LowPriorityCores: q.LowPriorityCores}
	}
	for fam := range usage.Dedicated {
		if _, ok := rows[fam]; !ok {
			rows[fam] = api.Quota{Family: fam, DedicatedCores: store.Unlimited, LowPriorityCores: store.Unlimited}
		}
	}
	for fam := range usage.LowPriority {
		if _, ok := rows[fam]; !ok {
			rows[fam] = api.Quota{Family: fam, DedicatedCores: store.Unlimited, LowPriorityCores: store.Unlimited}
		}
	}
	out := make([]api.Quota, 0, len(rows))
	for fam, q := range rows {
		q.DedicatedUsed, q.LowPriorityUsed = usage.Used(fam, false), usage.Used(fam, true)
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Family < out[j].Family })
	return out, nil
}

// SetQuota changes a quota; fields left nil keep their value.
func (s *Service) SetQuota(ctx context.Context, ws string, in api.QuotaSet) (api.Quota, error) {
	if err := s.CheckWorkspace(ctx, ws); err != nil {
		return api.Quota{}, err
	}
	if in.DedicatedCores == nil && in.LowPriorityCores == nil {
		return api.Quota{}, api.Invalid("dedicated_cores", "give dedicated_cores, lowpriority_cores or both (-1 for no limit)")
	}
	if in.Family != "" {
		found := false
		for _, sz := range s.Sizes.All() {
			found = found || sz.Family == in.Family
		}
		if !found {
			return api.Quota{}, api.Invalid("family", "family %q is not the family of any size (see `paddock compute sizes`)", in.Family)
		}
	}
	q := store.Quota{Workspace: ws, Family: in.Family, DedicatedCores: store.Unlimited, LowPriorityCores: store.Unlimited}
	qs, err := s.Store.Quotas(ctx, ws)
	if err != nil {
		return api.Quota{}, err
	}
	for _, old := range qs {
		if old.Family == in.Family {
			q = old
		}
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"dedicated_cores", in.DedicatedCores}, {"lowpriority_cores", in.LowPriorityCores}} {
		if f.v != nil && (*f.v < store.Unlimited || *f.v > MaxQuotaCores) {
			return api.Quota{}, api.Invalid(f.name, "%s must be 0 to %d, or -1 for no limit, not %d", f.name, MaxQuotaCores, *f.v)
		}
	}
	if in.DedicatedCores != nil {
		q.DedicatedCores = *in.DedicatedCores
	}
	if in.LowPriorityCores != nil {
		q.LowPriorityCores = *in.LowPriorityCores
	}
	if err := s.Store.PutQuota(ctx, q); err != nil {
		return api.Quota{}, err
	}
	// Every cluster may now grow or must stop growing.
	recs, err := s.Store.ListComputes(ctx, ws)
	if err != nil {
		return api.Quota{}, err
	}
	for _, r := range recs {
		if _, _, _, holds := compute.QuotaOf(r); holds {
			s.changed(store.Key(ws, r.Name))
		}
	}
	return api.Quota{Family: q.Family, DedicatedCores: q.DedicatedCores, LowPriorityCores: q.LowPriorityCores}, nil
}
