package compute_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/compute"
)

func TestSplitSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc        string
		typ         string
		props       string
		wantProps   map[string]any
		wantSecrets map[string]string // revealed
	}{
		{
			desc:        "secret removed and returned",
			typ:         "cluster",
			props:       `{"vm_size":"STANDARD_D2_V2","admin_username":"u","admin_user_password":"hunter2"}`,
			wantProps:   map[string]any{"vm_size": "STANDARD_D2_V2", "admin_username": "u"},
			wantSecrets: map[string]string{"admin_user_password": "hunter2"},
		},
		{
			desc:        "empty string counts as unset",
			typ:         "cluster",
			props:       `{"vm_size":"STANDARD_D2_V2","admin_user_password":""}`,
			wantProps:   map[string]any{"vm_size": "STANDARD_D2_V2"},
			wantSecrets: map[string]string{},
		},
		{
			desc:        "null counts as unset",
			typ:         "cluster",
			props:       `{"vm_size":"STANDARD_D2_V2","admin_user_password":null}`,
			wantProps:   map[string]any{"vm_size": "STANDARD_D2_V2"},
			wantSecrets: map[string]string{},
		},
		{
			desc:        "no secret given",
			typ:         "cluster",
			props:       `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"tags":{"a":"b"}}`,
			wantProps:   map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 4.0, "tags": map[string]any{"a": "b"}},
			wantSecrets: map[string]string{},
		},
		{
			desc:        "nil properties",
			typ:         "cluster",
			props:       ``,
			wantProps:   map[string]any{},
			wantSecrets: map[string]string{},
		},
		{
			desc:        "null properties",
			typ:         "cluster",
			props:       `null`,
			wantProps:   map[string]any{},
			wantSecrets: map[string]string{},
		},
		{
			desc:        "kind without secrets leaves every field",
			typ:         "instance",
			props:       `{"vm_size":"STANDARD_D2_V2","admin_user_password":"x"}`,
			wantProps:   map[string]any{"vm_size": "STANDARD_D2_V2", "admin_user_password": "x"},
			wantSecrets: map[string]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			props, secrets, err := compute.SplitSecrets(mustKind(t, tc.typ), json.RawMessage(tc.props))
			if err != nil {
				t.Fatalf("SplitSecrets: %v", err)
			}
			if d := cmp.Diff(tc.wantProps, obj(t, props)); d != "" {
				t.Errorf("props mismatch (-want +got):\n%s", d)
			}
			got := map[string]string{}
			for f, v := range secrets {
				if !v.IsSet() {
					t.Errorf("secret %s returned but not set", f)
				}
				got[f] = v.Reveal()
			}
			if d := cmp.Diff(tc.wantSecrets, got); d != "" {
				t.Errorf("secrets mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestSplitSecretsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, props, field string
	}{
		{"secret a number", `{"admin_user_password":42}`, "admin_user_password"},
		{"secret an object", `{"admin_user_password":{"value":"x"}}`, "admin_user_password"},
		{"secret true", `{"admin_user_password":true}`, "admin_user_password"},
		{"properties a list", `[1,2]`, "properties"},
		{"properties a string", `"vm_size"`, "properties"},
		{"properties not JSON", `{vm_size:`, "properties"},
	}
	k := mustKind(t, "cluster")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			props, secrets, err := compute.SplitSecrets(k, json.RawMessage(tc.props))
			wantInvalid(t, err, tc.field)
			if props != nil || secrets != nil {
				t.Errorf("got props %s, secrets %v with an error", props, secrets)
			}
		})
	}
}
