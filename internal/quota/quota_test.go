package quota

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
)

func TestRemaining(t *testing.T) {
	var u Usage
	u.Add("standardDv2Family", false, 6)
	u.Add("standardNCFamily", false, 6)
	u.Add("standardDv2Family", true, 4)
	qs := []store.Quota{
		{Family: "", DedicatedCores: 16, LowPriorityCores: store.Unlimited},
		{Family: "standardDv2Family", DedicatedCores: 8, LowPriorityCores: 4},
	}
	tests := []struct {
		family string
		low    bool
		want   float64
		why    string
	}{
		{"standardDv2Family", false, 2, "standardDv2Family family's dedicated core quota is 8, 6 in use"},
		{"standardNCFamily", false, 4, "the workspace's dedicated core quota is 16, 12 in use"},
		{"standardDv2Family", true, 0, "low-priority core quota is 4, 4 in use"},
		{"standardNCFamily", true, math.Inf(1), ""},
		{"STANDARDDV2FAMILY", false, 2, "family's"},
	}
	for _, tc := range tests {
		got, why := Remaining(qs, u, tc.family, tc.low)
		if got != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("Remaining(%s, low=%v) = %g, %q; want %g, %q", tc.family, tc.low, got, why, tc.want, tc.why)
		}
	}
	if got, _ := Remaining(nil, u, "x", false); !math.IsInf(got, 1) {
		t.Errorf("no quotas: %g, want no limit", got)
	}
	over := []store.Quota{{DedicatedCores: 4, LowPriorityCores: store.Unlimited}}
	if got, _ := Remaining(over, u, "x", false); got != 0 {
		t.Errorf("over quota: remaining %g, want 0", got)
	}
}

// A quota used to the core is used up; a core below it leaves one.
func TestRemainingAtTheLimit(t *testing.T) {
	var u Usage
	u.Add("standardDv2Family", false, 8)
	qs := []store.Quota{{DedicatedCores: 8, LowPriorityCores: 8}}
	for _, tc := range []struct {
		used float64
		low  bool
		want float64
	}{
		{8, false, 0}, {7, false, 1}, {0, true, 8},
	} {
		var u Usage
		u.Add("standardDv2Family", tc.low, tc.used)
		if got, _ := Remaining(qs, u, "standardDv2Family", tc.low); got != tc.want {
			t.Errorf("%g of 8 cores in use (low=%v): %g left, want %g", tc.used, tc.low, got, tc.want)
		}
	}
	if got, _ := Remaining(qs, u, "standardDv2Family", true); got != 8 {
		t.Errorf("8 dedicated cores in use leave %g low-priority cores of 8, want 8", got)
	}
}

// Measure counts the cores of cluster and instance nodes by priority and
// family; leaving nodes and other targets' nodes hold none.
func TestMeasure(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureWorkspace(ctx, "ws"); err != nil {
		t.Fatal(err)
	}
	sizes, err := compute.NewCatalog(filepath.Join(dir, "sizes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, typ, props string }{
		{"spot", "cluster", `{"vm_size":"STANDARD_D2_V2","vm_priority":"lowpriority"}`},
		{"gpu", "cluster", `{"vm_size":"STANDARD_NC6","vm_priority":"dedicated"}`},
		{"box", "instance", `{"vm_size":"STANDARD_DS3_V2"}`},
		{"host", "remote", `{"address":"10.0.0.1"}`},
	} {
		if err := st.CreateCompute(ctx, store.Compute{Workspace: "ws", Name: c.name, Type: c.typ, State: "Succeeded",
			Properties: []byte(c.props), Status: []byte("{}"), Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []store.Node{
		{ID: "s1", Compute: "spot", State: "idle", Cores: 2},
		{ID: "s2", Compute: "SPOT", State: "running", Cores: 2},
		{ID: "s3", Compute: "spot", State: "leaving", Cores: 2},
		{ID: "g1", Compute: "gpu", State: "starting", Cores: 6},
		{ID: "b1", Compute: "box", State: "idle", Cores: 4},
		{ID: "h1", Compute: "host", State: "idle", Cores: 64},
	}
	u, err := Measure(ctx, st, sizes, "ws", nodes)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		family string
		low    bool
		want   float64
	}{
		{"", false, 10}, {"", true, 4},
		{"standardDv2Family", true, 4}, {"standardDv2Family", false, 0},
		{"standardNCFamily", false, 6}, {"standardDSv2Family", false, 4}, {"standardNCFamily", true, 0},
	} {
		if got := u.Used(tc.family, tc.low); got != tc.want {
			t.Errorf("Used(%q, low=%v) = %g, want %g", tc.family, tc.low, got, tc.want)
		}
	}
}
