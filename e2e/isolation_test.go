package e2e

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// probeScript is what a hostile run tries: it prints its environment,
// reads every path it is given, walks up from its working directory and
// reads what it finds, and reads every process's environment. Every file
// it manages to read is printed as "READ <path> <hex of its start>".
const probeScript = `import os, sys
def read(p):
    try:
        with open(p, 'rb') as f:
            data = f.read(4096)
        print('READ', p, data.hex())
    except Exception as e:
        print('DENIED', p, type(e).__name__)
print('ENV', ' '.join(sorted(k for k in os.environ)))
print('RUNTOKEN', 'PADDOCK_RUN_TOKEN' in os.environ)
for p in sys.argv[1:]:
    read(p)
seen = 0
d = os.getcwd()
while True:
    parent = os.path.dirname(d)
    for root, dirs, files in os.walk(parent):
        if root.startswith(os.getcwd()):
            continue
        for f in files:
            seen += 1
            if seen < 3000:
                read(os.path.join(root, f))
    if parent == d:
        break
    d = parent
    if d == '/':
        break
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():
        for what in ('environ', 'mem'):
            try:
                with open('/proc/%s/%s' % (pid, what), 'rb') as f:
                    data = f.read(65536)
                if data:
                    print('READ', '/proc/%s/%s' % (pid, what), data.hex())
            except Exception:
                pass
print('PROBE DONE')
`

// secretsOf reads the credentials a run must never see: the admin token
// (CLI config and data dir), the secret key, every node token.
func secretsOf(t *testing.T, e *env, more ...string) map[string]string {
	t.Helper()
	secrets := map[string]string{}
	var cfg struct{ Token string }
	data, err := os.ReadFile(e.config)
	if err != nil || json.Unmarshal(data, &cfg) != nil || cfg.Token == "" {
		t.Fatalf("no admin token in %s: %v", e.config, err)
	}
	secrets["admin token"] = cfg.Token
	key, err := os.ReadFile(filepath.Join(e.dataDir, "secret.key"))
	if err != nil || len(key) < 16 {
		t.Fatalf("secret key: %v", err)
	}
	secrets["secret key"] = string(key[:16])
	tokens, _ := filepath.Glob(filepath.Join(e.dataDir, "*", "token"))
	nodeTokens, _ := filepath.Glob(filepath.Join(e.dataDir, "nodes", "*", "token"))
	for _, f := range append(append(tokens, nodeTokens...), more...) {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 8 {
			secrets[f] = strings.TrimSpace(string(b))
		}
	}
	return secrets
}

// checkProbe fails the test if the probe's output holds a secret or it
// read a path it must not, and checks that it really ran.
func checkProbe(t *testing.T, where, out string, secrets map[string]string, forbidden []string) {
	t.Helper()
	if !strings.Contains(out, "PROBE DONE") || !strings.Contains(out, "RUNTOKEN True") {
		t.Fatalf("%s: the probe did not run to its end:\n%s", where, out)
	}
	for what, s := range secrets {
		if strings.Contains(out, hex.EncodeToString([]byte(s))) || strings.Contains(out, s) {
			t.Errorf("%s: the run read the %s", where, what)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "READ" {
			for _, p := range forbidden {
				if f[1] == p || strings.HasPrefix(f[1], p+"/") {
					t.Errorf("%s: the run read %s", where, f[1])
				}
			}
		}
		if len(f) >= 2 && f[0] == "ENV" {
			for _, k := range f[1:] {
				if strings.Contains(k, "TOKEN") && k != "PADDOCK_RUN_TOKEN" {
					t.Errorf("%s: the run's environment has %s", where, k)
				}
			}
		}
	}
}

// prober starts a server and returns a function that runs the probe as
// the non-admin user bob on a target, with paths to try, and returns its
// output.
func prober(t *testing.T) (*env, func(compute string, paths ...string) string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the isolation tests run the server as root, as CI does (as a user, runs share it: see docs/security.md): `sudo bash scripts/test.sh`")
	}
	e := newEnv(t)
	e.up()
	bob := strings.TrimSpace(e.ok("user", "add", "bob"))
	src := filepath.Join(e.home, "probe")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "probe.py", probeScript)
	return e, func(compute string, paths ...string) string {
		t.Helper()
		r := e.run(append([]string{"--token", bob, "run", "submit", "--compute", compute, "--source", src, "--stream", "--",
			"python3", "probe.py"}, paths...)...)
		if r.code != 0 {
			t.Fatalf("probe run on %s: exit %d\n%s\n%s", compute, r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}
}

// A run on the local target, as a user who is not an admin, cannot read
// the server's or the agents' credentials, another user's running run's
// files (its directory, its /tmp), nor any process's environment; and
// daemons it leaves behind die with it.
func TestRunIsolationLocal(t *testing.T) {
	e, probe := prober(t)

	// The victim: an admin's run holding a secret in its directory and /tmp.
	victimSecret := fmt.Sprintf("victim-secret-%d", time.Now().UnixNano())
	victim := e.submit2("local", "--", "sh", "-c", "echo "+victimSecret+" > mine.txt; echo "+victimSecret+" > /tmp/mine.txt; sleep 60")
	victimDir := filepath.Join(e.dataDir, "local-agent", "work", "runs", victim+"-1-r0")
	eventually(t, 20*time.Second, "the victim run to write its file", func() bool {
		b, _ := os.ReadFile(filepath.Join(victimDir, "mine.txt"))
		return strings.Contains(string(b), victimSecret)
	})

	secrets := secretsOf(t, e)
	secrets["victim's secret"] = victimSecret
	paths := []string{e.config, filepath.Join(e.dataDir, "admin.token"), filepath.Join(e.dataDir, "secret.key"),
		filepath.Join(e.dataDir, "paddock.db"), filepath.Join(e.dataDir, "local-agent", "token"),
		filepath.Join(e.dataDir, "local-agent", "agent.log"), filepath.Join(victimDir, "mine.txt"), "/tmp/mine.txt",
		filepath.Join(e.home, ".paddock", "config"), "/proc/" + strconv.Itoa(e.agentPID()) + "/environ"}
	out := probe("local", paths...)
	checkProbe(t, "local", out, secrets, []string{e.dataDir, e.config, victimDir, "/tmp/mine.txt"})
	if !strings.Contains(out, "DENIED "+filepath.Join(e.dataDir, "admin.token")) {
		t.Errorf("the probe should have been refused the admin token:\n%s", out)
	}
	// The victim kept its files: the probe could not touch them either.
	if b, _ := os.ReadFile(filepath.Join(victimDir, "mine.txt")); !strings.Contains(string(b), victimSecret) {
		t.Errorf("the victim's file changed: %q", b)
	}

	// Runs of different users run as different OS users; a run of bob's
	// is bob's OS user, and its HOME is its own.
	bob := strings.TrimSpace(e.ok("user", "add", "bob2"))
	who := e.run("--token", bob, "run", "submit", "--compute", "local", "--stream", "--", "sh", "-c", `id -un; echo "home=$HOME"; touch "$HOME/cache" && echo home-writable`)
	if who.code != 0 || !strings.Contains(who.stdout, runUserPrefix+"bob2\n") || !strings.Contains(who.stdout, "home-writable") {
		t.Errorf("bob's run: exit %d %q %q", who.code, who.stdout, who.stderr)
	}
	e.ok("run", "cancel", victim)
}

// A run that double-forks a daemon and exits normally leaves no process
// and no cgroup behind, and its main process is reaped.
func TestRunLeavesNothingBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root: `sudo bash scripts/test.sh`")
	}
	e := newEnv(t)
	e.up()
	marker := fmt.Sprintf("paddock-daemon-%d", time.Now().UnixNano())
	id := e.submit("--", "sh", "-c", "(setsid sh -c 'trap \"\" TERM HUP; sleep 300' "+marker+" </dev/null >/dev/null 2>&1 &); echo started")
	if st := e.waitRun(id); st.Status != api.RunCompleted {
		t.Fatalf("status %s: %s", st.Status, st.Error)
	}
	eventually(t, 10*time.Second, "the daemon to be killed", func() bool { return len(pidsWith(marker)) == 0 })
	name := id + "-1-r0"
	eventually(t, 10*time.Second, "the run's cgroup to be removed", func() bool {
		for _, c := range []string{"pids", "cpu", "memory", "unified"} {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "paddock", name)); err == nil {
				return false
			}
		}
		return true
	})
	if z := zombieChildren(e.agentPID()); len(z) > 0 {
		t.Errorf("the agent has zombie children: %v", z)
	}
}

// zombieChildren lists the zombie processes whose parent is pid.
func zombieChildren(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// The same probe on a cluster node (local provider, as root) and on an
// attached remote machine whose agent is not root (user namespaces).
func TestRunIsolationClusterAndRemote(t *testing.T) {
	e, probe := prober(t)
	e.ok("compute", "create", "cluster", "iso-cluster", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1")
	nodeTokens := filepath.Join(e.dataDir, "nodes")
	out := probe("iso-cluster", e.config, filepath.Join(e.dataDir, "admin.token"), filepath.Join(e.dataDir, "secret.key"),
		filepath.Join(e.dataDir, "local-agent", "token"), "/proc/"+strconv.Itoa(e.agentPID())+"/environ")
	nodes, _ := filepath.Glob(filepath.Join(nodeTokens, "*", "token"))
	if len(nodes) != 1 {
		t.Fatalf("want one cluster node's token, found %v", nodes)
	}
	checkProbe(t, "cluster node", out+probe("iso-cluster", nodes[0]), secretsOf(t, e), []string{e.dataDir, e.config})

	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	agentDir := filepath.Join(homeOf(keyUser), ".paddock-agent")
	os.RemoveAll(agentDir)
	e.ok("compute", "attach", "remote", "iso-box", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile)
	t.Cleanup(func() { e.run("compute", "detach", "iso-box") })
	// The remote's agent runs; probe it with its own token's path.
	first := probe("iso-box")
	remoteTokens, _ := filepath.Glob(filepath.Join(agentDir, "*", "token"))
	if len(remoteTokens) == 0 {
		t.Fatalf("no agent token under %s", agentDir)
	}
	pids, _ := filepath.Glob(filepath.Join(agentDir, "*", "agent.pid"))
	paths := append([]string{}, remoteTokens...)
	for _, f := range pids {
		if b, err := os.ReadFile(f); err == nil {
			paths = append(paths, "/proc/"+strings.TrimSpace(string(b))+"/environ", "/proc/"+strings.TrimSpace(string(b))+"/mem")
		}
	}
	checkProbe(t, "remote", first+probe("iso-box", paths...), secretsOf(t, e, remoteTokens...), []string{agentDir})
}
