package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func homeOf(user string) string { return filepath.Join("/home", user) }

// Attach with a password and with a key; failures leave nothing behind;
// a Python run completes with logs and outputs; cancel kills it on the
// remote; detach removes everything installed. Secrets never show.
func TestRemoteTarget(t *testing.T) {
	e := newEnv(t)
	srv := e.up()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	p := strconv.Itoa(port)
	pwFile := writeFile(t, e.home, "pw", pwPass+"\n")
	badFile := writeFile(t, e.home, "bad", "wrong-password\n")
	os.RemoveAll(filepath.Join(homeOf(pwUser), ".paddock-agent"))
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--address", "127.0.0.1", "--ssh-port", p, "--username", pwUser, "--password-file", badFile}, 1, "authentication as \"" + pwUser + "\" at 127.0.0.1:" + p + " failed"},
		{[]string{"--address", "127.0.0.1", "--ssh-port", strconv.Itoa(freeLoopbackPort(t)), "--username", pwUser, "--password-file", pwFile}, 1, "connection refused"},
		{[]string{"--address", "127.0.0.1", "--ssh-port", p, "--username", pwUser}, 2, "give exactly one credential"},
		{[]string{"--address", "127.0.0.1", "--ssh-port", p, "--username", pwUser, "--password-file", pwFile, "--private-key-file", sd.keyFile}, 2, "give exactly one credential"},
		{[]string{"--ssh-port", p, "--username", pwUser, "--password-file", pwFile}, 2, "address is required"},
	} {
		r := e.run(append([]string{"compute", "attach", "remote", "box-one"}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("attach %v: exit %d %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if n := len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))); n != 1 {
		t.Fatalf("failed attaches left %d targets", n)
	}

	pw := decodeJSON[api.Compute](t, e.ok("compute", "attach", "remote", "pw-box", "--address", "127.0.0.1", "--ssh-port", p,
		"--username", pwUser, "--password-file", pwFile, "-o", "json"))
	var st struct {
		Reachable bool
		Cores     int
		OS        string
	}
	jsonInto(t, pw.Status, &st)
	if pw.ProvisioningState != api.StateSucceeded || !st.Reachable || st.Cores < 1 || !strings.Contains(st.OS, "Linux") {
		t.Fatalf("attached: %+v %+v", pw, st)
	}
	if props := props(t, pw); !strings.HasPrefix(fmt.Sprint(props["host_key"]), "SHA256:") {
		t.Errorf("host key not recorded: %v", props)
	}
	e.ok("compute", "attach", "remote", "key-box", "--address", "127.0.0.1", "--ssh-port", p,
		"--username", keyUser, "--private-key-file", sd.keyFile)

	src := filepath.Join(e.home, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "train.py", "import getpass, os\nprint('training as', getpass.getuser())\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/model.txt', 'w').write('remote weights')\n")
	start := time.Now()
	r := e.run("run", "submit", "--compute", "pw-box", "--source", src, "--stream", "--", "python3", "train.py")
	first := time.Since(start)
	if r.code != 0 || !strings.Contains(r.stdout, "training as "+pwUser) {
		t.Fatalf("run on the remote: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	t.Logf("first run on the remote (agent install included): %s", first)
	runs := decodeJSON[[]api.Run](t, e.ok("run", "list", "-o", "json"))
	dl := filepath.Join(e.home, "dl")
	e.ok("run", "download", runs[0].ID, "--to", dl)
	if data, _ := os.ReadFile(filepath.Join(dl, "model.txt")); string(data) != "remote weights" {
		t.Errorf("outputs from the remote: %q", data)
	}
	if r := e.run("run", "submit", "--compute", "key-box", "--stream", "--", "sh", "-c", "id -un"); r.code != 0 || strings.TrimSpace(r.stdout) != keyUser {
		t.Errorf("run as the key user: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The agents run detached: no SSH session stays open for them.
	for _, u := range []string{pwUser, keyUser} {
		eventually(t, 10*time.Second, "no SSH session left open for "+u, func() bool { return len(pidsWith("sshd: "+u+"@")) == 0 })
	}

	marker := fmt.Sprintf("paddock-remote-%d", time.Now().UnixNano())
	id := e.submit2("pw-box", "--", "python3", "-c", "import time; time.sleep(60)", marker)
	eventually(t, 20*time.Second, "the remote run to start", func() bool { return len(pidsWith(marker)) > 0 })
	e.ok("run", "cancel", id)
	if r := e.show(id); r.Status != api.RunCanceled || len(pidsWith(marker)) > 0 {
		t.Fatalf("cancel on the remote: %s, left %v", r.Status, pidsWith(marker))
	}

	// Secrets never show: not in output, not in logs, not in the database.
	for _, out := range []string{e.ok("compute", "show", "pw-box", "-o", "json"), e.ok("compute", "list", "-o", "yaml"), srv.Logs()} {
		if strings.Contains(out, pwPass) {
			t.Fatal("the password leaked")
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "paddock.db*"))
	for _, f := range files {
		if data, _ := os.ReadFile(f); strings.Contains(string(data), pwPass) {
			t.Fatalf("the password is stored in plain text in %s", f)
		}
	}

	for _, u := range []string{pwUser, keyUser} {
		if _, err := os.Stat(filepath.Join(homeOf(u), ".paddock-agent", "paddock")); err != nil {
			t.Errorf("agent not installed for %s: %v", u, err)
		}
	}
	e.ok("compute", "detach", "pw-box")
	e.ok("compute", "detach", "key-box")
	for _, u := range []string{pwUser, keyUser} {
		if _, err := os.Stat(filepath.Join(homeOf(u), ".paddock-agent")); !os.IsNotExist(err) {
			t.Errorf("detach left %s's ~/.paddock-agent behind (%v)", u, err)
		}
	}
	if n := len(decodeJSON[[]api.Compute](t, e.ok("compute", "list", "-o", "json"))); n != 1 {
		t.Errorf("after detach: %d targets", n)
	}
}

func jsonInto(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := jsonUnmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// A cluster with provider ssh takes its nodes from an SSH pool (two real
// sshd hosts whose users log in with bash, as real users do): with three
// runs queued it scales to both hosts, never puts two nodes on one host,
// keeps its status current and says why the third run waits; every run
// completes, and it gives the hosts back, removing what it installed.
func TestSSHPoolCluster(t *testing.T) {
	e := newEnv(t)
	e.up()
	portA, portB := freeLoopbackPort(t), freeLoopbackPort(t)
	dirA := t.TempDir()
	startSSHD(t, dirA, portA, false)
	b := startSSHD(t, t.TempDir(), portB, false)
	pwFile := writeFile(t, e.home, "pw", pwPass+"\n")
	for _, u := range []string{pwUser, keyUser} {
		os.RemoveAll(filepath.Join(homeOf(u), ".paddock-agent"))
	}
	e.ok("compute", "attach", "remote", "host-a", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(portA),
		"--username", pwUser, "--password-file", pwFile, "--pool", "lab")
	e.ok("compute", "attach", "remote", "host-b", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(portB),
		"--username", keyUser, "--private-key-file", b.keyFile, "--pool", "lab")
	if r := e.run("run", "submit", "--compute", "host-a", "--", "true"); r.code != 2 || !strings.Contains(r.stderr, "host of SSH pool lab") {
		t.Errorf("a run on a pool host: exit %d %q", r.code, r.stderr)
	}
	e.ok("compute", "create", "cluster", "lab-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "4",
		"--provider", "ssh", "--from", "lab", "--idle-seconds-before-scaledown", "1")
	var ids []string
	for range 3 {
		ids = append(ids, e.submit2("lab-cluster", "--cores", "2", "--", "sh", "-c", "sleep 2; id -un"))
	}
	maxNodes, maxCount := 0, 0.0
	reasons := map[string]bool{}
	eventually(t, 90*time.Second, "the three runs to end", func() bool {
		maxNodes = max(maxNodes, len(e.nodes("lab-cluster")))
		if n, ok := e.clusterStatus("lab-cluster")["current_node_count"].(float64); ok {
			maxCount = max(maxCount, n)
		}
		done := 0
		for _, r := range decodeJSON[[]api.Run](t, e.ok("run", "list", "--compute", "lab-cluster", "-o", "json")) {
			if r.Status == api.RunQueued && r.StatusReason != "" {
				reasons[r.StatusReason] = true
			}
			if r.Status.Terminal() {
				done++
			}
		}
		return done == len(ids)
	})
	users := map[string]bool{}
	for _, id := range ids {
		if r := e.show(id); r.Status != api.RunCompleted {
			t.Fatalf("run %s: %+v", id, r)
		}
		users[strings.TrimSpace(e.ok("run", "logs", id))] = true
	}
	if maxNodes != 2 || !users[pwUser] || !users[keyUser] {
		t.Errorf("peak %d nodes (want 2: one per host), runs ran as %v", maxNodes, users)
	}
	if maxCount != 2 {
		t.Errorf("status.current_node_count peaked at %v, want 2", maxCount)
	}
	if !reasons["cluster at max_nodes (2); waiting for a node to free up"] {
		t.Errorf("the third run never said it waits for a pool host; reasons seen: %v", reasons)
	}
	eventually(t, 30*time.Second, "the cluster to give its hosts back", func() bool {
		return len(e.nodes("lab-cluster")) == 0 && e.clusterStatus("lab-cluster")["current_node_count"] == 0.0
	})
	for _, u := range []string{pwUser, keyUser} {
		eventually(t, 10*time.Second, "~/.paddock-agent to be removed for "+u, func() bool {
			_, err := os.Stat(filepath.Join(homeOf(u), ".paddock-agent"))
			return os.IsNotExist(err)
		})
	}
	e.ok("compute", "delete", "lab-cluster")
	e.ok("compute", "detach", "host-a")
	e.ok("compute", "detach", "host-b")
}

// After the machine's host key changes, Paddock refuses to connect and
// says why in the target's status; detach still lets the target go.
func TestRemoteHostKeyChanged(t *testing.T) {
	e := newEnv(t)
	e.up("--node-lost-timeout", "2s")
	port := freeLoopbackPort(t)
	dir := t.TempDir()
	sd := startSSHD(t, dir, port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	e.ok("compute", "attach", "remote", "rebuilt", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile)
	eventually(t, 20*time.Second, "the remote's node", func() bool {
		n := e.nodes("rebuilt")
		return len(n) == 1 && n[0].State == "idle"
	})
	// The machine is "reinstalled": new host key, and its agent is gone.
	sd.stop()
	startSSHD(t, dir, port, true)
	pidFiles, _ := filepath.Glob(filepath.Join(homeOf(keyUser), ".paddock-agent", "*", "agent.pid"))
	for _, f := range pidFiles {
		if data, err := os.ReadFile(f); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(data))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	eventually(t, 30*time.Second, "the changed host key in the status", func() bool {
		c := decodeJSON[api.Compute](t, e.ok("compute", "show", "rebuilt", "-o", "json"))
		var st struct {
			Reachable bool
			Error     string
		}
		jsonInto(t, c.Status, &st)
		return !st.Reachable && strings.Contains(st.Error, "host key of 127.0.0.1") && strings.Contains(st.Error, "changed")
	})
	if r := e.run("compute", "detach", "rebuilt"); r.code != 0 || !strings.Contains(r.stderr, "host key of 127.0.0.1") ||
		!strings.Contains(r.stderr, "detached without cleaning up: stop its `paddock agent` and remove ~/.paddock-agent there by hand") {
		t.Errorf("detaching a machine that cannot be reached: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("compute", "show", "rebuilt"); r.code != 3 {
		t.Errorf("after detach: exit %d", r.code)
	}
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
}

// A server killed while a run runs on an attached machine, and started
// again on another port: it adopts the machine's node (its agent still
// runs there), tells the agent where it listens now, and the run completes
// in its first attempt on the same node.
func TestRemoteRunSurvivesServerRestart(t *testing.T) {
	e := newEnv(t)
	srv := e.up()
	port := freeLoopbackPort(t)
	startSSHD(t, t.TempDir(), port, false)
	pwFile := writeFile(t, e.home, "pw", pwPass+"\n")
	os.RemoveAll(filepath.Join(homeOf(pwUser), ".paddock-agent"))
	e.ok("compute", "attach", "remote", "box", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", pwUser, "--password-file", pwFile)
	id := e.submit2("box", "--", "sh", "-c", "echo before; sleep 4; echo after")
	eventually(t, 60*time.Second, "the run to run", func() bool { return e.show(id).Status == api.RunRunning })
	before := e.nodes("box")
	e.restartMidRun(srv, id)
	if after := e.nodes("box"); len(before) != 1 || len(after) != 1 || after[0].ID != before[0].ID {
		t.Errorf("nodes before %+v, after %+v: want the one node adopted", before, after)
	}
	e.ok("compute", "detach", "box")
	eventually(t, 10*time.Second, "~/.paddock-agent to be removed", func() bool {
		_, err := os.Stat(filepath.Join(homeOf(pwUser), ".paddock-agent"))
		return os.IsNotExist(err)
	})
}
