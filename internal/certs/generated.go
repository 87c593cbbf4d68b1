package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/internal/clientconfig"
)

// Files of the generated certificates, in the directory given to
// LoadOrCreate (<data-dir>/tls); every one is mode 0600.
const (
	CAFile    = "ca.pem"         // the CA certificate clients pin
	CAKeyFile = "ca-key.pem"     // the CA's private key
	CertFile  = "server.pem"     // the server certificate
	KeyFile   = "server-key.pem" // its private key
)

// checkEvery is how often a serving Generated looks whether its
// certificate is due for renewal.
const checkEvery = time.Hour

// Generated is the CA and server certificate `paddock up --tls` keeps in
// its data dir: the CA is made once and kept; the server certificate is
// made anew when it nears its end or no longer names what it must. Its
// methods are safe for concurrent use.
type Generated struct {
	dir   string
	names Names
	now   func() time.Time
	log   *slog.Logger

	ca    *x509.Certificate
	caKey crypto.Signer
	caPEM []byte

	mu        sync.Mutex
	cert      *tls.Certificate
	nextCheck time.Time
}

// LoadOrCreate opens the CA in dir, making it (and dir, 0700) on first
// start, and the server certificate, making a new one when there is none,
// when it expires within RenewBefore, when it lacks one of names, or when
// the CA did not sign it. A CA that is there only in part, or cannot be
// read, is an error: clients pin it, so it is never replaced silently.
func LoadOrCreate(dir string, names Names, now func() time.Time, log *slog.Logger) (*Generated, error) {
	g := &Generated{dir: dir, names: names, now: now, log: log}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := g.loadOrCreateCA(); err != nil {
		return nil, err
	}
	cert, why := g.loadServer()
	if why != "" {
		var err error
		if cert, err = g.makeServer(why); err != nil {
			return nil, err
		}
	}
	g.cert = cert
	g.nextCheck = now().Add(checkEvery)
	return g, nil
}

// CAPEM is the CA certificate, PEM: what clients pin.
func (g *Generated) CAPEM() []byte { return g.caPEM }

// Certificate is the server certificate now served.
func (g *Generated) Certificate() *tls.Certificate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cert
}

// GetCertificate is tls.Config's: the server certificate, renewed first
// when it is due (looked at once an hour). A failed renewal is logged and
// the current certificate served.
func (g *Generated) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if now.Before(g.nextCheck) {
		return g.cert, nil
	}
	g.nextCheck = now.Add(checkEvery)
	if leaf, err := leafOf(g.cert); err == nil && leaf.NotAfter.Sub(now) < RenewBefore {
		if cert, err := g.makeServer(fmt.Sprintf("it expires on %s", leaf.NotAfter.UTC().Format(time.DateOnly))); err != nil {
			g.log.Error("renewing the server certificate failed; serving the current one", "err", err)
		} else {
			g.cert = cert
		}
	}
	return g.cert, nil
}

func (g *Generated) path(name string) string { return filepath.Join(g.dir, name) }

// loadOrCreateCA reads the CA, or makes it when neither of its files is
// there.
func (g *Generated) loadOrCreateCA() error {
	certPEM, certErr := os.ReadFile(g.path(CAFile))
	keyPEM, keyErr := os.ReadFile(g.path(CAKeyFile))
	switch {
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		return g.makeCA()
	case errors.Is(certErr, os.ErrNotExist) || errors.Is(keyErr, os.ErrNotExist):
		missing := g.path(CAFile)
		if errors.Is(keyErr, os.ErrNotExist) {
			missing = g.path(CAKeyFile)
		}
		return fmt.Errorf("the TLS CA in %s is incomplete (%s is missing): restore it from a backup, or remove %s and %s to make a new CA that every client must then be given", g.dir, missing, g.path(CAFile), g.path(CAKeyFile))
	case certErr != nil:
		return fmt.Errorf("reading the TLS CA: %w", certErr)
	case keyErr != nil:
		return fmt.Errorf("reading the TLS CA's key: %w", keyErr)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("the TLS CA in %s cannot be used: %w", g.dir, err)
	}
	ca, err := leafOf(&pair)
	if err != nil {
		return fmt.Errorf("the TLS CA in %s cannot be used: %w", g.dir, err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !ca.IsCA {
		return fmt.Errorf("the TLS CA in %s cannot be used: %s is not a CA certificate with its key", g.dir, g.path(CAFile))
	}
	if g.now().After(ca.NotAfter) {
		return fmt.Errorf("the TLS CA in %s expired on %s: remove %s and %s to make a new one, then give every client the new CA", g.dir, ca.NotAfter.UTC().Format(time.DateOnly), g.path(CAFile), g.path(CAKeyFile))
	}
	g.ca, g.caKey, g.caPEM = ca, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	return nil
}

// makeCA makes the CA and writes it.
func (g *Generated) makeCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := g.now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Paddock"}, CommonName: strings.TrimSpace("Paddock CA " + host)},
		NotBefore:             now.Add(-time.Hour), // clocks of clients may lag
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeKey(g.path(CAKeyFile), key); err != nil {
		return err
	}
	if err := clientconfig.WriteFileAtomic(g.path(CAFile), certPEM, 0o600); err != nil {
		return err
	}
	g.ca, g.caKey, g.caPEM = ca, key, certPEM
	g.log.Info("made a CA for TLS", "file", g.path(CAFile), "expires", ca.NotAfter.UTC().Format(time.DateOnly))
	return nil
}

// loadServer reads the server certificate; it returns why a new one is
// needed when it is missing, unusable or due.
func (g *Generated) loadServer() (*tls.Certificate, string) {
	cert, err := tls.LoadX509KeyPair(g.path(CertFile), g.path(KeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, "there is none"
	}
	if err != nil {
		return nil, fmt.Sprintf("the one there cannot be used: %v", err)
	}
	leaf, err := leafOf(&cert)
	if err != nil {
		return nil, fmt.Sprintf("the one there cannot be used: %v", err)
	}
	now := g.now()
	switch {
	case leaf.CheckSignatureFrom(g.ca) != nil:
		return nil, "the CA did not sign the one there"
	case leaf.NotAfter.Sub(now) < RenewBefore:
		return nil, fmt.Sprintf("it expires on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return nil, "it is not valid yet"
	}
	if missing := g.names.missingFrom(leaf); len(missing) > 0 {
		return nil, "it does not name " + strings.Join(missing, ", ")
	}
	return &cert, ""
}

// makeServer makes a server certificate for g.names signed by the CA and
// writes it; why is logged.
func (g *Generated) makeServer(why string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := g.now()
	notAfter := now.Add(ServerValidity)
	if g.ca.NotAfter.Before(notAfter) {
		notAfter = g.ca.NotAfter
	}
	cn := "localhost"
	if len(g.names.DNS) > 1 {
		cn = g.names.DNS[len(g.names.DNS)-1]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Paddock"}, CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              g.names.DNS,
		IPAddresses:           g.names.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.ca, key.Public(), g.caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	// The key first: a certificate beside a key that is not its own would
	// be found unusable and made again, never served.
	if err := writeKey(g.path(KeyFile), key); err != nil {
		return nil, err
	}
	if err := clientconfig.WriteFileAtomic(g.path(CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	g.log.Info("made a server certificate", "why", why, "names", g.names.String(), "expires", leaf.NotAfter.UTC().Format(time.DateOnly), "file", g.path(CertFile))
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// writeKey writes a private key as PKCS #8 PEM, mode 0600.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return clientconfig.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// serial is a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}
