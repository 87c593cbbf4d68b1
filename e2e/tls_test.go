package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/clientconfig"
)

// postMetric is a run that posts a metric with its run token to
// PADDOCK_API_URL, trusting the CA in PADDOCK_CA_FILE and nothing else,
// as a training script without the SDK would.
const postMetric = `import json, os, ssl, urllib.request
ca = os.environ.get("PADDOCK_CA_FILE")
ctx = ssl.create_default_context(cafile=ca)
url = "%s/api/v1/workspaces/%s/runs/%s/metrics" % (os.environ["PADDOCK_API_URL"], os.environ["PADDOCK_WORKSPACE"], os.environ["PADDOCK_RUN_ID"])
req = urllib.request.Request(url, data=json.dumps({"name": "loss", "value": 0.25, "step": 1}).encode(),
    headers={"Authorization": "Bearer " + os.environ["PADDOCK_RUN_TOKEN"], "Content-Type": "application/json"})
print("posted", urllib.request.urlopen(req, context=ctx).status, "to", os.environ["PADDOCK_API_URL"].split(":")[0], "ca", bool(ca))
`

// submittedID finds the run id in what run submit --stream prints.
var submittedID = regexp.MustCompile(`run (run-\S+) submitted`)

// loadConfig reads a CLI config.
func loadConfig(t *testing.T, path string) clientconfig.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c clientconfig.Config
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// withConfig is a second machine's CLI for the same server: its own
// config, holding the server and the token but no CA.
func (e *env) withConfig(t *testing.T, c clientconfig.Config) *env {
	t.Helper()
	other := &env{t: t, home: e.home, config: filepath.Join(t.TempDir(), "config"), dataDir: e.dataDir}
	data, _ := json.Marshal(c)
	if err := os.WriteFile(other.config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return other
}

// runPostsMetric submits postMetric to a target, streaming it, and checks
// that it reached the server over HTTPS with the CA file it was given.
func (e *env) runPostsMetric(t *testing.T, compute string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "post.py", postMetric)
	r := e.run("run", "submit", "--compute", compute, "--source", src, "--stream", "--", "python3", "post.py")
	if r.code != 0 || !strings.Contains(r.stdout, "posted 201 to https ca True") {
		t.Fatalf("a run on %s posting a metric over HTTPS: exit %d\nstdout: %s\nstderr: %s", compute, r.code, r.stdout, r.stderr)
	}
	m := submittedID.FindStringSubmatch(r.stderr + r.stdout)
	if m == nil {
		t.Fatalf("no run id in %q", r.stderr)
	}
	if got := e.show(m[1]).Metrics["loss"]; got.Value != 0.25 || got.Step != 1 {
		t.Errorf("the run's metric on %s: %+v", compute, got)
	}
}

// paddock up --tls: the server makes a CA and a certificate in the data
// dir (0600), serves HTTPS, and writes the CA to the CLI config; the CLI,
// the local agent, local cluster nodes and runs all pin it. A client
// without the CA, and plain HTTP, are refused with errors that say so. A
// restart keeps the CA and the certificate, and the agents follow.
func TestTLSGeneratedCA(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.up("--tls")
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("server URL %s, want https://127.0.0.1:…", s.url)
	}
	cfg := loadConfig(t, e.config)
	caFile := filepath.Join(e.dataDir, "tls", "ca.pem")
	caPEM, err := os.ReadFile(caFile)
	if err != nil || cfg.Server != s.url || cfg.CA != string(caPEM) || !strings.HasPrefix(cfg.CA, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("CLI config %+v; CA file: %v", cfg, err)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"} {
		if fi, err := os.Stat(filepath.Join(e.dataDir, "tls", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("tls/%s: %v %v; want 0600", f, fi.Mode(), err)
		}
	}

	if out := e.ok("compute", "list"); !strings.Contains(out, "local") {
		t.Errorf("compute list over HTTPS: %q", out)
	}
	// The local agent takes runs over HTTPS; the run posts a metric.
	e.runPostsMetric(t, "local")
	// A local cluster's node agent too.
	e.ok("compute", "create", "cluster", "tls-nodes", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--idle-seconds-before-scaledown", "600")
	e.runPostsMetric(t, "tls-nodes")

	// A client without the CA is refused, and told how to give it.
	noCA := e.withConfig(t, clientconfig.Config{Server: cfg.Server, Token: cfg.Token, Workspace: cfg.Workspace})
	if r := noCA.run("compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "x509: certificate signed by unknown authority") || !strings.Contains(r.stderr, "--ca-file") {
		t.Errorf("a CLI without the CA: exit %d %q", r.code, r.stderr)
	}
	if out := noCA.ok("--ca-file", caFile, "compute", "list"); !strings.Contains(out, "local") {
		t.Errorf("with --ca-file: %q", out)
	}
	noCA.extra = []string{"PADDOCK_CA_FILE=" + caFile}
	noCA.ok("compute", "list")
	_, err = http.Get(s.url + "/healthz")
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Errorf("Go's default client: %v; want x509.UnknownAuthorityError", err)
	}
	// The CA of another server does not stand in for this one's.
	otherCA, _, _ := makeCA(t, t.TempDir())
	if r := e.run("--ca-file", otherCA, "compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "does not trust") {
		t.Errorf("with another CA: exit %d %q", r.code, r.stderr)
	}
	// Plain HTTP to the HTTPS server fails and says to use https://.
	plain := "http://" + strings.TrimPrefix(s.url, "https://")
	if r := e.run("--server", plain, "compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "serves HTTPS: use "+s.url) {
		t.Errorf("plain HTTP: exit %d %q", r.code, r.stderr)
	}

	// A restart (a new port) keeps the CA and the certificate; the agents
	// it adopts re-read the URL and keep the CA.
	cert, _ := os.ReadFile(filepath.Join(e.dataDir, "tls", "server.pem"))
	if err := s.stop(t); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	s2 := e.up("--tls")
	if strings.Contains(s2.Logs(), "made a") {
		t.Errorf("the restart made a new CA or certificate:\n%s", s2.Logs())
	}
	if again, _ := os.ReadFile(filepath.Join(e.dataDir, "tls", "server.pem")); string(again) != string(cert) || loadConfig(t, e.config).CA != cfg.CA {
		t.Error("the restart changed the certificate or the CA in the CLI config")
	}
	e.runPostsMetric(t, "local")
	e.runPostsMetric(t, "tls-nodes")
}

// makeCA writes a CA certificate and key to dir and returns the
// certificate's file, the certificate and the key.
func makeCA(t *testing.T, dir string) (string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Test Corp CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, "corp-ca.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return file, ca, key
}

// makeServerCert writes a server certificate for names signed by the CA,
// and its key, and returns their files.
func makeServerCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}

// paddock up --tls-cert/--tls-key serves a certificate made elsewhere (by
// a CA of the test's own, as a company CA would): the pair is checked at
// start with errors naming the flag, --tls-ca is pinned by the CLI config
// and the agents, and a CLI without a config CA works with --ca-file.
func TestTLSProvidedCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	caFile, ca, caKey := makeCA(t, dir)
	certFile, keyFile := makeServerCert(t, dir, "server", ca, caKey, "127.0.0.1", "localhost")
	_, otherKey := makeServerCert(t, dir, "other", ca, caKey, "127.0.0.1")
	wrongName, wrongNameKey := makeServerCert(t, dir, "elsewhere", ca, caKey, "paddock.example.com")

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tls-cert", certFile}, []string{"--tls-cert needs --tls-key"}},
		{[]string{"--tls-cert", certFile, "--tls-key", otherKey, "--tls-ca", caFile}, []string{"--tls-key " + otherKey + " is not the private key of --tls-cert"}},
		{[]string{"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", keyFile}, []string{"--tls-cert " + filepath.Join(dir, "none.pem") + " cannot be read"}},
		// Signed by a CA the system does not know, and none given.
		{[]string{"--tls-cert", certFile, "--tls-key", keyFile}, []string{"--tls-cert " + certFile + " would be refused", "unknown authority", "--tls-ca"}},
		// For another name than the server's URL has.
		{[]string{"--tls-cert", wrongName, "--tls-key", wrongNameKey, "--tls-ca", caFile}, []string{"would be refused by clients of https://127.0.0.1:", "--listen"}},
		{[]string{"--tls", "--tls-ca", caFile}, []string{"--tls-ca names the CA of a certificate given with --tls-cert"}},
	} {
		r := e.run(append([]string{"up", "--data-dir", e.dataDir, "--listen", "127.0.0.1:0"}, tc.args...)...)
		for _, w := range tc.want {
			if r.code != 2 || !strings.Contains(r.stderr, w) {
				t.Errorf("up %v: exit %d %q; want 2 and %q", tc.args, r.code, r.stderr, w)
			}
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("up %v: more than one line on stderr: %q", tc.args, r.stderr)
		}
	}

	s := e.up("--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", caFile)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", s.url)
	}
	cfg := loadConfig(t, e.config)
	caPEM, _ := os.ReadFile(caFile)
	if cfg.CA != string(caPEM) {
		t.Errorf("the CLI config's CA is not --tls-ca's: %q", cfg.CA)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "tls")); !os.IsNotExist(err) {
		t.Errorf("a provided certificate made a CA in the data dir (%v)", err)
	}
	e.ok("compute", "list")
	e.runPostsMetric(t, "local")

	noCA := e.withConfig(t, clientconfig.Config{Server: cfg.Server, Token: cfg.Token, Workspace: cfg.Workspace})
	if r := noCA.run("compute", "list"); r.code != 1 || !strings.Contains(r.stderr, "x509") {
		t.Errorf("without the CA: exit %d %q", r.code, r.stderr)
	}
	if out := noCA.ok("--ca-file", caFile, "compute", "list"); !strings.Contains(out, "local") {
		t.Errorf("with --ca-file: %q", out)
	}
	// What the server presents is the provided certificate.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.url, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(want)
	if got := conn.ConnectionState().PeerCertificates[0].Raw; string(got) != string(blk.Bytes) {
		t.Error("the server does not present --tls-cert")
	}
}

// Plain HTTP is for loopback: on any other address paddock up refuses to
// start, in one sentence naming --tls and --insecure-listen, and makes
// nothing; the default address needs no flag.
func TestTLSPlainHTTPOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		r := e.run("up", "--data-dir", e.dataDir, "--listen", listen)
		if r.code != 2 || !strings.Contains(r.stderr, "--tls") || !strings.Contains(r.stderr, "--insecure-listen") ||
			strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("up --listen %s: exit %d %q; want 2 and one sentence naming --tls and --insecure-listen", listen, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(e.dataDir); !os.IsNotExist(err) {
		t.Errorf("a refused start made the data dir (%v)", err)
	}
	// Loopback, as by default: plain HTTP, no flag needed.
	s := e.up("--listen", "127.0.0.1:"+strconv.Itoa(freeLoopbackPort(t)))
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") || loadConfig(t, e.config).CA != "" {
		t.Errorf("loopback: URL %s, config %+v", s.url, loadConfig(t, e.config))
	}
	e.ok("compute", "list")
}

// A container run (--image) is given the CA too: mounted read-only at
// the path PADDOCK_CA_FILE names, it posts a metric over HTTPS.
func TestTLSContainerRun(t *testing.T) {
	extra := needPodman(t)
	e := newEnv(t)
	e.extra = extra
	e.up("--tls")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "post.py", postMetric)
	r := e.run("run", "submit", "--compute", "local", "--image", imageName, "--source", src, "--stream", "--", "python3", "post.py")
	if r.code != 0 || !strings.Contains(r.stdout, "posted 201 to https ca True") {
		t.Fatalf("a container run posting a metric over HTTPS: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}

// An agent on an SSH host (a remote target) connects over HTTPS pinning
// the CA the server wrote beside its token, and its run posts a metric
// trusting the copy it is given, inside its sandbox on that host.
func TestTLSRemoteAgent(t *testing.T) {
	e := newEnv(t)
	e.up("--tls")
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	e.ok("compute", "attach", "remote", "tls-box", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile)
	defer e.run("compute", "detach", "tls-box")
	e.runPostsMetric(t, "tls-box")
	cas, _ := filepath.Glob(filepath.Join(homeOf(keyUser), ".paddock-agent", "*", "ca.pem"))
	if len(cas) != 1 {
		t.Fatalf("CA files on the host: %v", cas)
	}
	if data, _ := os.ReadFile(cas[0]); string(data) != loadConfig(t, e.config).CA {
		t.Errorf("the host's CA file is not the server's CA")
	}
	e.ok("compute", "detach", "tls-box")
}

// A Slurm pilot job's agent connects over HTTPS pinning the CA written on
// the login node's shared home, and its run posts a metric.
func TestTLSSlurmPilot(t *testing.T) {
	conf := slurmConf(t)
	e := newEnv(t)
	srv := e.up("--tls")
	defer func() {
		if t.Failed() {
			t.Log(srv.Logs())
		}
	}()
	port := freeLoopbackPort(t)
	sd := startSSHD(t, t.TempDir(), port, false)
	os.RemoveAll(filepath.Join(homeOf(keyUser), ".paddock-agent"))
	e.ok("compute", "attach", "slurm", "tls-hpc", "--address", "127.0.0.1", "--ssh-port", strconv.Itoa(port),
		"--username", keyUser, "--private-key-file", sd.keyFile, "--slurm-conf", conf)
	e.ok("compute", "create", "cluster", "tls-pilots", "--vm-size", "STANDARD_D1_V2", "--max-nodes", "1",
		"--provider", "slurm", "--from", "tls-hpc", "--idle-seconds-before-scaledown", "1")
	e.runPostsMetric(t, "tls-pilots")
	eventually(t, 30*time.Second, "scale-down to zero", func() bool { return len(e.nodes("tls-pilots")) == 0 })
	eventually(t, 30*time.Second, "no pilot job left in the Slurm queue", func() bool { return squeue(t, conf, keyUser) == "" })
	e.ok("compute", "delete", "tls-pilots")
	e.ok("compute", "detach", "tls-hpc")
}

// The sim provider's in-process agents pin the CA too.
func TestTLSSimAgents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up("--tls", "--sim", "--sim-poll-wait", "1s")
	e.ok("compute", "create", "cluster", "tls-sim", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--min-nodes", "1", "--provider", "sim")
	eventually(t, 20*time.Second, "the sim node idle", func() bool {
		n := e.nodes("tls-sim")
		return len(n) == 1 && n[0].State == "idle"
	})
	if r := e.waitRun(e.submit2("tls-sim", "--env", "SIM_SECONDS=0.1", "--", "true")); r.Status != "Completed" {
		t.Fatalf("sim run over HTTPS: %+v", r)
	}
}
