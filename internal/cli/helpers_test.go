package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

func TestText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string // JSON
		want string
	}{
		{`null`, ""},
		{`"a b"`, "a b"},
		{`3`, "3"},
		{`0.25`, "0.25"},
		{`true`, "true"},
		{`["x","y",2]`, "x,y,2"},
		{`{"b":1,"a":"z","c":[1,2]}`, "a=z,b=1,c=1,2"},
		{`[]`, ""},
	}
	for _, tc := range tests {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		if got := text(v); got != tc.want {
			t.Errorf("text(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFlatten(t *testing.T) {
	t.Parallel()
	got := flatten(json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":4,"tags":{"team":"ml","env":"dev"},"keys":["a","b"],"none":null}`))
	want := map[string]string{"vm_size": "STANDARD_D2_V2", "max_nodes": "4", "tags": "env=dev,team=ml", "keys": "a,b", "none": ""}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("flatten (-want +got):\n%s", d)
	}
	if got := flatten(json.RawMessage(`not json`)); len(got) != 0 {
		t.Errorf("flatten of garbage: %v, want nothing", got)
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{5 * time.Second, "5s"},
		{59 * time.Second, "59s"},
		{90 * time.Second, "1m"},
		{59 * time.Minute, "59m"},
		{3 * time.Hour, "3h"},
		{47 * time.Hour, "47h"},
		{72 * time.Hour, "3d"},
	}
	for _, tc := range tests {
		if got := age(time.Now().Add(-tc.ago)); got != tc.want {
			t.Errorf("age(%s ago) = %q, want %q", tc.ago, got, tc.want)
		}
	}
}

func TestSmallFormatters(t *testing.T) {
	t.Parallel()
	checks := []struct{ got, want string }{
		{orDash(""), "-"},
		{orDash("x"), "x"},
		{truncate("short", 10), "short"},
		{truncate("exactly10!", 10), "exactly10!"},
		{truncate("a bit too long", 10), "a bit too…"},
		{familyName(""), "(workspace)"},
		{familyName("standardNCFamily"), "standardNCFamily"},
		{limitText(-1), "no limit"},
		{limitText(0), "0"},
		{limitText(64), "64"},
		{usedOf(12, 64), "12 of 64"},
		{usedOf(0.5, -1), "0.5 of no limit"},
		{jsonText([]string{"sh", "-c", "a && b <c>"}), `["sh","-c","a && b <c>"]`},
		{strings.Join(sortedKeys(map[string]string{"b": "", "a": "", "c": ""}), ","), "a,b,c"},
	}
	for i, c := range checks {
		if c.got != c.want {
			t.Errorf("check %d: %q, want %q", i, c.got, c.want)
		}
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	end := start.Add(90*time.Second + 1500*time.Microsecond)
	tests := []struct {
		run  api.Run
		want string
	}{
		{api.Run{}, "-"},
		{api.Run{StartedAt: &start, EndedAt: &end}, "1m30.002s"},
	}
	for _, tc := range tests {
		if got := duration(tc.run); got != tc.want {
			t.Errorf("duration = %q, want %q", got, tc.want)
		}
	}
	now := time.Now().Add(-time.Hour)
	if got := duration(api.Run{StartedAt: &now}); !strings.HasPrefix(got, "1h0m") {
		t.Errorf("a running run's duration: %q, want about 1h", got)
	}
}

func TestParseComputeSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    *api.ComputeSpec
		wantErr string
	}{
		{"vm_size=STANDARD_D2_V2,max_nodes=2", &api.ComputeSpec{VMSize: "STANDARD_D2_V2", MaxNodes: 2}, ""},
		{" vm_size=S , min_nodes=1,max_nodes=3,vm_priority=lowpriority", &api.ComputeSpec{VMSize: "S", MinNodes: 1, MaxNodes: 3, VMPriority: "lowpriority"}, ""},
		{"vm_size", nil, "key=value pairs"},
		{"max_nodes=two", nil, "max_nodes must be a number"},
		{"min_nodes=", nil, "min_nodes must be a number"},
		{"color=red", nil, `unknown key "color"`},
	}
	for _, tc := range tests {
		got, err := parseComputeSpec(tc.in)
		if tc.wantErr != "" {
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseComputeSpec(%q): %v, want an invalid-input error saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseComputeSpec(%q): %v", tc.in, err)
		} else if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("parseComputeSpec(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

// Only the flags a user set become properties, each as its kind says.
func TestPropsFromFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id.pub")
	os.WriteFile(keyFile, []byte("ssh-ed25519 AAAA me\n"), 0o600)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret\r\n"), 0o600)
	defs := []propFlag{
		{"vm-size", "vm_size", kString, ""},
		{"max-nodes", "max_nodes", kInt, ""},
		{"min-nodes", "min_nodes", kInt, ""},
		{"public", "ssh_public_access", kBool, ""},
		{"identity", "identity_id", kList, ""},
		{"tag", "tags", kTags, ""},
		{"key", "admin_user_ssh_key", kFile, ""},
		{"password-file", "admin_user_password", kSecretFile, ""},
	}
	parse := func(args ...string) (map[string]any, error) {
		cmd := &cobra.Command{Use: "x"}
		addPropFlags(cmd, defs)
		if err := cmd.ParseFlags(args); err != nil {
			return nil, err
		}
		raw, err := propsFromFlags(cmd, defs)
		if err != nil {
			return nil, err
		}
		var out map[string]any
		return out, json.Unmarshal(raw, &out)
	}
	got, err := parse("--vm-size", "STANDARD_D2_V2", "--max-nodes", "4", "--public", "--identity", "a", "--identity", "b",
		"--tag", "team=ml", "--tag", "note=x=y", "--key", keyFile, "--password-file", pwFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 4.0, "ssh_public_access": true,
		"identity_id": []any{"a", "b"}, "tags": map[string]any{"team": "ml", "note": "x=y"},
		"admin_user_ssh_key": "ssh-ed25519 AAAA me\n", "admin_user_password": "s3cret"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("properties (-want +got):\n%s", d) // min_nodes was not given: absent, so the server's default applies
	}
	if got, err := parse(); err != nil || len(got) != 0 {
		t.Errorf("no flags: %v %v, want no properties", got, err)
	}
	for _, args := range [][]string{{"--tag", "novalue"}, {"--tag", "=v"}, {"--key", filepath.Join(dir, "missing.pub")}} {
		if _, err := parse(args...); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%v: %v, want an invalid-input error", args, err)
		}
	}
}

func TestEmit(t *testing.T) {
	t.Parallel()
	v := map[string]any{"cmd": "a && b", "count": 1}
	table := func(w io.Writer) { fmt.Fprintln(w, "A\tBB\tC"); fmt.Fprintln(w, "long value\tx\ty") }
	tests := []struct{ format, want string }{
		{"json", "{\n  \"cmd\": \"a && b\",\n  \"count\": 1\n}\n"},
		{"yaml", "cmd: a && b\ncount: 1\n"},
		{"table", "A           BB  C\nlong value  x   y\n"},
		{"", "A           BB  C\nlong value  x   y\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := emit(&b, tc.format, v, table); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("emit -o %q:\n%q\nwant\n%q", tc.format, b.String(), tc.want)
		}
	}
}

func TestComputeTables(t *testing.T) {
	t.Parallel()
	created := time.Now().Add(-90 * time.Second)
	items := []api.Compute{
		{Name: "cpu", Type: "cluster", ProvisioningState: api.StateSucceeded, CreatedBy: "admin", CreatedAt: created,
			Properties: json.RawMessage(`{"vm_size":"STANDARD_D2_V2","min_nodes":0,"max_nodes":4}`)},
		{Name: "local", Type: "local", ProvisioningState: api.StateSucceeded, CreatedBy: "admin", CreatedAt: created,
			Properties: json.RawMessage(`{}`)},
	}
	var b bytes.Buffer
	emit(&b, "table", items, func(w io.Writer) { computeTable(w, items) })
	want := "NAME   TYPE     STATE      SIZE            NODES  CREATED BY  AGE\n" +
		"cpu    cluster  Succeeded  STANDARD_D2_V2  0-4    admin       1m\n" +
		"local  local    Succeeded  -               -      admin       1m\n"
	if b.String() != want {
		t.Errorf("compute list:\n%s\nwant\n%s", b.String(), want)
	}

	c := api.Compute{Name: "cpu", Type: "cluster", ProvisioningState: api.StateFailed, CreatedBy: "admin",
		CreatedAt:          time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		ProvisioningErrors: []api.ProvisioningError{{Code: "QuotaExceeded", Message: "no cores"}},
		Properties:         json.RawMessage(`{"max_nodes":4,"vm_size":"S"}`), SecretsSet: []string{"admin_user_password"},
		Status: json.RawMessage(`{"current_node_count":0}`)}
	b.Reset()
	emit(&b, "table", c, func(w io.Writer) { showTable(w, &c) })
	want = `Name:                cpu
Type:                cluster
Provisioning state:  Failed
Provisioning error:  QuotaExceeded: no cores
Created by:          admin
Created at:          2025-03-01T12:00:00Z
Properties:
  max_nodes:            4
  vm_size:              S
  admin_user_password:  (set, write-only)
Status:
  current_node_count:  0
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("compute show (-want +got):\n%s", d)
	}
	if err := failedErr(&c); err == nil || !strings.Contains(err.Error(), `"cpu" failed to provision: QuotaExceeded: no cores`) {
		t.Errorf("failedErr: %v", err)
	}
	c.ProvisioningState = api.StateSucceeded
	if err := failedErr(&c); err != nil {
		t.Errorf("failedErr of a provisioned target: %v", err)
	}
}

func TestShowRun(t *testing.T) {
	t.Parallel()
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Second)
	one, zero := 1, 0
	r := api.Run{ID: "run-x", Status: api.RunCompleted, Compute: "cpu", Experiment: "e", CreatedBy: "alice",
		Command: []string{"sh", "-c", "a && b"}, CreatedAt: start, StartedAt: &start, EndedAt: &end, ExitCode: &zero,
		Attempts: []api.Attempt{
			{Number: 1, Node: "n1", Status: api.RunFailed, ExitCode: &one, Reason: "Preempted"},
			{Number: 2, Node: "n2", Status: api.RunCompleted, ExitCode: &zero},
		},
		Metrics: map[string]api.Metric{"loss": {Value: 0.1, Step: 3}, "acc": {Value: 0.9, Step: 3},
			"opt": {Kind: api.MetricString, Text: "adam"}, "curve": {Kind: api.MetricRow, Data: json.RawMessage(`{"epoch":2}`), Step: 1},
			"plot": {Kind: api.MetricImage, Text: "outputs/plot.png"}},
		Tags:    map[string]string{"stage": "eval"},
		Outputs: []api.OutputFile{{Path: "model.txt", Size: 7}}}
	var b bytes.Buffer
	emit(&b, "table", r, func(w io.Writer) { showRun(w, &r) })
	want := `ID:          run-x
Status:      Completed
Exit code:   0
Compute:     cpu
Experiment:  e
Command:     ["sh","-c","a && b"]
Created:     2025-03-01T12:00:00Z by alice
Duration:    2s
Attempt:     #1 on n1: Failed, exit 1 (Preempted)
Attempt:     #2 on n2: Completed, exit 0
Metric:      acc = 0.9 (step 3)
Metric:      curve = {"epoch":2} (step 1)
Metric:      loss = 0.1 (step 3)
Metric:      opt = "adam" (step 0)
Metric:      plot = image outputs/plot.png (step 0)
Tag:         stage = eval
Output:      model.txt (7 bytes)
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("run show (-want +got):\n%s", d)
	}
}

// A run's outcome decides the exit code: 0, its own exit code, or 1.
func TestOutcomeErr(t *testing.T) {
	t.Parallel()
	code := func(n int) *int { return &n }
	tests := []struct {
		name     string
		run      api.Run
		wantCode int // 0: no error
		wantMsg  string
	}{
		{"completed", api.Run{ID: "r", Status: api.RunCompleted}, 0, ""},
		{"exit 3", api.Run{ID: "r", Status: api.RunFailed, ExitCode: code(3), Error: "exited with code 3"}, 3, "run r failed: exited with code 3\n"},
		{"exit 300", api.Run{ID: "r", Status: api.RunFailed, ExitCode: code(300)}, 1, "run r failed: Failed\n"},
		{"no exit code", api.Run{ID: "r", Status: api.RunFailed, Error: "node lost"}, 1, "run r failed: node lost\n"},
		{"canceled", api.Run{ID: "r", Status: api.RunCanceled, ExitCode: code(-1)}, 1, "run r canceled: Canceled\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		err := outcomeErr(&b, &tc.run)
		var ee exitError
		switch {
		case tc.wantCode == 0 && err != nil:
			t.Errorf("%s: %v, want no error", tc.name, err)
		case tc.wantCode != 0 && (!errors.As(err, &ee) || ee.code != tc.wantCode):
			t.Errorf("%s: %v, want exit %d", tc.name, err, tc.wantCode)
		}
		if b.String() != tc.wantMsg {
			t.Errorf("%s: printed %q, want %q", tc.name, b.String(), tc.wantMsg)
		}
	}
}

func TestLogPrinterAndProgress(t *testing.T) {
	t.Parallel()
	var out, errw bytes.Buffer
	p := logPrinter(&out, &errw)
	for _, l := range []api.LogLine{{Text: "a"}, {Text: "b", Stream: "stderr"}, {Text: "c", Rank: 1}, {Text: "d", Rank: 2, Stream: "stderr"}} {
		if err := p(l); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "a\n[rank 1] c\n" || errw.String() != "b\n[rank 2] d\n" {
		t.Errorf("stdout %q, stderr %q", out.String(), errw.String())
	}

	var b bytes.Buffer
	progress := runProgress(&b, "run-x")
	for _, r := range []api.Run{
		{Status: api.RunQueued, StatusReason: "scaling cluster 0→1 nodes"},
		{Status: api.RunQueued, StatusReason: "scaling cluster 0→1 nodes"},
		{Status: api.RunQueued, StatusReason: "waiting for starting nodes to be ready"},
		{Status: api.RunStarting},
		{Status: api.RunRunning},
		{Status: api.RunRunning},
		{Status: api.RunCompleted},
	} {
		progress(&r)
	}
	want := "run-x: Queued (scaling cluster 0→1 nodes)\nrun-x: Queued (waiting for starting nodes to be ready)\nrun-x: Starting\nrun-x: Running\n"
	if b.String() != want {
		t.Errorf("progress:\n%s\nwant\n%s", b.String(), want)
	}
}

func TestExactArgs(t *testing.T) {
	t.Parallel()
	cmd := &cobra.Command{Use: "show NAME NODE"}
	check := exactArgs("NAME", "NODE")
	if err := check(cmd, []string{"a", "b"}); err != nil {
		t.Errorf("two args: %v", err)
	}
	if err := check(cmd, []string{"a"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "NODE is required: show NAME NODE") {
		t.Errorf("one arg: %v", err)
	}
	if err := check(cmd, []string{"a", "b", "c"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "too many arguments") {
		t.Errorf("three args: %v", err)
	}
}
