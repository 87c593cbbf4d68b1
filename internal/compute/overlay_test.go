package compute_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/compute"
)

// normalized returns kind typ's normalized form of props.
func normalized(t *testing.T, typ, props string) json.RawMessage {
	t.Helper()
	out, err := mustKind(t, typ).Normalize(t.Context(), json.RawMessage(props), nil, testEnv(t))
	if err != nil {
		t.Fatalf("Normalize(%s): %v", props, err)
	}
	return out
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	const (
		clusterProps  = `{"vm_size":"STANDARD_D2_V2","min_nodes":1,"max_nodes":4,"idle_seconds_before_scaledown":60,"description":"d","tags":{"a":"b"}}`
		instanceProps = `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"30m","max_concurrent_runs":2}`
	)
	tests := []struct {
		desc   string
		typ    string
		stored string
		patch  string
		// overlaid: fields of the overlay result that differ from stored
		// (nil value: the field is gone).
		overlaid map[string]any
		// normalized: fields of Normalize(overlay) that differ from stored.
		normalized map[string]any
	}{
		{
			desc: "cluster scale change", typ: "cluster", stored: clusterProps,
			patch:      `{"min_nodes":2,"max_nodes":8}`,
			overlaid:   map[string]any{"min_nodes": 2.0, "max_nodes": 8.0},
			normalized: map[string]any{"min_nodes": 2.0, "max_nodes": 8.0},
		},
		{
			desc: "cluster description and tags", typ: "cluster", stored: clusterProps,
			patch:      `{"description":"new","tags":{"x":"y"}}`,
			overlaid:   map[string]any{"description": "new", "tags": map[string]any{"x": "y"}},
			normalized: map[string]any{"description": "new", "tags": map[string]any{"x": "y"}},
		},
		{
			desc: "cluster null resets min_nodes and idle seconds to defaults", typ: "cluster", stored: clusterProps,
			patch:      `{"min_nodes":null,"idle_seconds_before_scaledown":null}`,
			overlaid:   map[string]any{"min_nodes": nil, "idle_seconds_before_scaledown": nil},
			normalized: map[string]any{"min_nodes": 0.0, "idle_seconds_before_scaledown": 1800.0},
		},
		{
			desc: "cluster null clears description and tags", typ: "cluster", stored: clusterProps,
			patch:      `{"description":null,"tags":null}`,
			overlaid:   map[string]any{"description": nil, "tags": nil},
			normalized: map[string]any{"description": nil, "tags": nil},
		},
		{
			desc: "cluster gets user-assigned identities (add_identity)", typ: "cluster", stored: clusterProps,
			patch:      `{"identity_type":"UserAssigned","identity_id":["id-1","blob-reader"]}`,
			overlaid:   map[string]any{"identity_type": "UserAssigned", "identity_id": []any{"id-1", "blob-reader"}},
			normalized: map[string]any{"identity_type": "UserAssigned", "identity_id": []any{"id-1", "Blob-Reader"}},
		},
		{
			desc: "cluster identity_type None drops identity_id (remove_identity)", typ: "cluster",
			stored:     `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_type":"UserAssigned","identity_id":["id-1"]}`,
			patch:      `{"identity_type":"None"}`,
			overlaid:   map[string]any{"identity_type": "None", "identity_id": nil},
			normalized: map[string]any{"identity_type": "None", "identity_id": nil},
		},
		{
			desc: "cluster from UserAssigned to SystemAssigned", typ: "cluster",
			stored:     `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_type":"UserAssigned","identity_id":["id-1"]}`,
			patch:      `{"identity_type":"systemassigned"}`,
			overlaid:   map[string]any{"identity_type": "systemassigned", "identity_id": nil},
			normalized: map[string]any{"identity_type": "SystemAssigned", "identity_id": nil},
		},
		{
			desc: "instance idle time", typ: "instance", stored: instanceProps,
			patch:      `{"idle_time_before_shutdown":"2h"}`,
			overlaid:   map[string]any{"idle_time_before_shutdown": "2h"},
			normalized: map[string]any{"idle_time_before_shutdown": "2h0m0s"},
		},
		{
			desc: "instance null resets idle time and max_concurrent_runs", typ: "instance", stored: instanceProps,
			patch:      `{"idle_time_before_shutdown":null,"max_concurrent_runs":null}`,
			overlaid:   map[string]any{"idle_time_before_shutdown": nil, "max_concurrent_runs": nil},
			normalized: map[string]any{"idle_time_before_shutdown": nil, "max_concurrent_runs": 4.0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			k := mustKind(t, tc.typ)
			stored := normalized(t, tc.typ, tc.stored)
			got, err := compute.Overlay(k, stored, json.RawMessage(tc.patch))
			if err != nil {
				t.Fatalf("Overlay: %v", err)
			}
			if d := cmp.Diff(apply(obj(t, stored), tc.overlaid), obj(t, got)); d != "" {
				t.Errorf("Overlay mismatch (-want +got):\n%s", d)
			}
			norm, err := k.Normalize(t.Context(), got, nil, testEnv(t))
			if err != nil {
				t.Fatalf("Normalize after Overlay: %v", err)
			}
			if d := cmp.Diff(apply(obj(t, stored), tc.normalized), obj(t, norm)); d != "" {
				t.Errorf("Normalize after Overlay mismatch (-want +got):\n%s", d)
			}
		})
	}
}

// apply sets the fields of changes on m; a nil value deletes the field.
func apply(m, changes map[string]any) map[string]any {
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestOverlayInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, typ, patch, field, msg string
	}{
		{"cluster vm_size", "cluster", `{"vm_size":"STANDARD_D3_V2"}`, "vm_size", "cannot be changed"},
		{"cluster provider", "cluster", `{"provider":"ssh"}`, "provider", ""},
		{"cluster vm_priority", "cluster", `{"vm_priority":"lowpriority"}`, "vm_priority", ""},
		{"cluster allowed and disallowed", "cluster", `{"max_nodes":8,"vm_size":"STANDARD_D3_V2"}`, "vm_size", ""},
		{"cluster secret", "cluster", `{"admin_user_password":"x"}`, "admin_user_password", ""},
		{"cluster unknown field", "cluster", `{"nodes":3}`, "nodes", ""},
		{"instance assigned_user", "instance", `{"assigned_user":"bob"}`, "assigned_user", ""},
		{"instance vm_size null", "instance", `{"vm_size":null}`, "vm_size", ""},
		{"local anything", "local", `{"description":"x"}`, "description", ""},
		{"empty patch", "cluster", `{}`, "properties", "max_nodes"},
		{"null patch", "cluster", `null`, "properties", "nothing to update"},
		{"missing patch", "cluster", ``, "properties", "nothing to update"},
		{"patch not an object", "cluster", `[{"max_nodes":8}]`, "properties", ""},
	}
	stored := map[string]json.RawMessage{
		"cluster":  normalized(t, "cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`),
		"instance": normalized(t, "instance", `{"vm_size":"STANDARD_DS3_V2"}`),
		"local":    json.RawMessage(`{}`),
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := compute.Overlay(mustKind(t, tc.typ), stored[tc.typ], json.RawMessage(tc.patch))
			wantRefused(t, got, err, tc.field, tc.msg)
		})
	}
}

// The rules that tie fields together hold whichever field an update
// changes: Overlay accepts the patch, Normalize refuses the result.
func TestOverlayThenNormalizeChecksAcrossFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, stored, patch, field string
	}{
		{"max_nodes below min_nodes", `{"vm_size":"STANDARD_D2_V2","min_nodes":3,"max_nodes":4}`, `{"max_nodes":2}`, "min_nodes"},
		{"min_nodes above max_nodes", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"min_nodes":5}`, "min_nodes"},
		{"max_nodes reset", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"max_nodes":null}`, "max_nodes"},
		{"max_nodes zero", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"max_nodes":0}`, "max_nodes"},
		{"identity_id without UserAssigned", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"identity_id":["id-1"]}`, "identity_id"},
		{"UserAssigned without identity_id", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"identity_type":"UserAssigned"}`, "identity_id"},
		{"max_nodes wrong type", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, `{"max_nodes":"eight"}`, "max_nodes"},
	}
	k := mustKind(t, "cluster")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			props, err := compute.Overlay(k, normalized(t, "cluster", tc.stored), json.RawMessage(tc.patch))
			if err != nil {
				t.Fatalf("Overlay: %v", err)
			}
			_, err = k.Normalize(t.Context(), props, nil, testEnv(t))
			wantInvalid(t, err, tc.field)
		})
	}
}
