package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	_ "modernc.org/sqlite" // to edit the audit table behind the server's back
)

// Each role through the CLI, as a team would use it: what the role allows
// works, what it does not is refused with exit 1 and a message naming the
// role and the action, and nothing changes.
func TestRolesThroughTheCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	tokens := map[string]string{}
	for _, u := range []struct{ name, role string }{
		{"rita", "reader"}, {"otto", "compute-operator"}, {"bob", "Contributor"}, {"olga", "Owner"},
	} {
		tokens[u.name] = strings.TrimSpace(e.ok("user", "add", u.name, "--role", u.role))
	}
	as := func(user string, args ...string) result {
		return e.run(append([]string{"--token", tokens[user]}, args...)...)
	}
	refused := func(r result, says string) bool {
		return r.code == 1 && strings.Contains(r.stderr, says)
	}

	// The admin's instance: bob (Contributor) may neither delete nor stop
	// it, and it is unchanged afterwards.
	e.ok("compute", "create", "instance", "admin-box", "--vm-size", "STANDARD_D2_V2")
	before := e.ok("compute", "show", "admin-box", "-o", "json")
	for _, args := range [][]string{{"compute", "delete", "admin-box"}, {"compute", "stop", "admin-box"}} {
		if r := as("bob", args...); !refused(r, "belongs to admin") {
			t.Errorf("bob: paddock %v: exit %d %q", args, r.code, r.stderr)
		}
	}
	var b, a api.Compute
	json.Unmarshal([]byte(before), &b)
	json.Unmarshal([]byte(e.ok("compute", "show", "admin-box", "-o", "json")), &a)
	if a.ProvisioningState != api.StateSucceeded || string(a.Status) != string(b.Status) {
		t.Errorf("admin-box changed after bob's refused calls: %s → %s", b.Status, a.Status)
	}

	// Reader: reads, nothing else.
	if r := as("rita", "compute", "list"); r.code != 0 {
		t.Errorf("rita listing: exit %d %q", r.code, r.stderr)
	}
	if r := as("rita", "run", "submit", "--compute", "local", "--", "true"); !refused(r, "Reader in this workspace, which does not allow run.submit") {
		t.Errorf("rita submitting: exit %d %q", r.code, r.stderr)
	}
	// ComputeOperator: compute, not runs.
	if r := as("otto", "compute", "create", "cluster", "otto-cpu", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1"); r.code != 0 {
		t.Errorf("otto creating a cluster: exit %d %q", r.code, r.stderr)
	}
	if r := as("otto", "run", "list"); !refused(r, "does not allow run.read") {
		t.Errorf("otto listing runs: exit %d %q", r.code, r.stderr)
	}
	// Contributor: own runs, not others'.
	adminRun := strings.TrimSpace(e.ok("run", "submit", "--compute", "local", "--", "sleep", "30"))
	if r := as("bob", "run", "cancel", adminRun); !refused(r, "belongs to admin") {
		t.Errorf("bob canceling the admin's run: exit %d %q", r.code, r.stderr)
	}
	if r := as("bob", "run", "submit", "--compute", "local", "--stream", "--", "true"); r.code != 0 {
		t.Errorf("bob's own run: exit %d %q", r.code, r.stderr)
	}
	if r := as("bob", "user", "add", "mallory"); !refused(r, "does not allow user.write") {
		t.Errorf("bob adding a user: exit %d %q", r.code, r.stderr)
	}
	// Owner: everything, users included; a new role takes effect at once.
	if r := as("olga", "compute", "delete", "otto-cpu"); r.code != 0 {
		t.Errorf("olga deleting otto's cluster: exit %d %q", r.code, r.stderr)
	}
	if r := as("olga", "user", "set-role", "rita", "contributor"); r.code != 0 {
		t.Fatalf("olga changing rita's role: exit %d %q", r.code, r.stderr)
	}
	if r := as("rita", "run", "submit", "--compute", "local", "--stream", "--", "true"); r.code != 0 {
		t.Errorf("rita as a Contributor: exit %d %q", r.code, r.stderr)
	}
	list := e.ok("user", "list")
	for _, want := range []string{"admin\tOwner (admin)", "rita\tContributor", "otto\tComputeOperator", "olga\tOwner"} {
		if !strings.Contains(strings.Join(strings.Fields(list), "\t"), strings.Join(strings.Fields(want), "\t")) {
			t.Errorf("user list lacks %q:\n%s", want, list)
		}
	}
	// Removing a user kills their tokens at once.
	e.ok("user", "remove", "bob")
	if r := as("bob", "compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "not valid") {
		t.Errorf("a removed user's token: exit %d %q", r.code, r.stderr)
	}
	e.ok("run", "cancel", adminRun)
}

// Tokens: an expired and a revoked token are refused (401) within a
// second; rotating the admin's token rewrites the CLI config and the data
// dir's copy, and a restarted server accepts the new one only.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	status := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/api/v1/workspaces/default/computes", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	within := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	asked := time.Now()
	short := strings.TrimSpace(e.ok("token", "create", "short", "--expires", "2s"))
	made := time.Now()
	ci := strings.TrimSpace(e.ok("token", "create", "ci", "--expires", "30d"))
	if status(short) != http.StatusOK || status(ci) != http.StatusOK {
		t.Fatal("fresh tokens are refused")
	}
	within("the expired token refused", 3*time.Second+time.Until(made), func() bool { return status(short) == http.StatusUnauthorized })
	if time.Since(asked) < 2*time.Second {
		t.Fatalf("the token expired early, %s after it was asked for", time.Since(asked))
	}
	if r := e.run("--token", short, "compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "expired at") {
		t.Errorf("CLI with an expired token: exit %d %q", r.code, r.stderr)
	}
	e.ok("token", "revoke", "ci")
	revoked := time.Now()
	within("the revoked token refused", time.Second, func() bool { return status(ci) == http.StatusUnauthorized })
	t.Logf("revocation took effect after %s", time.Since(revoked))
	list := e.ok("token", "list")
	for _, want := range []string{"short", "expired", "ci", "revoked", "admin", "live"} {
		if !strings.Contains(list, want) {
			t.Errorf("token list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "pdk_") {
		t.Errorf("token list shows a secret:\n%s", list)
	}
	if r := e.run("token", "create", "x", "--expires", "soon"); r.code != 2 || !strings.Contains(r.stderr, "--expires must be") {
		t.Errorf("a bad --expires: exit %d %q", r.code, r.stderr)
	}

	// Rotate the admin's token.
	oldAdmin := readConfigToken(t, e)
	e.ok("token", "rotate-admin")
	newAdmin := readConfigToken(t, e)
	if newAdmin == oldAdmin || status(oldAdmin) != http.StatusUnauthorized || status(newAdmin) != http.StatusOK {
		t.Fatalf("after rotate-admin: old %d, new %d", status(oldAdmin), status(newAdmin))
	}
	if data, _ := os.ReadFile(filepath.Join(e.dataDir, "admin.token")); strings.TrimSpace(string(data)) != newAdmin {
		t.Fatal("admin.token in the data dir was not rewritten")
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	s = e.up()
	if status(newAdmin) != http.StatusOK || status(oldAdmin) != http.StatusUnauthorized {
		t.Fatalf("after a restart: new %d, old %d", status(newAdmin), status(oldAdmin))
	}
}

// readConfigToken is the token in the CLI config the env's commands use.
func readConfigToken(t *testing.T, e *env) string {
	t.Helper()
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Token
}

// Each mutating CLI command leaves an audit entry naming who, what and on
// what; `audit verify` passes, then fails naming the entry after a row of
// the database is edited behind the server's back.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	steps := []struct {
		args   []string
		action string
		target string
	}{
		{[]string{"compute", "create", "cluster", "cpu", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1"}, "compute.create", "computes/cpu"},
		{[]string{"compute", "update", "cpu", "--max-nodes", "2"}, "compute.update", "computes/cpu"},
		{[]string{"quota", "set", "--dedicated-cores", "64"}, "quota.set", "quotas"},
		{[]string{"run", "submit", "--compute", "local", "--", "true"}, "run.submit", "runs/"},
		{[]string{"user", "set-role", "bob", "reader"}, "user.set-role", "users/bob"},
		{[]string{"token", "create", "ci"}, "token.create", "tokens/tok-"},
		{[]string{"token", "revoke", "ci"}, "token.revoke", "tokens/ci"},
		{[]string{"compute", "delete", "cpu"}, "compute.delete", "computes/cpu"},
	}
	for _, s := range steps {
		e.ok(s.args...)
	}
	if r := e.run("--token", bob, "compute", "delete", "local"); r.code != 1 {
		t.Fatalf("bob (Reader) deleting: exit %d", r.code)
	}
	var entries []api.AuditEntry
	if err := json.Unmarshal([]byte(e.ok("audit", "list", "-o", "json")), &entries); err != nil {
		t.Fatal(err)
	}
	find := func(action, target, user, outcome string) bool {
		for _, en := range entries {
			if en.Action == action && strings.HasPrefix(en.Target, target) && en.User == user && en.Outcome == outcome && en.Source == "127.0.0.1" {
				return true
			}
		}
		return false
	}
	for _, s := range steps {
		if !find(s.action, s.target, "admin", "ok") {
			t.Errorf("no audit entry for paddock %v (%s on %s*)", s.args, s.action, s.target)
		}
	}
	if !find("compute.delete", "computes/local", "bob", "denied") {
		t.Error("no audit entry for bob's refused delete")
	}
	if !find("user.add", "users/bob", "admin", "ok") {
		t.Error("no audit entry for adding bob")
	}
	var only []api.AuditEntry
	json.Unmarshal([]byte(e.ok("audit", "list", "--user", "bob", "--action", "compute.", "--since", "1h", "-o", "json")), &only)
	if len(only) != 1 || only[0].Outcome != "denied" {
		t.Errorf("filtered list = %+v, want bob's one denied compute call", only)
	}
	if out := e.ok("audit", "verify"); !strings.Contains(out, "chain intact") {
		t.Fatalf("verify on an untouched log: %q", out)
	}

	// Edit a row behind the server's back.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dataDir, "paddock.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRow(`SELECT seq FROM audit WHERE action = 'compute.delete' AND user_name = 'admin'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit SET user_name = 'bob' WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	r := e.run("audit", "verify")
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("tampered with at entry %d", seq)) {
		t.Fatalf("verify after an edit: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}
