package quota

import (
	"math"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/store"
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
