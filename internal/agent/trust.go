package agent

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/clientconfig"
)

// RunCAEnv names the variable that gives a run the path of the CA it
// trusts for PADDOCK_API_URL when the server serves HTTPS with its own
// CA.
const RunCAEnv = clientconfig.EnvCAFile

// runCAFile is the copy of the CA, in the work dir, that runs read (put
// back read-only into their sandbox at the same path).
const runCAFile = "ca.pem"

// trust is what the agent trusts for an https server: the CA from its CA
// file (nil pem: the system's roots) and a transport that pins it.
type trust struct {
	pem       []byte
	transport *http.Transport
}

// loadTrust reads the CA file (Config.CAFile; a missing one means the
// system's roots) and returns what the agent trusts now, made anew only
// when the file's certificates changed. The copy runs read follows it.
func (a *Agent) loadTrust() (*trust, error) {
	a.trustMu.Lock()
	defer a.trustMu.Unlock()
	var pem []byte
	if a.cfg.CAFile != "" {
		raw, err := os.ReadFile(a.cfg.CAFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading the CA file (--ca-file) %s: %w", a.cfg.CAFile, err)
		default:
			if pem, err = certs.CertificatesPEM(raw); err != nil {
				return nil, fmt.Errorf("the CA file (--ca-file) %s cannot be used: %w", a.cfg.CAFile, err)
			}
		}
	}
	if cur := a.trust.Load(); cur != nil && bytes.Equal(cur.pem, pem) {
		return cur, nil
	}
	var pool *x509.CertPool
	if pem != nil {
		pool, _ = certs.Pool(pem)
	}
	if err := a.writeRunCA(pem); err != nil {
		return nil, fmt.Errorf("writing the CA for runs: %w", err)
	}
	t := &trust{pem: pem, transport: api.NewTransport(pool)}
	a.trust.Store(t)
	return t, nil
}

// writeRunCA keeps the copy of the CA runs read (mode 0644: a CA
// certificate is public), or removes it.
func (a *Agent) writeRunCA(pem []byte) error {
	if a.cfg.WorkDir == "" {
		return nil
	}
	path := filepath.Join(a.cfg.WorkDir, runCAFile)
	if pem == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return clientconfig.WriteFileAtomic(path, pem, 0o644)
}

// runCA is the path of the CA file runs are given, "" when the agent
// trusts the system's roots.
func (a *Agent) runCA() string {
	if t := a.trust.Load(); t != nil && t.pem != nil && a.cfg.WorkDir != "" {
		if abs, err := filepath.Abs(filepath.Join(a.cfg.WorkDir, runCAFile)); err == nil {
			return abs
		}
	}
	return ""
}

// runCABind puts the CA file back, read-only, into a run's sandbox, where
// the work dir holding it is hidden.
func runCABind(path string) []proc.Bind {
	if path == "" {
		return nil
	}
	return []proc.Bind{{Path: path, ReadOnly: true}}
}

// refreshClients points both clients at url with the transport of t,
// replacing each whole (attempts' goroutines are using them). It reports
// whether the main client changed.
func (a *Agent) refreshClients(url string, t *trust) bool {
	changed := false
	for _, p := range []*atomic.Pointer[api.AgentClient]{&a.client, &a.uploads} {
		for {
			old := p.Load()
			sameTransport := old.HTTP.Transport == http.RoundTripper(t.transport)
			if old.Server == url && sameTransport {
				break
			}
			c := *old
			c.Server = url
			if !sameTransport {
				hc := *old.HTTP
				hc.Transport = t.transport
				c.HTTP = &hc
			}
			if p.CompareAndSwap(old, &c) {
				changed = changed || p == &a.client
				break
			}
		}
	}
	return changed
}
