package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

func TestSecretFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "key.txt")
	os.WriteFile(file, []byte("from-a-file\n"), 0o600)
	crlf := filepath.Join(dir, "crlf.txt")
	os.WriteFile(crlf, []byte("windows\r\n"), 0o600)
	tests := []struct {
		desc  string
		flags []string
		want  map[string]string
		err   string // part of the error; "" when accepted
	}{
		{"none", nil, nil, ""},
		{"a file, its final newline dropped", []string{"KEY=@" + file}, map[string]string{"KEY": "from-a-file"}, ""},
		{"a CRLF file", []string{"KEY=@" + crlf}, map[string]string{"KEY": "windows"}, ""},
		{"a value, = in it kept", []string{"KEY=a=b", "OTHER="}, map[string]string{"KEY": "a=b", "OTHER": ""}, ""},
		{"no =", []string{"KEY"}, nil, "KEY=@FILE"},
		{"no key", []string{"=value"}, nil, "KEY=@FILE"},
		{"a missing file", []string{"KEY=@" + filepath.Join(dir, "nope")}, nil, "cannot read"},
		{"a key twice", []string{"KEY=a", "KEY=b"}, nil, "twice"},
		{"a malformed flag keeps its value out of the error", []string{"secret-value-here"}, nil, "secret-v…"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := secretFlags(tc.flags)
			var e *api.Error
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err == "":
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Fatalf("secrets (-want +got):\n%s", d)
				}
			case !errors.As(err, &e) || e.Code != api.CodeInvalid || !strings.Contains(e.Message, tc.err):
				t.Fatalf("err = %v, want Invalid saying %q", err, tc.err)
			case strings.Contains(e.Message, "value-here"):
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestIdentityAndLimitsTables(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	id := api.Identity{Name: "blob-reader", Type: "UserAssigned", PrincipalID: "p-1", SecretKeys: []string{"A", "B"},
		UsedBy: []string{"cpu"}, CreatedBy: "admin", CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	emit(&b, "table", id, func(w io.Writer) { identityTable(w, &id) })
	want := `Name:          blob-reader
Type:          UserAssigned
Principal id:  p-1
Secrets:       A, B (write-only)
Used by:       cpu
Created:       2025-03-01T12:00:00Z by admin
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("identity show (-want +got):\n%s", d)
	}
	c := api.Compute{Name: "box", Type: "instance", ProvisioningState: api.StateSucceeded, CreatedBy: "admin",
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Properties: []byte(`{}`), Status: []byte(`{}`),
		Identity: &api.ComputeIdentity{Type: "SystemAssigned", PrincipalID: "p-2"},
		Limits:   &api.ComputeLimits{IdleTimeBeforeShutdown: "2h0m0s", IdleTimeFromPolicy: true, MaxRunDurationSeconds: 86400}}
	b.Reset()
	emit(&b, "table", c, func(w io.Writer) { showTable(w, &c) })
	flat := strings.Join(strings.Fields(b.String()), " ")
	for _, line := range []string{"Identity: type: SystemAssigned principal_id: p-2 Limits:",
		"idle_time_before_shutdown: 2h0m0s (the workspace's policy)", "max_run_duration: 24h0m0s (the workspace's policy)"} {
		if !strings.Contains(flat, line) {
			t.Errorf("compute show lacks %q:\n%s", line, b.String())
		}
	}
}
