package compute_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
)

// Every number and duration a target takes has an upper bound, and the
// value just over it is refused with a 400 naming the field. Values near
// 2^63 used to pass: idle_seconds_before_scaledown became a negative
// duration and scaled nodes down at once.
func TestNumbersAndDurationsHaveUpperBounds(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	pw := map[string]secret.Value{"password": secret.New("pw")}
	cluster := func(extra string) string { return `{"vm_size":"STANDARD_D2_V2","max_nodes":4` + extra + `}` }
	instance := func(extra string) string { return `{"vm_size":"STANDARD_D2_V2"` + extra + `}` }
	remote := func(extra string) string { return `{"address":"box","username":"u"` + extra + `}` }
	ids := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf(`"id-%d"`, i))
		}
		return `,"identity_type":"UserAssigned","identity_id":[` + strings.Join(s, ",") + `]`
	}
	tests := []struct {
		typ, props string
		field      string // "" when accepted
	}{
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":10000}`, ""},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":10001}`, "max_nodes"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":9223372036854775807}`, "max_nodes"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":9223372036854775808}`, "max_nodes"},
		{"cluster", cluster(`,"min_nodes":9223372036854775807`), "min_nodes"},
		{"cluster", cluster(`,"idle_seconds_before_scaledown":2592000`), ""},
		{"cluster", cluster(`,"idle_seconds_before_scaledown":2592001`), "idle_seconds_before_scaledown"},
		{"cluster", cluster(`,"idle_seconds_before_scaledown":9223372036854775807`), "idle_seconds_before_scaledown"},
		{"cluster", cluster(`,"idle_seconds_before_scaledown":9223372036`), "idle_seconds_before_scaledown"},
		{"cluster", cluster(ids(50)), ""},
		{"cluster", cluster(ids(51)), "identity_id"},
		{"instance", instance(`,"max_concurrent_runs":1000`), ""},
		{"instance", instance(`,"max_concurrent_runs":1001`), "max_concurrent_runs"},
		{"instance", instance(`,"max_concurrent_runs":9223372036854775807`), "max_concurrent_runs"},
		{"instance", instance(`,"idle_time_before_shutdown":"720h"`), ""},
		{"instance", instance(`,"idle_time_before_shutdown":"720h1s"`), "idle_time_before_shutdown"},
		{"instance", instance(`,"idle_time_before_shutdown":"2562047h"`), "idle_time_before_shutdown"},
		{"instance", instance(`,"idle_time_before_shutdown":"9999999999h"`), "idle_time_before_shutdown"},
		{"remote", remote(`,"ssh_port":65535`), ""},
		{"remote", remote(`,"ssh_port":65536`), "ssh_port"},
		{"remote", remote(`,"ssh_port":-1`), "ssh_port"},
		{"remote", remote(`,"ssh_port":9223372036854775807`), "ssh_port"},
		{"slurm", remote(`,"ssh_port":65536`), "ssh_port"},
		{"slurm", remote(`,"ssh_port":-22`), "ssh_port"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.props, func(t *testing.T) {
			got, err := mustKind(t, tc.typ).Normalize(t.Context(), []byte(tc.props), pw, env)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantInvalid(t, err, tc.field)
			if got != nil {
				t.Errorf("got %s with an error", got)
			}
		})
	}
}

// A NUL byte in any string property (they end up in commands, paths and
// SSH sessions) or secret is refused at create, naming the property.
func TestNULBytesInPropertiesAreRefused(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	pw := map[string]secret.Value{"password": secret.New("pw")}
	tests := []struct {
		typ, props, field string
	}{
		{"remote", `{"address":"box\u0000.example","username":"u"}`, "address"},
		{"remote", `{"address":"box","username":"u\u0000"}`, "username"},
		{"slurm", `{"address":"login","username":"u","partition":"gpu\u0000"}`, "partition"},
		{"slurm", `{"address":"login","username":"u","slurm_conf":"/etc/slurm\u0000.conf"}`, "slurm_conf"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":1,"description":"a\u0000b"}`, "description"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":1,"tags":{"team":"ml\u0000"}}`, "tags.team"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":1,"tags":{"te\u0000am":"ml"}}`, "tags"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":1,"identity_type":"UserAssigned","identity_id":["a","b\u0000"]}`, "identity_id"},
		{"cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":1,"admin_username":"root\u0000"}`, "admin_username"},
		{"instance", `{"vm_size":"STANDARD_D2_V2","assigned_user":"alice\u0000"}`, "assigned_user"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.field, func(t *testing.T) {
			got, err := mustKind(t, tc.typ).Normalize(t.Context(), []byte(tc.props), pw, env)
			if ae := wantInvalid(t, err, tc.field); !strings.Contains(ae.Message, "NUL") {
				t.Errorf("message %q does not say NUL", ae.Message)
			}
			if got != nil {
				t.Errorf("got %s with an error", got)
			}
		})
	}
	_, _, err := compute.SplitSecrets(mustKind(t, "remote"), []byte(`{"address":"box","password":"p\u0000w"}`))
	wantInvalid(t, err, "password")
}
