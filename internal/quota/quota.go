// Package quota caps the cores a workspace's cluster nodes may hold:
// dedicated and low-priority cores, for the whole workspace and per size
// family. Creating or raising a cluster's min_nodes past a quota is
// refused; the autoscaler stops growing a cluster at its quota and says so.
package quota

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
)

// Usage is the cores cluster nodes hold, by priority and size family.
type Usage struct {
	Dedicated, LowPriority map[string]float64 // family → cores
}

// Add counts a node.
func (u *Usage) Add(family string, low bool, cores float64) {
	m := &u.Dedicated
	if low {
		m = &u.LowPriority
	}
	if *m == nil {
		*m = map[string]float64{}
	}
	(*m)[family] += cores
}

// Used is the cores in use of a priority, in one family or (family "") in
// all.
func (u Usage) Used(family string, low bool) float64 {
	m := u.Dedicated
	if low {
		m = u.LowPriority
	}
	if family != "" {
		return m[family]
	}
	total := 0.0
	for _, c := range m {
		total += c
	}
	return total
}

func priority(low bool) string {
	if low {
		return "low-priority"
	}
	return "dedicated"
}

// Remaining is how many more cores of a family and priority the workspace
// may use (+Inf without a limit) and, when limited, which quota binds, in
// words for the user.
func Remaining(qs []store.Quota, u Usage, family string, low bool) (float64, string) {
	remaining, why := math.Inf(1), ""
	for _, q := range qs {
		if q.Family != "" && !strings.EqualFold(q.Family, family) {
			continue
		}
		limit := q.DedicatedCores
		if low {
			limit = q.LowPriorityCores
		}
		if limit == store.Unlimited {
			continue
		}
		used := u.Used(q.Family, low)
		if left := float64(limit) - used; left < remaining {
			remaining = max(left, 0)
			scope := "the workspace's"
			if q.Family != "" {
				scope = "the " + q.Family + " family's"
			}
			why = fmt.Sprintf("%s %s core quota is %d, %g in use", scope, priority(low), limit, used)
		}
	}
	return remaining, why
}

// Measure adds up the cores held by the nodes of a workspace's clusters and
// compute instances.
func Measure(ctx context.Context, st store.Store, sizes *compute.Catalog, ws string, nodes []store.Node) (Usage, error) {
	var u Usage
	recs, err := st.ListComputes(ctx, ws)
	if err != nil {
		return u, err
	}
	type kind struct {
		family string
		low    bool
	}
	clusters := map[string]kind{}
	for _, r := range recs {
		vmSize, _, low, holds := compute.QuotaOf(r)
		if !holds {
			continue
		}
		size, _ := sizes.Find(vmSize)
		clusters[strings.ToLower(r.Name)] = kind{size.Family, low}
	}
	for _, n := range nodes {
		if k, ok := clusters[strings.ToLower(n.Compute)]; ok && n.State != "leaving" {
			u.Add(k.family, k.low, n.Cores)
		}
	}
	return u, nil
}
