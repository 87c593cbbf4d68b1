package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"
)

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not valid JSON: %v\n%s", err, s)
	}
	return v
}

func props(t *testing.T, c api.Compute) map[string]any {
	t.Helper()
	return decodeJSON[map[string]any](t, string(c.Properties))
}

func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if out := e.ok("--version"); !strings.HasPrefix(out, "paddock ") {
		t.Fatalf("--version printed %q", out)
	}
}

// The seed's first example, end to end: a 4-node STANDARD_D2_V2 cluster is
// created, shown, listed, updated and deleted from the CLI.
func TestComputeLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()

	c := decodeJSON[api.Compute](t, e.ok("compute", "create", "cluster", "cpu-cluster",
		"--vm-size", "standard_d2_v2", "--max-nodes", "4", "--tag", "team=vision", "--description", "seed example", "-o", "json"))
	if c.ProvisioningState != api.StateSucceeded || c.Type != "cluster" || c.CreatedBy != "admin" {
		t.Fatalf("created: %+v", c)
	}
	p := props(t, c)
	want := map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 4.0, "min_nodes": 0.0,
		"idle_seconds_before_scaledown": 1800.0, "vm_priority": "dedicated", "provider": "local", "description": "seed example"}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("property %s = %v, want %v", k, p[k], v)
		}
	}
	if tags, _ := p["tags"].(map[string]any); tags["team"] != "vision" {
		t.Errorf("tags = %v", p["tags"])
	}

	e.ok("compute", "create", "cluster", "low-pri", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4",
		"--vm-priority", "LowPriority", "--no-wait")
	e.ok("compute", "create", "instance", "my-box", "--vm-size", "STANDARD_DS3_V2")
	e.ok("compute", "wait", "low-pri")

	list := decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))
	var names []string
	for _, c := range list {
		names = append(names, c.Name+"/"+string(c.ProvisioningState))
	}
	if got := strings.Join(names, " "); got != "cpu-cluster/Succeeded local/Succeeded low-pri/Succeeded my-box/Succeeded" {
		t.Fatalf("list = %s", got)
	}
	inst := decodeJSON[api.Compute](t, e.ok("compute", "show", "MY-BOX", "-o", "json"))
	if p := props(t, inst); p["assigned_user"] != "admin" || p["max_concurrent_runs"] != 4.0 {
		t.Errorf("instance defaults: %v", p)
	}
	if st := decodeJSON[map[string]any](t, string(inst.Status)); st["state"] != "Running" {
		t.Errorf("instance status = %v", st)
	}
	if lp := props(t, list[2]); lp["vm_priority"] != "lowpriority" {
		t.Errorf("vm_priority not canonicalised: %v", lp["vm_priority"])
	}

	table := e.ok("compute", "list")
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "cpu-cluster") || !strings.Contains(table, "0-4") {
		t.Errorf("table output:\n%s", table)
	}
	var fromYAML []api.Compute
	if err := yaml.Unmarshal([]byte(e.ok("compute", "list", "-o", "yaml")), &fromYAML); err != nil || len(fromYAML) != 4 {
		t.Fatalf("yaml list: %v (%d items)", err, len(fromYAML))
	}

	up := decodeJSON[api.Compute](t, e.ok("compute", "update", "cpu-cluster", "--min-nodes", "1", "--max-nodes", "8",
		"--idle-seconds-before-scaledown", "600", "-o", "json"))
	if p := props(t, up); p["min_nodes"] != 1.0 || p["max_nodes"] != 8.0 || p["idle_seconds_before_scaledown"] != 600.0 || p["vm_size"] != "STANDARD_D2_V2" {
		t.Errorf("after update: %v", p)
	}
	if up.ProvisioningState != api.StateSucceeded {
		t.Errorf("update ended %s", up.ProvisioningState)
	}
	// min_nodes 1 now: the autoscaler starts a node and the cluster settles.
	eventually(t, 20*time.Second, "the cluster to settle at one node", func() bool {
		status := decodeJSON[map[string]any](t, e.ok("compute", "status", "cpu-cluster", "-o", "json"))
		counts, _ := status["node_state_counts"].(map[string]any)
		return status["allocation_state"] == "Steady" && status["current_node_count"] == 1.0 && counts["idle"] == 1.0
	})

	e.ok("compute", "delete", "cpu-cluster")
	if r := e.run("compute", "show", "cpu-cluster"); r.code != 3 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("show after delete: exit %d, %s", r.code, r.stderr)
	}
	// A name freed by delete can be used again.
	e.ok("compute", "create", "cluster", "cpu-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2")
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every rule gets a clear message naming the field, exit 2 for invalid
// input, 3 for not found, 4 for conflicts, and leaves nothing behind.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "cluster", "taken", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2")
	badKey := writeFile(t, e.home, "bad.pub", "not a key")
	cl := []string{"compute", "create", "cluster"}
	ok := []string{"--vm-size", "STANDARD_D2_V2", "--max-nodes", "2"}
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"missing max nodes", append(cl, "c-one", "--vm-size", "STANDARD_D2_V2"), 2, "max_nodes is required"},
		{"max nodes zero", append(cl, "c-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "0"), 2, "max_nodes must be at least 1"},
		{"min above max", append(cl, "c-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--min-nodes", "3"), 2, "min_nodes (3) must not be more than max_nodes (2)"},
		{"negative min", append(cl, "c-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--min-nodes", "-1"), 2, "min_nodes must be at least 0"},
		{"unknown size", append(cl, "c-one", "--vm-size", "STANDARD_XYZ", "--max-nodes", "2"), 2, `vm_size "STANDARD_XYZ" is not a known size`},
		{"missing size", append(cl, "c-one", "--max-nodes", "2"), 2, "vm_size is required"},
		{"bad priority", append(append(cl, "c-one", "--vm-priority", "spot"), ok...), 2, "vm_priority must be one of dedicated, lowpriority"},
		{"negative idle", append(append(cl, "c-one", "--idle-seconds-before-scaledown", "-5"), ok...), 2, "idle_seconds_before_scaledown must be at least 0"},
		{"bad identity", append(append(cl, "c-one", "--identity-type", "Magic"), ok...), 2, "identity_type must be one of"},
		{"user identity without id", append(append(cl, "c-one", "--identity-type", "UserAssigned"), ok...), 2, "identity_id must name at least one"},
		{"bad ssh key", append(append(cl, "c-one", "--admin-username", "az", "--admin-user-ssh-key", badKey), ok...), 2, "admin_user_ssh_key must be one OpenSSH public key line"},
		{"missing key file", append(append(cl, "c-one", "--admin-user-ssh-key", "/nonexistent/k.pub"), ok...), 2, "--admin-user-ssh-key: cannot read /nonexistent/k.pub"},
		{"provider unknown", append(append(cl, "c-one", "--provider", "aws"), ok...), 2, "provider must be one of local, ssh, slurm, kubernetes, sim"},
		{"slurm without from", append(append(cl, "c-one", "--provider", "slurm"), ok...), 2, "from must name the attached slurm target"},
		{"from missing target", append(append(cl, "c-one", "--provider", "slurm", "--from", "nope"), ok...), 2, `from names "nope", but there is no compute target`},
		{"from wrong type", append(append(cl, "c-one", "--provider", "slurm", "--from", "taken"), ok...), 2, "a cluster target; provider slurm needs a slurm target"},
		{"bad tag", append(append(cl, "c-one", "--tag", "novalue"), ok...), 2, "--tag must be key=value"},
		{"name too short", append(cl, "ab", ok[0], ok[1], ok[2], ok[3]), 2, "must be 3 to 24 characters"},
		{"name bad start", append(cl, "1abc", ok[0], ok[1], ok[2], ok[3]), 2, "must start with a letter"},
		{"name dash digits", append(cl, "gpu-01", ok[0], ok[1], ok[2], ok[3]), 2, "must not end in '-'"},
		{"name reserved", append(cl, "LOCAL", ok[0], ok[1], ok[2], ok[3]), 2, "reserved for the built-in local target"},
		{"name missing", cl, 2, "NAME is required"},
		{"duplicate name", append(cl, "TAKEN", ok[0], ok[1], ok[2], ok[3]), 4, `a compute target named "TAKEN" already exists`},
		{"unknown flag", append(append(cl, "c-one", "--max-nodez", "3"), ok...), 2, "unknown flag: --max-nodez"},
		{"bad int flag", append(cl, "c-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "four"), 2, "invalid argument \"four\""},
		{"bad output", []string{"compute", "list", "-o", "xml"}, 2, "--output must be table, json or yaml"},
		{"instance bad duration", []string{"compute", "create", "instance", "box-one", "--vm-size", "STANDARD_D2_V2", "--idle-time-before-shutdown", "soon"}, 2, "idle_time_before_shutdown must be a duration"},
		{"instance unknown user", []string{"compute", "create", "instance", "box-one", "--vm-size", "STANDARD_D2_V2", "--assigned-user", "ghost"}, 2, `assigned_user "ghost" is not a known user`},
		{"instance ssh without key", []string{"compute", "create", "instance", "box-one", "--vm-size", "STANDARD_D2_V2", "--ssh-public-access"}, 2, "admin_user_ssh_key is required when ssh_public_access"},
		{"show missing", []string{"compute", "show", "nope-nope"}, 3, `compute target "nope-nope" not found`},
		{"delete missing", []string{"compute", "delete", "nope-nope"}, 3, "not found"},
		{"update missing", []string{"compute", "update", "nope-nope", "--max-nodes", "3"}, 3, "not found"},
		{"update nothing", []string{"compute", "update", "taken"}, 2, "nothing to update"},
		{"update min above max", []string{"compute", "update", "taken", "--min-nodes", "5"}, 2, "min_nodes (5) must not be more than max_nodes (2)"},
		{"update wrong type field", []string{"compute", "update", "taken", "--max-concurrent-runs", "3"}, 2, "max_concurrent_runs of a cluster cannot be changed"},
		{"delete local", []string{"compute", "delete", "local"}, 2, "built in and cannot be deleted"},
		{"update local", []string{"compute", "update", "local", "--max-nodes", "3"}, 2, "nothing that can be updated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("paddock %s\n exit %d, want %d\n stderr %q, want it to contain %q", strings.Join(tc.args, " "), r.code, tc.code, r.stderr, tc.want)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("error is more than one line: %q", r.stderr)
			}
		})
	}
	// Nothing half-made: only what was created successfully exists, unchanged.
	list := decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))
	if len(list) != 2 || list[0].Name != "local" || list[1].Name != "taken" {
		t.Fatalf("after failed requests the list is %v", list)
	}
	if p := props(t, list[1]); p["max_nodes"] != 2.0 || p["min_nodes"] != 0.0 || list[1].ProvisioningState != api.StateSucceeded {
		t.Fatalf("a refused update changed the target: %v %s", p, list[1].ProvisioningState)
	}
}

// A cluster on a provider needs what that provider takes its nodes from,
// or is refused with a clear reason; a provider this server does not run
// fails to provision (unit-tested in internal/provisioning).
func TestProviderChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	if r := e.run("compute", "create", "cluster", "ssh-pool", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--provider", "ssh"); r.code != 2 || !strings.Contains(r.stderr, "from must name the SSH pool") {
		t.Fatalf("provider ssh without a pool: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("compute", "create", "cluster", "slurm-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--provider", "slurm", "--from", "nope-nope"); r.code != 2 || !strings.Contains(r.stderr, "no compute target of that name") {
		t.Fatalf("provider slurm from a missing target: exit %d %q", r.code, r.stderr)
	}
	// kubernetes takes its nodes from an attached kubernetes target
	// (e2e/kubernetes_test.go runs one).
	if r := e.run("compute", "create", "cluster", "kube-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--provider", "kubernetes"); r.code != 2 ||
		!strings.Contains(r.stderr, "from must name the attached kubernetes target") {
		t.Fatalf("provider kubernetes without from: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("compute", "create", "cluster", "kube-one", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2", "--provider", "kubernetes", "--from", "nope-nope"); r.code != 2 ||
		!strings.Contains(r.stderr, "no compute target of that name") {
		t.Fatalf("provider kubernetes from a missing target: exit %d %q", r.code, r.stderr)
	}
	if out := e.ok("compute", "create", "cluster", "--help"); !strings.Contains(out, "kubernetes") {
		t.Errorf("create cluster --help does not offer kubernetes:\n%s", out)
	}
}

func TestRestartKeepsTargetsAndSecondUpRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	e.ok("compute", "create", "cluster", "cpu-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4")
	e.ok("compute", "create", "cluster", "gone-soon", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4")
	e.ok("compute", "delete", "gone-soon", "--no-wait")

	second := e.run("up", "--data-dir", e.dataDir, "--listen", "127.0.0.1:0")
	if second.code != 4 || !strings.Contains(second.stderr, "is in use by another paddock server") {
		t.Fatalf("second up: exit %d, stderr %q", second.code, second.stderr)
	}
	e.ok("compute", "show", "cpu-cluster") // the first server is unharmed

	if err := s.stop(t); err != nil {
		t.Fatalf("SIGTERM: server exited with %v\n%s", err, s.Logs())
	}
	if !strings.Contains(s.Logs(), `msg=stopped`) {
		t.Fatalf("no clean shutdown in the log:\n%s", s.Logs())
	}
	if r := e.run("compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach the Paddock server") {
		t.Fatalf("CLI with server down: exit %d, %q", r.code, r.stderr)
	}

	s2 := e.up()
	c := decodeJSON[api.Compute](t, e.ok("compute", "show", "cpu-cluster", "-o", "json"))
	if c.ProvisioningState != api.StateSucceeded || props(t, c)["max_nodes"] != 4.0 {
		t.Fatalf("after restart: %+v", c)
	}
	if r := e.run("compute", "show", "gone-soon"); r.code != 3 {
		t.Fatalf("a delete accepted before the restart did not complete: exit %d", r.code)
	}

	// A crash (SIGKILL) loses nothing that was acknowledged either.
	e.ok("compute", "create", "instance", "my-box", "--vm-size", "STANDARD_DS3_V2")
	s2.kill()
	e.up()
	e.ok("compute", "show", "my-box")
}

func TestAuthAndPublicEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	cfgData, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(e.config)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v, want 0600", fi.Mode().Perm())
	}
	cfg := decodeJSON[map[string]string](t, string(cfgData))
	if cfg["server"] != s.url || !strings.HasPrefix(cfg["token"], "pdk_") || cfg["workspace"] != "default" {
		t.Fatalf("config = %v", cfg)
	}
	if strings.Contains(s.Logs(), cfg["token"]) {
		t.Fatal("the admin token appears in the server log")
	}

	for _, token := range []string{"", "pdk_wrong"} {
		code, body := httpGet(t, s.url+"/api/v1/workspaces/default/computes", token)
		eb := decodeJSON[api.ErrorBody](t, body)
		if code != 401 || eb.Error == nil || eb.Error.Code != api.CodeUnauthenticated {
			t.Errorf("token %q: %d %s", token, code, body)
		}
	}
	if code, _ := httpGet(t, s.url+"/api/v1/workspaces/default/computes", cfg["token"]); code != 200 {
		t.Errorf("with token: %d", code)
	}
	if code, body := httpGet(t, s.url+"/api/v1/workspaces/nope/computes", cfg["token"]); code != 404 || !strings.Contains(body, `workspace \"nope\" not found`) {
		t.Errorf("unknown workspace: %d %s", code, body)
	}
	if r := e.run("compute", "list", "--token", "pdk_wrong"); r.code != 1 || !strings.Contains(r.stderr, "not valid") {
		t.Errorf("CLI with a wrong token: exit %d %q", r.code, r.stderr)
	}
	code, body := httpGet(t, s.url+"/api/v1/openapi.json", "")
	if doc := decodeJSON[map[string]any](t, body); code != 200 || doc["openapi"] == nil {
		t.Errorf("openapi: %d", code)
	}
	if code, body := httpGet(t, s.url+"/metrics", ""); code != 200 ||
		!strings.Contains(body, "paddock_http_requests_total") || !strings.Contains(body, `paddock_compute_targets{state="Succeeded",type="local",workspace="default"} 1`) {
		t.Errorf("metrics: %d\n%.2000s", code, body)
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up("--log-level", "debug")
	const password = "Tr0ub4dor&3-never-shown"
	pwFile := writeFile(t, e.home, "pw", password+"\n")
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	keyFile := writeFile(t, e.home, "id.pub", string(ssh.MarshalAuthorizedKey(sshPub)))

	out := e.ok("compute", "create", "cluster", "secure", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "2",
		"--admin-username", "azureuser", "--admin-user-password-file", pwFile, "--admin-user-ssh-key", keyFile, "-o", "json")
	c := decodeJSON[api.Compute](t, out)
	if len(c.SecretsSet) != 1 || c.SecretsSet[0] != "admin_user_password" {
		t.Errorf("secrets_set = %v", c.SecretsSet)
	}
	if p := props(t, c); p["admin_user_ssh_key"] == nil || p["admin_user_password"] != nil {
		t.Errorf("properties = %v", p)
	}
	// An update re-validates with the stored secret and keeps it.
	e.ok("compute", "update", "secure", "--max-nodes", "3")
	outputs := []string{out, e.ok("compute", "show", "secure"), e.ok("compute", "show", "secure", "-o", "yaml"), e.ok("compute", "list", "-o", "json")}
	for _, o := range outputs {
		if strings.Contains(o, password) {
			t.Fatalf("the password appears in CLI output:\n%s", o)
		}
	}
	if strings.Contains(s.Logs(), password) {
		t.Fatal("the password appears in the server log")
	}
	e.ok("compute", "show", "secure") // make sure everything is written
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.Contains(string(data), password) {
			t.Fatalf("the password is stored in plain text in %s", f)
		}
	}
	fi, err := os.Stat(filepath.Join(e.dataDir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key: %v %v", fi, err)
	}
}

func TestSizesCatalogWithAdminFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.dataDir, "sizes.yaml", "sizes:\n  - name: LAB_GPU_BOX\n    cores: 32\n    memory_gb: 256\n    gpus: 4\n")
	srv := e.up()
	sizes := decodeJSON[[]api.Size](t, e.ok("compute", "sizes", "-o", "json"))
	found := map[string]api.Size{}
	for _, s := range sizes {
		found[s.Name] = s
	}
	if d2 := found["STANDARD_D2_V2"]; d2.Cores != 2 || d2.MemoryGB != 7 {
		t.Errorf("STANDARD_D2_V2 = %+v", d2)
	}
	if nc := found["STANDARD_NC6"]; nc.Cores != 6 || nc.MemoryGB != 56 || nc.GPUs != 1 {
		t.Errorf("STANDARD_NC6 = %+v", nc)
	}
	if lab := found["LAB_GPU_BOX"]; lab.GPUs != 4 || lab.Family != "custom" || !strings.HasSuffix(lab.Source, "sizes.yaml") {
		t.Errorf("admin size = %+v", lab)
	}
	c := decodeJSON[api.Compute](t, e.ok("compute", "create", "cluster", "gpu-pool", "--vm-size", "lab_gpu_box", "--max-nodes", "2", "-o", "json"))
	if props(t, c)["vm_size"] != "LAB_GPU_BOX" {
		t.Errorf("vm_size = %v", props(t, c)["vm_size"])
	}
	if table := e.ok("compute", "sizes"); !strings.Contains(table, "LAB_GPU_BOX") || !strings.Contains(table, "CORES") {
		t.Errorf("sizes table:\n%s", table)
	}

	// A bad edit while the server runs is logged and shown; the last good
	// catalog stays in use until the file is fixed.
	cores := func(table string) string { // of LAB_GPU_BOX
		for _, line := range strings.Split(table, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "LAB_GPU_BOX" {
				return f[1]
			}
		}
		return ""
	}
	edit := func(content string, at time.Time) {
		p := writeFile(t, e.dataDir, "sizes.yaml", content)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	edit("sizes:\n  - name: LAB_GPU_BOX\n    cores: 0\n    memory_gb: 256\n", time.Now().Add(time.Minute))
	eventually(t, 10*time.Second, "the server to log the invalid size file", func() bool {
		return strings.Contains(srv.Logs(), "level=WARN msg=\"the size file is invalid") && strings.Contains(srv.Logs(), "cores must be at least 1")
	})
	r := e.run("compute", "sizes")
	if r.code != 0 || cores(r.stdout) != "32" ||
		!strings.Contains(r.stderr, "warning: ") || !strings.Contains(r.stderr, "(LAB_GPU_BOX): cores must be at least 1; the last good catalog is in use") {
		t.Errorf("compute sizes with an invalid file: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	edit("sizes:\n  - name: LAB_GPU_BOX\n    cores: 16\n    memory_gb: 256\n", time.Now().Add(2*time.Minute))
	eventually(t, 10*time.Second, "the fixed file to be taken", func() bool {
		r := e.run("compute", "sizes")
		return r.code == 0 && r.stderr == "" && cores(r.stdout) == "16"
	})
}

func TestInvalidSizesFileRefusesToStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	os.MkdirAll(e.dataDir, 0o700)
	writeFile(t, e.dataDir, "sizes.yaml", "sizes:\n  - name: BROKEN\n    cores: 0\n    memory_gb: 1\n")
	r := e.run("up", "--data-dir", e.dataDir, "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "cores must be at least 1") {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
}
