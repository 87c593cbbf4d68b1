package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func (e *env) instanceState(name string) string {
	e.t.Helper()
	c := decodeJSON[api.Compute](e.t.(*testing.T), e.ok("compute", "show", name, "-o", "json"))
	var st struct{ State string }
	json.Unmarshal(c.Status, &st)
	return st.State
}

// maxOverlap is the largest number of runs whose [started, ended] spans
// overlap at one moment.
func maxOverlap(runs []api.Run) int {
	type ev struct {
		t     time.Time
		delta int
	}
	var evs []ev
	for _, r := range runs {
		evs = append(evs, ev{*r.StartedAt, 1}, ev{*r.EndedAt, -1})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t.Equal(evs[j].t) {
			return evs[i].delta < evs[j].delta
		}
		return evs[i].t.Before(evs[j].t)
	})
	cur, best := 0, 0
	for _, e := range evs {
		cur += e.delta
		best = max(best, cur)
	}
	return best
}

func TestInstanceQueueStopStartAndPrivacy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up()
	created := decodeJSON[api.Compute](t, e.ok("compute", "create", "instance", "my-box", "--vm-size", "STANDARD_DS3_V2",
		"--max-concurrent-runs", "2", "-o", "json"))
	if st := e.instanceState("my-box"); st != "Running" || created.CreatedBy != "admin" {
		t.Fatalf("after create: state %s, created_by %s", st, created.CreatedBy)
	}
	var ids []string
	for range 6 {
		ids = append(ids, e.submit2("my-box", "--", "sleep", "0.4"))
	}
	var runs []api.Run
	for _, id := range ids {
		r := e.waitRun(id)
		if r.Status != api.RunCompleted {
			t.Fatalf("run %s: %+v", id, r)
		}
		runs = append(runs, r)
	}
	if n := maxOverlap(runs); n != 2 {
		t.Errorf("at most %d runs ran at once, want exactly max_concurrent_runs 2", n)
	}

	// The home directory survives a stop and a start.
	e.ok("run", "submit", "--compute", "my-box", "--stream", "--", "sh", "-c", "echo kept > $HOME/notes.txt")
	e.ok("compute", "stop", "my-box")
	if st := e.instanceState("my-box"); st != "Stopped" {
		t.Fatalf("after stop: %s", st)
	}
	if n := e.nodes("my-box"); len(n) != 0 {
		t.Fatalf("a stopped instance has %d nodes", len(n))
	}
	queued := e.submit2("my-box", "--", "sh", "-c", "cat $HOME/notes.txt")
	eventually(t, 10*time.Second, "a run on a stopped instance to say it waits for the instance", func() bool {
		r := e.show(queued)
		return r.Status == api.RunQueued && strings.Contains(r.StatusReason, "is stopped")
	})
	e.ok("compute", "start", "my-box")
	if r := e.waitRun(queued); r.Status != api.RunCompleted || strings.TrimSpace(e.ok("run", "logs", queued)) != "kept" {
		t.Fatalf("after start: %+v", r)
	}

	// Another user's token is refused: exit 1, HTTP 403.
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	for _, args := range [][]string{
		{"run", "submit", "--compute", "my-box", "--", "true"},
		{"compute", "stop", "my-box"},
	} {
		r := e.run(append([]string{"--token", bob}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "belongs to admin") {
			t.Errorf("bob: paddock %v: exit %d %q", args, r.code, r.stderr)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/workspaces/default/computes/my-box:stop", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob's stop over HTTP: %d, want 403", resp.StatusCode)
	}
	// Bob may use an instance assigned to him, and cannot add users.
	e.ok("compute", "create", "instance", "bobs-box", "--vm-size", "STANDARD_D2_V2", "--assigned-user", "bob")
	if r := e.run("--token", bob, "run", "submit", "--compute", "bobs-box", "--stream", "--", "true"); r.code != 0 {
		t.Errorf("bob on his own instance: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("--token", bob, "user", "add", "mallory"); r.code != 1 || !strings.Contains(r.stderr, "does not allow user.write") {
		t.Errorf("bob adding a user: exit %d %q", r.code, r.stderr)
	}
}

func TestInstanceSSHAndIdleShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	key, st := e.sshInstance("dev-box", "2s")
	f := st.fields
	// The user's known_hosts learns the host key on the first login and is
	// checked strictly after that.
	knownHosts := filepath.Join(e.home, "known_hosts")
	strict := "accept-new"
	ssh := func(keyFile, command string) ([]byte, error) {
		return exec.Command("ssh", "-o", "StrictHostKeyChecking="+strict, "-o", "UserKnownHostsFile="+knownHosts, "-o", "BatchMode=yes",
			"-o", "ConnectTimeout=10", "-p", f[2], "-i", keyFile, f[len(f)-1], command).CombinedOutput()
	}
	out, err := ssh(key, "echo logged in to $HOME; exit 7")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 || !strings.Contains(string(out), "logged in to "+filepath.Join(e.dataDir, "homes")) {
		t.Fatalf("ssh with the admin key: %v\n%s", err, out)
	}
	other := e.sshKey("other")
	if out, err := ssh(other, "true"); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("ssh with another key: %v %s", err, out)
	}
	// Sessions run as the owner's OS user (not the server's), and see no
	// credential of the server's.
	if os.Geteuid() == 0 {
		out, err := ssh(key, "id -un; cat "+filepath.Join(e.dataDir, "admin.token")+" || echo refused")
		if err != nil || !strings.Contains("\n"+string(out), "\n"+runUserPrefix+"admin\n") || !strings.Contains(string(out), "refused") {
			t.Errorf("a session's user and view: %v\n%s", err, out)
		}
	}
	// Only the owner's name logs in, even with the owner's key.
	host := f[len(f)-1][strings.Index(f[len(f)-1], "@")+1:]
	if out, err := exec.Command("ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-p", f[2], "-i", key, "root@"+host, "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("ssh as root with the owner's key: %v %s", err, out)
	}
	strict = "yes"
	// Idle for 2 s: stopped.
	eventually(t, 30*time.Second, "idle shutdown", func() bool { return e.instanceState("dev-box") == "Stopped" })
	if n := e.nodes("dev-box"); len(n) != 0 {
		t.Errorf("%d nodes after idle shutdown", len(n))
	}
	// Started again, it answers at the same address and port with the same
	// host key: the known_hosts entry still matches.
	e.ok("compute", "start", "dev-box")
	if again := e.sshEndpoint("dev-box"); again.SSH != st.SSH {
		t.Errorf("the SSH endpoint moved across stop and start: %q, then %q", st.SSH, again.SSH)
	}
	if out, err := ssh(key, "true"); err != nil {
		t.Errorf("ssh after the restart, host key checked: %v\n%s", err, out)
	}
}

// A deleted instance takes its home and host key with it: a new instance
// of the same name, another user's, starts empty with a new host key.
func TestInstanceDeleteRemovesHome(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	key := e.sshKey("id_ed25519")
	e.ok("compute", "create", "instance", "box", "--vm-size", "STANDARD_D2_V2", "--ssh-public-access", "--admin-user-ssh-key", key+".pub")
	e.ok("run", "submit", "--compute", "box", "--stream", "--", "sh", "-c", "echo admins-notes > $HOME/notes.txt")
	home := filepath.Join(e.dataDir, "homes", "default", "box")
	hostKey, err := os.ReadFile(home + ".ssh_host_key")
	if err != nil {
		t.Fatalf("the instance's host key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "notes.txt")); err != nil {
		t.Fatalf("the run did not write to the home: %v", err)
	}
	e.ok("compute", "delete", "box")
	eventually(t, 20*time.Second, "the instance to be gone", func() bool { return e.run("compute", "show", "box").code == 3 })
	for _, p := range []string{home, home + ".ssh_host_key"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survives the delete (%v)", p, err)
		}
	}
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	if r := e.run("--token", bob, "compute", "create", "instance", "box", "--vm-size", "STANDARD_D2_V2", "--ssh-public-access",
		"--admin-user-ssh-key", key+".pub"); r.code != 0 {
		t.Fatalf("bob's instance: exit %d %s", r.code, r.stderr)
	}
	r := e.run("--token", bob, "run", "submit", "--compute", "box", "--stream", "--", "sh", "-c", "ls -A $HOME; cat $HOME/notes.txt || echo no-notes")
	if r.code != 0 || strings.Contains(r.stdout, "admins-notes") || !strings.Contains(r.stdout, "no-notes") {
		t.Errorf("bob's new instance: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if again, err := os.ReadFile(home + ".ssh_host_key"); err != nil || string(again) == string(hostKey) {
		t.Errorf("the new instance's host key: same as the deleted one's %v (%v)", string(again) == string(hostKey), err)
	}
}

// sshInstance makes an admin's instance that serves SSH for a new key and
// stops after idle; it returns the private key's path and the endpoint.
func (e *env) sshInstance(name, idle string) (string, sshStatus) {
	e.t.Helper()
	key := e.sshKey("id_ed25519")
	e.ok("compute", "create", "instance", name, "--vm-size", "STANDARD_D2_V2", "--ssh-public-access",
		"--admin-user-ssh-key", key+".pub", "--idle-time-before-shutdown", idle)
	return key, e.sshEndpoint(name)
}

// sshStatus is an instance's status.ssh, "ssh -p PORT -i <your private
// key> USER@HOST", and its fields.
type sshStatus struct {
	SSH    string
	fields []string
}

// sshEndpoint reads an instance's SSH command from its status and checks
// its form; fields[2] is the port, the last field USER@HOST.
func (e *env) sshEndpoint(name string) sshStatus {
	e.t.Helper()
	c := decodeJSON[api.Compute](e.t.(*testing.T), e.ok("compute", "show", name, "-o", "json"))
	var st sshStatus
	json.Unmarshal(c.Status, &st)
	st.fields = strings.Fields(st.SSH)
	if f := st.fields; len(f) < 4 || f[0] != "ssh" || f[1] != "-p" || !strings.Contains(f[len(f)-1], "admin@") {
		e.t.Fatalf("ssh command of %s: %q", name, st.SSH)
	}
	return st
}

// sshKey makes an ed25519 key pair in the env's home and returns the
// private key's path.
func (e *env) sshKey(name string) string {
	e.t.Helper()
	key := filepath.Join(e.home, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		e.t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	return key
}

// compute status counts an instance's queued and running runs; compute
// restart replaces its node and runs again what it ran; run submit
// --start starts a stopped instance first.
func TestInstanceCountsRestartAndSubmitStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	e.ok("compute", "create", "instance", "box", "--vm-size", "STANDARD_D2_V2", "--max-concurrent-runs", "1")
	marker := fmt.Sprintf("paddock-restart-%d", time.Now().UnixNano())
	first := e.submit2("box", "--", "python3", "-c", "import time; time.sleep(120)", marker)
	second := e.submit2("box", "--", "true")
	third := e.submit2("box", "--", "true")
	counts := func() (queued, running float64) {
		st := e.clusterStatus("box")
		q, _ := st["queued_runs"].(float64)
		r, _ := st["running_runs"].(float64)
		return q, r
	}
	eventually(t, 20*time.Second, "compute status to count 1 running and 2 queued runs", func() bool {
		q, r := counts()
		return q == 2 && r == 1 && e.show(first).Status == api.RunRunning
	})
	if out := e.ok("compute", "status", "box"); !regexp.MustCompile(`(?m)^queued_runs:\s+2$`).MatchString(out) || !regexp.MustCompile(`(?m)^running_runs:\s+1$`).MatchString(out) {
		t.Errorf("compute status as a table:\n%s", out)
	}
	before := e.nodes("box")
	if len(before) != 1 {
		t.Fatalf("a running instance has nodes %+v", before)
	}

	if out := e.ok("compute", "restart", "box"); out != "compute instance box: Running\n" {
		t.Errorf("compute restart printed %q", out)
	}
	after := e.nodes("box")
	if len(after) != 1 || after[0].ID == before[0].ID {
		t.Fatalf("nodes after the restart: %+v, before: %+v; want one new node", after, before)
	}
	// The run it was running is stopped and runs again as a new attempt.
	eventually(t, 20*time.Second, "the interrupted run to run again", func() bool {
		r := e.show(first)
		return r.Status == api.RunRunning && r.Attempt == 2
	})
	if r := e.show(first); r.Attempts[0].Reason != "InstanceStopped" || r.Attempts[0].Node != before[0].ID {
		t.Errorf("the first attempt: %+v, want it ended InstanceStopped on %s", r.Attempts[0], before[0].ID)
	}
	e.ok("run", "cancel", first)
	for _, id := range []string{second, third} {
		if r := e.waitRun(id); r.Status != api.RunCompleted {
			t.Fatalf("a queued run after the restart: %+v", r)
		}
	}
	eventually(t, 20*time.Second, "compute status to count nothing", func() bool {
		q, r := counts()
		return q == 0 && r == 0
	})

	e.ok("compute", "stop", "box")
	id := e.submit2("box", "--start", "--", "sh", "-c", "echo started for me")
	if st := e.instanceState("box"); st != "Starting" && st != "Running" {
		t.Fatalf("right after run submit --start the instance is %s, want Starting or Running", st)
	}
	if r := e.waitRun(id); r.Status != api.RunCompleted || strings.TrimSpace(e.ok("run", "logs", id)) != "started for me" {
		t.Fatalf("the run submitted with --start: %+v", r)
	}
	// Without --start, a run waits for someone to start the instance.
	e.ok("compute", "stop", "box")
	id = e.submit2("box", "--", "true")
	eventually(t, 20*time.Second, "the run to say it waits for a stopped instance", func() bool {
		r := e.show(id)
		return r.Status == api.RunQueued && strings.Contains(r.StatusReason, "is stopped")
	})
	if st := e.instanceState("box"); st != "Stopped" {
		t.Errorf("a submit without --start started the instance: %s", st)
	}
}

// An open SSH session keeps an idle instance from being shut down: a
// session longer than idle_time_before_shutdown survives, and the instance
// stops only after the session ended and the idle time passed.
func TestInstanceSSHSessionDelaysIdleShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	// The agent reports sessions at least every 5 s: an idle time of 10 s
	// leaves it time to report the session before the instance would stop.
	key, st := e.sshInstance("dev-box", "10s")
	f := st.fields
	start := time.Now()
	out, err := exec.Command("ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "-p", f[2], "-i", key, f[len(f)-1], "sleep 14; echo still here").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "still here") {
		t.Fatalf("a 14 s session on an instance idle after 10 s: %v\n%s", err, out)
	}
	if st := e.instanceState("dev-box"); st != "Running" {
		t.Fatalf("right after a %s session the instance is %s, want Running", time.Since(start).Round(time.Second), st)
	}
	eventually(t, 40*time.Second, "idle shutdown once the session ended", func() bool { return e.instanceState("dev-box") == "Stopped" })
}
