package compute_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// instanceDefaults is what Normalize makes of {"vm_size": "standard_ds3_v2"}
// for user alice: assigned to her, one concurrent run per core.
func instanceDefaults() map[string]any {
	return map[string]any{
		"vm_size":             "STANDARD_DS3_V2",
		"ssh_public_access":   false,
		"assigned_user":       "alice",
		"max_concurrent_runs": 4.0,
	}
}

func TestInstanceNormalize(t *testing.T) {
	t.Parallel()
	keyJSON, _ := json.Marshal(sshKey())
	tests := []struct {
		desc  string
		props string
		want  map[string]any
	}{
		{
			desc:  "defaults",
			props: `{"vm_size":"standard_ds3_v2"}`,
			want:  instanceDefaults(),
		},
		{
			desc:  "max_concurrent_runs defaults to the size's cores",
			props: `{"vm_size":"standard_nc6"}`,
			want:  with(instanceDefaults(), "vm_size", "STANDARD_NC6", "max_concurrent_runs", 6.0),
		},
		{
			desc:  "explicit max_concurrent_runs",
			props: `{"vm_size":"STANDARD_DS3_V2","max_concurrent_runs":10}`,
			want:  with(instanceDefaults(), "max_concurrent_runs", 10.0),
		},
		{
			desc:  "max_concurrent_runs 1",
			props: `{"vm_size":"STANDARD_DS3_V2","max_concurrent_runs":1}`,
			want:  with(instanceDefaults(), "max_concurrent_runs", 1.0),
		},
		{
			desc:  "assigned_user another known user",
			props: `{"vm_size":"STANDARD_DS3_V2","assigned_user":"bob"}`,
			want:  with(instanceDefaults(), "assigned_user", "bob"),
		},
		{
			desc:  "idle time 30m",
			props: `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"30m"}`,
			want:  with(instanceDefaults(), "idle_time_before_shutdown", "30m0s"),
		},
		{
			desc:  "idle time 90s",
			props: `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"90s"}`,
			want:  with(instanceDefaults(), "idle_time_before_shutdown", "1m30s"),
		},
		{
			desc:  "idle time 1h30m",
			props: `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"1h30m"}`,
			want:  with(instanceDefaults(), "idle_time_before_shutdown", "1h30m0s"),
		},
		{
			desc:  "idle time 0 means never and is removed",
			props: `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"0"}`,
			want:  instanceDefaults(),
		},
		{
			desc:  "idle time 0s is removed",
			props: `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"0s"}`,
			want:  instanceDefaults(),
		},
		{
			desc:  "ssh public access with a key",
			props: `{"vm_size":"STANDARD_DS3_V2","ssh_public_access":true,"admin_user_ssh_key":` + string(keyJSON) + `}`,
			want:  with(instanceDefaults(), "ssh_public_access", true, "admin_user_ssh_key", sshKeyLine()),
		},
		{
			desc:  "key without ssh public access",
			props: `{"vm_size":"STANDARD_DS3_V2","admin_user_ssh_key":` + string(keyJSON) + `}`,
			want:  with(instanceDefaults(), "admin_user_ssh_key", sshKeyLine()),
		},
		{
			desc:  "description and tags",
			props: `{"vm_size":"STANDARD_DS3_V2","description":"notebook box","tags":{"team":"nlp"}}`,
			want:  with(instanceDefaults(), "description", "notebook box", "tags", map[string]any{"team": "nlp"}),
		},
	}
	k := mustKind(t, "instance")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			env := testEnv(t)
			got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), nil, env)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if d := cmp.Diff(tc.want, obj(t, got)); d != "" {
				t.Fatalf("Normalize mismatch (-want +got):\n%s", d)
			}
			// Another user updating the instance must not reassign it.
			env.User = "bob"
			wantIdempotent(t, k, got, nil, env)
		})
	}
}

func TestInstanceNormalizeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, props, field, msg string
	}{
		{"missing vm_size", `{}`, "vm_size", "required"},
		{"unknown vm_size", `{"vm_size":"BIG_ONE"}`, "vm_size", "BIG_ONE"},
		{"bad duration", `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"soon"}`, "idle_time_before_shutdown", "soon"},
		{"duration without unit", `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"30"}`, "idle_time_before_shutdown", "30m"},
		{"negative duration", `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":"-5m"}`, "idle_time_before_shutdown", "-5m"},
		{"duration a number", `{"vm_size":"STANDARD_DS3_V2","idle_time_before_shutdown":30}`, "idle_time_before_shutdown", "a string"},
		{"ssh_public_access without key", `{"vm_size":"STANDARD_DS3_V2","ssh_public_access":true}`, "admin_user_ssh_key", "ssh_public_access"},
		{"ssh_public_access not a bool", `{"vm_size":"STANDARD_DS3_V2","ssh_public_access":"yes"}`, "ssh_public_access", "true or false"},
		{"invalid ssh key", `{"vm_size":"STANDARD_DS3_V2","admin_user_ssh_key":"hello"}`, "admin_user_ssh_key", "OpenSSH"},
		{"unknown assigned_user", `{"vm_size":"STANDARD_DS3_V2","assigned_user":"mallory"}`, "assigned_user", "mallory"},
		{"max_concurrent_runs 0", `{"vm_size":"STANDARD_DS3_V2","max_concurrent_runs":0}`, "max_concurrent_runs", "at least 1"},
		{"max_concurrent_runs negative", `{"vm_size":"STANDARD_DS3_V2","max_concurrent_runs":-2}`, "max_concurrent_runs", ""},
		{"unknown property", `{"vm_size":"STANDARD_DS3_V2","max_nodes":1}`, "max_nodes", "unknown property"},
		{"description too long", `{"vm_size":"STANDARD_DS3_V2","description":"` + strings.Repeat("d", 1025) + `"}`, "description", ""},
		{"bad tag key", `{"vm_size":"STANDARD_DS3_V2","tags":{"a=b":"c"}}`, "tags", ""},
	}
	k := mustKind(t, "instance")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := k.Normalize(t.Context(), json.RawMessage(tc.props), nil, testEnv(t))
			ae := wantInvalid(t, err, tc.field)
			if !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", ae.Message, tc.msg)
			}
		})
	}
}

func TestInstanceNormalizeUserLookupError(t *testing.T) {
	t.Parallel()
	_, err := mustKind(t, "instance").Normalize(t.Context(),
		json.RawMessage(`{"vm_size":"STANDARD_DS3_V2","assigned_user":"ghost"}`), nil, testEnv(t))
	if !errors.Is(err, errLookup) {
		t.Fatalf("err = %v, want the lookup error %v", err, errLookup)
	}
}
