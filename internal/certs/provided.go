package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// reloadEvery is how often a serving Provided looks whether its files
// changed.
const reloadEvery = 10 * time.Second

// Provided is a certificate and key an admin gives `paddock up`
// (--tls-cert, --tls-key). It is read again when either file changes, so
// a renewed certificate is served without a restart; a change that cannot
// be used is logged and the previous certificate kept. Its methods are
// safe for concurrent use.
type Provided struct {
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // the files' sizes and times when cert was read
	nextCheck time.Time
}

// LoadProvided reads a certificate (PEM, the chain after it) and its
// private key. Its errors name the flag (--tls-cert, --tls-key) and what
// is wrong: a file that cannot be read, no certificate in it, a key that
// is not the certificate's, a certificate expired or not yet valid.
func LoadProvided(certFile, keyFile string, now func() time.Time, log *slog.Logger) (*Provided, error) {
	p := &Provided{certFile: certFile, keyFile: keyFile, now: now, log: log}
	stamp := p.filesStamp()
	cert, err := LoadPair(certFile, keyFile, now())
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the TLS private key is readable by others; make it the server's user's only (chmod 600)", "file", keyFile,
			"mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	p.cert, p.stamp, p.nextCheck = cert, stamp, now().Add(reloadEvery)
	return p, nil
}

// LoadPair reads and checks a certificate and key pair as LoadProvided
// does, once.
func LoadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, api.Invalid("tls-cert", "--tls-cert %s cannot be read: %v", certFile, pathErr(err))
	}
	if _, err := CertificatesPEM(certPEM); err != nil {
		return nil, api.Invalid("tls-cert", "--tls-cert %s is not a PEM certificate: %v", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, api.Invalid("tls-key", "--tls-key %s cannot be read: %v", keyFile, pathErr(err))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, api.Invalid("tls-key", "--tls-key %s is not the private key of --tls-cert %s: %v", keyFile, certFile, err)
	}
	leaf, err := leafOf(&pair)
	if err != nil {
		return nil, api.Invalid("tls-cert", "--tls-cert %s: %v", certFile, err)
	}
	pair.Leaf = leaf
	switch {
	case now.After(leaf.NotAfter):
		return nil, api.Invalid("tls-cert", "--tls-cert %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, api.Invalid("tls-cert", "--tls-cert %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}

// Certificate is the certificate now served.
func (p *Provided) Certificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cert
}

// GetCertificate is tls.Config's: the certificate, read again first when
// its files changed (looked at every 10 s at most).
func (p *Provided) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.nextCheck) {
		return p.cert, nil
	}
	p.nextCheck = now.Add(reloadEvery)
	stamp := p.filesStamp()
	if stamp == p.stamp {
		return p.cert, nil
	}
	cert, err := LoadPair(p.certFile, p.keyFile, now)
	if err != nil {
		// Both files are replaced one after the other: the next look,
		// once both are new, may succeed.
		p.log.Warn("the TLS certificate changed but cannot be used; serving the previous one", "err", err)
		return p.cert, nil
	}
	p.cert, p.stamp = cert, stamp
	p.log.Info("serving the renewed TLS certificate", "file", p.certFile, "expires", cert.Leaf.NotAfter.UTC().Format(time.DateOnly))
	return p.cert, nil
}

// filesStamp says when and how the files last changed.
func (p *Provided) filesStamp() string {
	var s string
	for _, f := range []string{p.certFile, p.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return s
}

// pathErr is what went wrong with a file, without its path (the message
// names it already).
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
