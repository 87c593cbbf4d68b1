package compute_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/compute"
)

func TestLocalNormalizeAlwaysInvalid(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "local")
	if k.Origin() != compute.BuiltIn {
		t.Errorf("local Origin = %v, want BuiltIn", k.Origin())
	}
	if f := k.UpdatableFields(); len(f) != 0 {
		t.Errorf("local UpdatableFields = %v, want none", f)
	}
	for _, tc := range []struct {
		desc  string
		props json.RawMessage
	}{
		{"nil", nil},
		{"empty object", json.RawMessage(`{}`)},
		{"some property", json.RawMessage(`{"vm_size":"STANDARD_D2_V2"}`)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := k.Normalize(t.Context(), tc.props, nil, testEnv(t))
			wantInvalid(t, err, "type")
			if got != nil {
				t.Errorf("props = %s, want nil", got)
			}
		})
	}
}

func TestKindsRegistry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ    string
		origin compute.Origin
	}{
		{"cluster", compute.Created},
		{"instance", compute.Created},
		{"local", compute.BuiltIn},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			k := mustKind(t, tc.typ)
			if k.Type() != tc.typ {
				t.Errorf("Type() = %q, want %q", k.Type(), tc.typ)
			}
			if k.Origin() != tc.origin {
				t.Errorf("Origin() = %v, want %v", k.Origin(), tc.origin)
			}
			if !slices.Contains(compute.Types(tc.origin), tc.typ) {
				t.Errorf("Types(%v) = %v, missing %q", tc.origin, compute.Types(tc.origin), tc.typ)
			}
		})
	}
	if _, ok := compute.Lookup("nope"); ok {
		t.Error(`Lookup("nope") found a kind`)
	}
	if got := compute.Types(compute.Created); !slices.IsSorted(got) {
		t.Errorf("Types(Created) = %v, not sorted", got)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "cluster")
	defer func() {
		if recover() == nil {
			t.Error("Register of an already registered kind did not panic")
		}
	}()
	compute.Register(k)
}

func TestInitialStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  string
		want map[string]any
	}{
		{"cluster", map[string]any{
			"allocation_state":   "Steady",
			"current_node_count": 0.0,
			"target_node_count":  0.0,
			"node_state_counts": map[string]any{
				"idle": 0.0, "running": 0.0, "preparing": 0.0,
				"unusable": 0.0, "leaving": 0.0, "preempted": 0.0,
			},
			"errors": []any{},
		}},
		{"instance", map[string]any{"state": "Creating", "queued_runs": 0.0, "running_runs": 0.0}},
		{"local", map[string]any{"reachable": true}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			got := obj(t, mustKind(t, tc.typ).InitialStatus(nil))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("InitialStatus mismatch (-want +got):\n%s", d)
			}
		})
	}
}
