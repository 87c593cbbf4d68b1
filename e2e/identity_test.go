package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// identitySecret is the value the tests' identity holds: it must reach the
// run that holds the identity, and nothing else.
const identitySecret = "e2e-s3cret-value-7f3a"

// holderPy runs on a cluster with an identity: it reads its credential
// through the endpoint (printing whether the secret is right, never the
// secret), checks the identity token with the server, saves the endpoint
// and tokens to ./outputs for the test to try after the run has ended,
// tells the coordinator its endpoint, and stays until the other run has
// probed it.
const holderPy = `import hashlib, json, os, sys, time, urllib.request, urllib.error
coord = sys.argv[1]
def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
ep, tok = os.environ["PADDOCK_IDENTITY_ENDPOINT"], os.environ["PADDOCK_IDENTITY_TOKEN"]
code, body = get(ep, tok)
cred = json.loads(body)
print("credential", code, cred["identity"], "secret-ok" if hashlib.sha256(cred["secrets"].get("TOKEN", "").encode()).hexdigest() == os.environ["WANT"] else "secret-wrong", flush=True)
code, body = get(os.environ["PADDOCK_API_URL"] + "/api/v1/identity/token", cred["token"])
print("identity-token", code, json.loads(body).get("run_id") == os.environ["PADDOCK_RUN_ID"], flush=True)
os.makedirs("outputs", exist_ok=True)
json.dump({"endpoint": ep, "token": tok, "identity_token": cred["token"]}, open("outputs/saved.json", "w"))
urllib.request.urlopen(urllib.request.Request(coord + "/endpoint", data=ep.encode(), method="POST"))
deadline = time.time() + 60
while time.time() < deadline and urllib.request.urlopen(coord + "/done").read() != b"yes":
    time.sleep(0.1)
print("still-good", get(ep, tok)[0], flush=True)
`

// probePy runs on the same node without an identity: it waits for the
// holder's endpoint and tries it without a token, with its own run token
// and with a made-up one, saying whether an answer held secrets.
const probePy = `import os, sys, time, urllib.request, urllib.error
coord = sys.argv[1]
print("env", "PADDOCK_IDENTITY_ENDPOINT" in os.environ, "PADDOCK_IDENTITY_TOKEN" in os.environ, flush=True)
ep, deadline = b"", time.time() + 60
while not ep and time.time() < deadline:
    ep = urllib.request.urlopen(coord + "/endpoint").read()
    time.sleep(0.1)
for name, tok in [("none", None), ("run-token", os.environ["PADDOCK_RUN_TOKEN"]), ("made-up", "A" * 43)]:
    req = urllib.request.Request(ep.decode(), headers={"Authorization": "Bearer " + tok} if tok else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            code, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read().decode()
    print("probe", name, code, "secrets" in body, flush=True)
urllib.request.urlopen(urllib.request.Request(coord + "/done", data=b"yes", method="POST"))
`

// coordinator lets two runs meet: one posts its endpoint, the other says
// when it is done. Runs reach it on loopback.
type coordinator struct {
	mu             sync.Mutex
	endpoint, done string
}

func (c *coordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot := map[string]*string{"/endpoint": &c.endpoint, "/done": &c.done}[r.URL.Path]
	switch {
	case slot == nil:
		http.NotFound(w, r)
	case r.Method == http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		*slot = string(b)
	default:
		io.WriteString(w, *slot)
	}
}

// A run on a cluster given a user-assigned identity (with `compute update`,
// after it was created) reads the identity's credential through its
// endpoint and checks its identity token with the server; a run that was
// submitted before, running on the same node, gets neither variable and is
// refused by the endpoint whatever it sends; once the holder has ended, its
// saved token and endpoint get nothing, and its identity token is refused.
// The secret shows up nowhere else.
func TestIdentityRunCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	secretFile := writeFile(t, e.home, "token.txt", identitySecret+"\n")
	e.ok("identity", "create", "blob-reader", "--secret", "TOKEN=@"+secretFile, "--description", "reads the bucket")
	e.ok("compute", "create", "cluster", "idc", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1",
		"--idle-seconds-before-scaledown", "300")
	coord := &coordinator{}
	cs := httptest.NewServer(coord)
	t.Cleanup(cs.Close)
	src := t.TempDir()
	writeFile(t, src, "holder.py", holderPy)
	writeFile(t, src, "probe.py", probePy)

	sum := sha256.Sum256([]byte(identitySecret))
	want := "WANT=" + hex.EncodeToString(sum[:]) // the holder checks the secret without being given it
	probe := e.submit2("idc", "--source", src, "--", "python3", "probe.py", cs.URL)
	e.ok("compute", "update", "idc", "--identity-type", "UserAssigned", "--identity-id", "blob-reader")
	holder := e.submit2("idc", "--source", src, "--env", want, "--", "python3", "holder.py", cs.URL)
	if r := e.show(holder); strings.Join(r.Identities, ",") != "blob-reader" || r.IdentityType != api.IdentityUserAssigned {
		t.Fatalf("the run submitted after the update holds %s %v, want blob-reader", r.IdentityType, r.Identities)
	}
	if r := e.show(probe); len(r.Identities) != 0 {
		t.Fatalf("the run submitted before the update holds %v, want none", r.Identities)
	}
	p, h := e.waitRun(probe), e.waitRun(holder)
	probeLog, holderLog := e.ok("run", "logs", probe), e.ok("run", "logs", holder)
	if p.Status != api.RunCompleted || h.Status != api.RunCompleted {
		t.Fatalf("probe %s (%s), holder %s (%s)\nprobe log:\n%s\nholder log:\n%s\nserver log:\n%s", p.Status, p.Error, h.Status, h.Error, probeLog, holderLog, s.Logs())
	}
	if p.Attempts[0].Node != h.Attempts[0].Node {
		t.Fatalf("the runs ran on %s and %s, want one node", p.Attempts[0].Node, h.Attempts[0].Node)
	}
	for _, want := range []string{"credential 200 blob-reader secret-ok", "identity-token 200 True", "still-good 200"} {
		if !strings.Contains(holderLog, want) {
			t.Errorf("holder log lacks %q:\n%s", want, holderLog)
		}
	}
	for _, want := range []string{"env False False", "probe none 401 False", "probe run-token 401 False", "probe made-up 401 False"} {
		if !strings.Contains(probeLog, want) {
			t.Errorf("probe log lacks %q:\n%s", want, probeLog)
		}
	}

	// After the run: what it saved gets nothing.
	out := t.TempDir()
	e.ok("run", "download", holder, "--to", out)
	data, err := os.ReadFile(filepath.Join(out, "saved.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct{ Endpoint, Token, IdentityToken string }
	if err := json.Unmarshal(data, &saved); err != nil || !strings.HasPrefix(saved.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("saved %s (%v)", data, err)
	}
	if code, body := httpGet(t, saved.Endpoint, saved.Token); code != http.StatusUnauthorized || strings.Contains(body, identitySecret) {
		t.Errorf("the endpoint with the ended run's token: %d %s, want 401", code, body)
	}
	if code, body := httpGet(t, s.url+api.IdentityTokenPath, saved.IdentityToken); code != http.StatusUnauthorized {
		t.Errorf("the ended run's identity token: %d %s, want 401", code, body)
	}

	// The secret is nowhere but in the run that held it.
	places := map[string]string{"the server log": s.Logs(), "identity list": e.ok("identity", "list", "-o", "json"),
		"identity show": e.ok("identity", "show", "blob-reader", "-o", "json"), "the holder's log": holderLog,
		"run show": e.ok("run", "show", holder, "-o", "json"), "compute show": e.ok("compute", "show", "idc", "-o", "json")}
	logs, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "agent.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		places[f] = string(b)
	}
	for where, text := range places {
		if strings.Contains(text, identitySecret) {
			t.Errorf("%s shows the identity's secret", where)
		}
	}
}

// The identity commands and their errors: secrets by key only, an unknown
// identity refused by name, assigning needs its creator or an admin, an
// identity in use cannot be deleted, and a SystemAssigned cluster has an
// identity of its own, with a principal id, that goes with it.
func TestIdentityCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	secretFile := writeFile(t, e.home, "token.txt", identitySecret)
	created := decodeJSON[api.Identity](t, e.ok("identity", "create", "blob-reader", "--secret", "TOKEN=@"+secretFile,
		"--secret", "REGION=eu", "-o", "json"))
	if strings.Join(created.SecretKeys, ",") != "REGION,TOKEN" || len(created.PrincipalID) != 36 || created.Type != api.IdentityUserAssigned {
		t.Fatalf("created %+v", created)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"identity", "create", "blob-reader", "--secret", "A=b"}, 4, "already exists"},
		{[]string{"identity", "create", "other-key", "--secret", "A=@" + filepath.Join(e.home, "nope")}, 2, "cannot read"},
		{[]string{"identity", "create", "other-key", "--secret", "bad-key=x"}, 2, "secret key"},
		{[]string{"identity", "show", "nobody-here"}, 3, "not found"},
		{[]string{"compute", "create", "cluster", "c-bad", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1",
			"--identity-type", "UserAssigned", "--identity-id", "nobody-here"}, 2, "identity_id names \"nobody-here\""},
	} {
		if r := e.run(tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("paddock %s: exit %d, %q; want exit %d saying %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.msg)
		}
	}
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	if r := e.run("--token", bob, "compute", "create", "cluster", "bobs", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1",
		"--identity-type", "UserAssigned", "--identity-id", "blob-reader"); r.code != 1 || !strings.Contains(r.stderr, "only they and Owners") {
		t.Errorf("bob assigning the admin's identity: exit %d %q", r.code, r.stderr)
	}
	// The seed's Azure resource id names the identity by its last segment.
	e.ok("compute", "create", "cluster", "c-user", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1",
		"--identity-type", "UserAssigned", "--identity-id", "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/blob-reader")
	c := decodeJSON[api.Compute](t, e.ok("compute", "show", "c-user", "-o", "json"))
	if c.Identity == nil || len(c.Identity.UserAssignedIdentities) != 1 || c.Identity.UserAssignedIdentities[0].PrincipalID != created.PrincipalID {
		t.Fatalf("compute show identity = %+v", c.Identity)
	}
	if r := e.run("identity", "delete", "blob-reader"); r.code != 4 || !strings.Contains(r.stderr, "c-user") {
		t.Errorf("deleting an identity in use: exit %d %q", r.code, r.stderr)
	}
	rotated := writeFile(t, e.home, "rotated.txt", "rotated-value")
	if out := e.ok("identity", "update", "blob-reader", "--secret", "TOKEN=@"+rotated, "--remove-secret", "REGION"); strings.Contains(out, "rotated-value") || !strings.Contains(out, "TOKEN (write-only)") {
		t.Errorf("identity update printed %q", out)
	}

	e.ok("compute", "create", "cluster", "c-sys", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--identity-type", "SystemAssigned")
	sys := decodeJSON[api.Compute](t, e.ok("compute", "show", "c-sys", "-o", "json"))
	if sys.Identity == nil || sys.Identity.Type != api.IdentitySystemAssigned || len(sys.Identity.PrincipalID) != 36 {
		t.Fatalf("SystemAssigned cluster identity = %+v", sys.Identity)
	}
	if table := e.ok("compute", "show", "c-sys"); !strings.Contains(table, sys.Identity.PrincipalID) {
		t.Errorf("compute show does not show the principal id:\n%s", table)
	}
	list := decodeJSON[[]api.Identity](t, e.ok("identity", "list", "-o", "json"))
	if len(list) != 2 || list[1].Type != api.IdentitySystemAssigned || list[1].Compute != "c-sys" || list[1].PrincipalID != sys.Identity.PrincipalID {
		t.Fatalf("identity list = %+v", list)
	}
	e.ok("compute", "update", "c-user", "--identity-type", "None")
	e.ok("identity", "delete", "blob-reader")
	e.ok("compute", "delete", "c-sys")
	if list := decodeJSON[[]api.Identity](t, e.ok("identity", "list", "-o", "json")); len(list) != 0 {
		t.Errorf("identities left after the cluster and the identity were deleted: %+v", list)
	}
}

// The admin policy: only admins set it; a run asking for longer than its
// maximum is refused naming the field, one asking for no limit is stopped
// at it; an instance asking to idle longer is refused, one with no idle
// time is stopped after the policy's; every time the policy fires, the
// server logs it.
func TestPolicyLimitsRunsAndInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	if r := e.run("--token", bob, "workspace", "set", "--max-run-duration", "1h"); r.code != 1 || !strings.Contains(r.stderr, "does not allow workspace.write") {
		t.Errorf("bob setting the policy: exit %d %q", r.code, r.stderr)
	}
	e.ok("workspace", "set", "--max-instance-idle", "2s", "--max-run-duration", "2s")
	ws := decodeJSON[api.Workspace](t, e.ok("--token", bob, "workspace", "show", "-o", "json"))
	if ws.Policy.MaxIdleTimeBeforeShutdown != "2s" || ws.Policy.MaxRunDurationSeconds != 2 {
		t.Fatalf("workspace show = %+v", ws)
	}

	if r := e.run("run", "submit", "--compute", "local", "--max-run-duration", "1m", "--", "true"); r.code != 2 ||
		!strings.Contains(r.stderr, "max_run_duration_seconds (60)") || !strings.Contains(r.stderr, "policy") {
		t.Errorf("a run asking for longer: exit %d %q", r.code, r.stderr)
	}
	id := e.submit("--", "sleep", "60")
	started := time.Now()
	r := e.waitRun(id)
	if r.Status != api.RunCanceled || r.Attempts[0].Reason != "MaxRunDurationExceeded" || !r.MaxRunDurationFromPolicy || r.MaxRunDurationSeconds != 2 {
		t.Fatalf("a run without a limit: %s %+v, from policy %v", r.Status, r.Attempts, r.MaxRunDurationFromPolicy)
	}
	if took := time.Since(started); took > 30*time.Second {
		t.Errorf("the run was stopped after %s, want about 2 s", took)
	}
	if out := e.ok("run", "show", id); !strings.Contains(out, "2s (the workspace's policy)") {
		t.Errorf("run show does not say the policy set the limit:\n%s", out)
	}
	if c := decodeJSON[api.Compute](t, e.ok("compute", "show", "local", "-o", "json")); c.Limits == nil || c.Limits.MaxRunDurationSeconds != 2 {
		t.Errorf("compute show local limits = %+v", c.Limits)
	}

	if r := e.run("compute", "create", "instance", "long-box", "--vm-size", "STANDARD_D2_V2", "--idle-time-before-shutdown", "1h"); r.code != 2 ||
		!strings.Contains(r.stderr, "idle_time_before_shutdown") || !strings.Contains(r.stderr, "max_idle_time_before_shutdown") {
		t.Errorf("an instance asking to idle longer: exit %d %q", r.code, r.stderr)
	}
	e.ok("compute", "create", "instance", "box", "--vm-size", "STANDARD_D2_V2")
	c := decodeJSON[api.Compute](t, e.ok("compute", "show", "box", "-o", "json"))
	if c.Limits == nil || c.Limits.IdleTimeBeforeShutdown != "2s" || !c.Limits.IdleTimeFromPolicy {
		t.Errorf("compute show box limits = %+v, want 2s from the policy", c.Limits)
	}
	eventually(t, 30*time.Second, "the idle instance to be stopped by the policy", func() bool { return e.instanceState("box") == "Stopped" })

	logs := s.Logs()
	for _, want := range []string{"action=refused", "policy=max_run_duration_seconds action=stopped", "run=" + id,
		"policy=max_idle_time_before_shutdown action=stopped", "compute=box"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the server log has no policy line with %q", want)
		}
	}
	if strings.Count(logs, "msg=policy") < 4 {
		t.Errorf("the server log has %d policy lines, want 4 (two refusals, two stops):\n%s", strings.Count(logs, "msg=policy"), logs)
	}
	// The audit log has them too, and the policy change itself.
	var entries []api.AuditEntry
	eventually(t, 10*time.Second, "the policy's events in the audit log", func() bool {
		entries = decodeJSON[[]api.AuditEntry](t, e.ok("audit", "list", "--action", "policy.", "-o", "json"))
		return len(entries) >= 4
	})
	seen := map[string]bool{}
	for _, en := range entries {
		seen[en.Action+" "+en.Target+" "+en.Outcome] = true
	}
	for _, want := range []string{"policy.refused computes/local denied", "policy.stopped runs/" + id + " ok",
		"policy.refused computes/long-box denied", "policy.stopped computes/box ok"} {
		if !seen[want] {
			t.Errorf("the audit log lacks %q: %+v", want, entries)
		}
	}
	if got := decodeJSON[[]api.AuditEntry](t, e.ok("audit", "list", "--action", "workspace.set-policy", "-o", "json")); len(got) != 2 {
		t.Errorf("workspace.set-policy entries: %+v, want bob's refusal and the admin's change", got)
	}
}
