package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sshd is a real OpenSSH server on a random loopback port with its own
// host key and configuration, for the remote-target tests.
type sshd struct {
	port    int
	dir     string
	keyFile string // private key of the key user
	cmd     *exec.Cmd
}

// Test users on this machine, one per test process so runs side by side
// never share a home: one logs in with a password, one with a key.
var (
	pwUser  = fmt.Sprintf("pdk-e2e-pw-%d", os.Getpid())
	keyUser = fmt.Sprintf("pdk-e2e-key-%d", os.Getpid())
)

const (
	pwPass   = "e2e-Secret-pass-9"
	sshdPath = "/usr/sbin/sshd"
)

var (
	usersOnce    sync.Once
	usersCreated []string
)

// removeTestUsers deletes the users this process created, homes included,
// and those its agents made for runs.
func removeTestUsers() {
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(passwd), "\n") {
		if name, _, _ := strings.Cut(line, ":"); strings.HasPrefix(name, runUserPrefix) {
			usersCreated = append(usersCreated, name)
		}
	}
	for _, u := range usersCreated {
		exec.Command("pkill", "-KILL", "-u", u).Run()
		exec.Command("userdel", "-r", "-f", u).Run()
	}
}

func ensureTestUsers(t testing.TB) {
	usersOnce.Do(func() {
		for _, u := range []string{pwUser, keyUser} {
			if exec.Command("id", u).Run() != nil {
				// bash, the usual login shell: sshd runs commands with it.
				if out, err := exec.Command("useradd", "-m", "-s", "/bin/bash", u).CombinedOutput(); err != nil {
					t.Fatalf("useradd %s: %v %s", u, err, out)
				}
				usersCreated = append(usersCreated, u)
			}
		}
		chpasswd := exec.Command("chpasswd")
		chpasswd.Stdin = strings.NewReader(pwUser + ":" + pwPass + "\n")
		if out, err := chpasswd.CombinedOutput(); err != nil {
			t.Fatalf("chpasswd: %v %s", err, out)
		}
	})
}

func freeLoopbackPort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSSHD starts sshd; a second call with the same dir and port reuses
// the user keys but makes a new host key when newHostKey is set.
func startSSHD(t testing.TB, dir string, port int, newHostKey bool) *sshd {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; .ci/run installs openssh-server", sshdPath)
		}
		t.Skip("openssh-server is not installed: as root, `bash scripts/deps.sh ssh` (or scripts/test.sh) installs it")
	}
	if os.Geteuid() != 0 {
		t.Skip("the remote-target tests create users and run sshd, which needs root: `sudo bash scripts/test.sh`")
	}
	ensureTestUsers(t)
	os.MkdirAll("/run/sshd", 0o755)
	s := &sshd{port: port, dir: dir, keyFile: filepath.Join(dir, "client_key")}
	hostKey := filepath.Join(dir, "host_key")
	if newHostKey {
		os.Remove(hostKey)
		os.Remove(hostKey + ".pub")
	}
	for _, k := range []string{hostKey, s.keyFile} {
		if _, err := os.Stat(k); err != nil {
			if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
		}
	}
	// sshd reads a user's authorized keys as that user: they must not sit
	// under a test's private (0700) temporary directory.
	authDir, err := os.MkdirTemp("", "paddock-e2e-authorized-keys")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(authDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(authDir) })
	pub, _ := os.ReadFile(s.keyFile + ".pub")
	os.WriteFile(filepath.Join(authDir, keyUser), pub, 0o644)
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile none
AuthorizedKeysFile %s/%%u
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
`, port, hostKey, authDir)
	confFile := filepath.Join(dir, "sshd_config")
	os.WriteFile(confFile, []byte(conf), 0o600)
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", confFile)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	eventually(t, 10*time.Second, "sshd to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

func (s *sshd) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}
