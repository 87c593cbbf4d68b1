package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a time the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func ips(ss ...string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		out = append(out, net.ParseIP(s))
	}
	return out
}

func TestNamesFor(t *testing.T) {
	t.Parallel()
	machine := ips("10.0.0.5", "127.0.0.1", "fe80::1", "192.168.1.2", "2001:db8::7", "::1")
	for _, tc := range []struct {
		host string
		dns  []string
		ips  []string
	}{
		{"127.0.0.1", []string{"localhost"}, []string{"127.0.0.1", "::1"}},
		{"10.1.2.3", []string{"localhost"}, []string{"127.0.0.1", "::1", "10.1.2.3"}},
		{"::1", []string{"localhost"}, []string{"127.0.0.1", "::1"}},
		{"Paddock.Example.com", []string{"localhost", "paddock.example.com"}, []string{"127.0.0.1", "::1"}},
		// Wildcards: the host name and the addresses others can reach,
		// not link-local ones.
		{"", []string{"localhost", "box"}, []string{"127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", "2001:db8::7"}},
		{"0.0.0.0", []string{"localhost", "box"}, []string{"127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", "2001:db8::7"}},
		{"::", []string{"localhost", "box"}, []string{"127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", "2001:db8::7"}},
	} {
		n := namesFor(tc.host, "box", machine)
		var got []string
		for _, ip := range n.IPs {
			got = append(got, ip.String())
		}
		if diff := cmp.Diff(tc.dns, n.DNS); diff != "" {
			t.Errorf("%q: DNS names (-want +got):\n%s", tc.host, diff)
		}
		if diff := cmp.Diff(tc.ips, got); diff != "" {
			t.Errorf("%q: IP addresses (-want +got):\n%s", tc.host, diff)
		}
	}
	if n := NamesFor("0.0.0.0"); !slices.ContainsFunc(n.IPs, net.IPv4(127, 0, 0, 1).Equal) || !slices.Contains(n.DNS, "localhost") {
		t.Errorf("NamesFor(0.0.0.0) = %v: no loopback", n)
	}
}

func generate(t *testing.T, dir string, names Names, c *clock) *Generated {
	t.Helper()
	g, err := LoadOrCreate(dir, names, c.now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func leaf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	l, err := leafOf(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The first start makes a CA and a server certificate naming the listen
// address, ECDSA P-256, every file 0600 in a 0700 directory, and a client
// pinning the CA accepts the certificate for those names only.
func TestLoadOrCreateMakesAPrivateCAAndCertificate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	c := newClock()
	g := generate(t, dir, NamesFor("10.1.2.3").With("paddock.internal"), c)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v %v; want mode 0700", dir, fi.Mode(), err)
	}
	for _, f := range []string{CAFile, CAKeyFile, CertFile, KeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v; want mode 0600", f, fi.Mode(), err)
		}
	}
	pool, err := Pool(g.CAPEM())
	if err != nil {
		t.Fatal(err)
	}
	cert := g.Certificate()
	l := leaf(t, cert)
	if k, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("server key is %T, want ECDSA P-256", l.PublicKey)
	}
	if got := l.NotAfter.Sub(c.t); got < ServerValidity-time.Hour || got > ServerValidity {
		t.Errorf("server certificate valid for %s from now, want %s", got, ServerValidity)
	}
	ca, _ := x509.ParseCertificate(mustDecode(t, g.CAPEM()))
	if !ca.IsCA || ca.NotAfter.Sub(c.t) < CAValidity-time.Hour {
		t.Errorf("CA: IsCA %v, valid until %s", ca.IsCA, ca.NotAfter)
	}
	for _, host := range []string{"10.1.2.3", "paddock.internal", "localhost", "127.0.0.1", "::1"} {
		if err := Verify(cert, host, pool, c.t); err != nil {
			t.Errorf("a client of %s pinning the CA: %v", host, err)
		}
	}
	if err := Verify(cert, "10.9.9.9", pool, c.t); err == nil {
		t.Error("the certificate was accepted for a host it does not name")
	}
	if err := Verify(cert, "127.0.0.1", nil, c.t); err == nil {
		t.Error("a client with the system's roots accepted the generated CA")
	}
}

// mustDecode is the DER of the first certificate in PEM data.
func mustDecode(t *testing.T, pemData []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(pemData)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no certificate in %q", pemData)
	}
	return b.Bytes
}

// The server certificate is kept while it is good, and made anew (the CA
// kept) when it nears its end, when the listen address changes to one it
// does not name, or when its files are damaged.
func TestServerCertificateIsRenewedWhenDue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newClock()
	names := NamesFor("127.0.0.1")
	first := generate(t, dir, names, c)
	serial := func(g *Generated) string { return leaf(t, g.Certificate()).SerialNumber.String() }

	again := generate(t, dir, names, c)
	if serial(again) != serial(first) || string(again.CAPEM()) != string(first.CAPEM()) {
		t.Fatal("a second start made a new certificate though the first was good")
	}

	c.t = leaf(t, first.Certificate()).NotAfter.Add(-RenewBefore + time.Hour)
	renewed := generate(t, dir, names, c)
	if serial(renewed) == serial(first) {
		t.Error("a certificate expiring within RenewBefore was kept")
	}
	if string(renewed.CAPEM()) != string(first.CAPEM()) {
		t.Error("renewing the server certificate changed the CA")
	}
	if got := leaf(t, renewed.Certificate()).NotAfter; !got.After(c.t.Add(ServerValidity - time.Hour)) {
		t.Errorf("the renewed certificate ends %s", got)
	}

	moved := generate(t, dir, NamesFor("10.1.2.3"), c)
	if serial(moved) == serial(renewed) || !slices.ContainsFunc(leaf(t, moved.Certificate()).IPAddresses, net.ParseIP("10.1.2.3").Equal) {
		t.Error("a certificate that does not name the new listen address was kept")
	}
	if string(moved.CAPEM()) != string(first.CAPEM()) {
		t.Error("a new listen address changed the CA")
	}

	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	fixed := generate(t, dir, NamesFor("10.1.2.3"), c)
	pool, _ := Pool(fixed.CAPEM())
	if err := Verify(fixed.Certificate(), "10.1.2.3", pool, c.t); err != nil {
		t.Errorf("after a damaged key: %v", err)
	}
}

// A server that runs for a year renews its certificate as it serves,
// looking at most once an hour.
func TestGetCertificateRenewsWhileServing(t *testing.T) {
	t.Parallel()
	c := newClock()
	g := generate(t, t.TempDir(), NamesFor("127.0.0.1"), c)
	first, _ := g.GetCertificate(nil)
	c.t = leaf(t, first).NotAfter.Add(-RenewBefore - time.Hour)
	if got, _ := g.GetCertificate(nil); got != first {
		t.Error("renewed before it was due")
	}
	c.t = c.t.Add(2 * time.Hour)
	got, _ := g.GetCertificate(nil)
	if got == first || !leaf(t, got).NotAfter.After(c.t.Add(RenewBefore)) {
		t.Errorf("not renewed once due: ends %s", leaf(t, got).NotAfter)
	}
	if again, _ := g.GetCertificate(nil); again != got {
		t.Error("renewed twice")
	}
}

// A CA with a file missing is an error that says what to do: clients pin
// it, so a new one is never made silently.
func TestIncompleteCAIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newClock()
	generate(t, dir, NamesFor("127.0.0.1"), c)
	os.Remove(filepath.Join(dir, CAKeyFile))
	_, err := LoadOrCreate(dir, NamesFor("127.0.0.1"), c.now, quiet)
	if err == nil || !strings.Contains(err.Error(), CAKeyFile+" is missing") {
		t.Errorf("err = %v; want one naming the missing key", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		t.Error("a new CA key was made")
	}
}

// writePair writes a certificate and key for names, signed by a fresh CA
// of its own, valid from `from` for ServerValidity, and returns the
// files and the CA.
func writePair(t *testing.T, dir string, names Names, from time.Time) (certFile, keyFile string, caPEM []byte) {
	t.Helper()
	g := generate(t, dir, names, &clock{t: from})
	return filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), g.CAPEM()
}

func TestLoadPairErrorsNameTheFlag(t *testing.T) {
	t.Parallel()
	now := newClock().t
	dir := t.TempDir()
	good, goodKey, _ := writePair(t, filepath.Join(dir, "a"), NamesFor("127.0.0.1"), now)
	_, otherKey, _ := writePair(t, filepath.Join(dir, "b"), NamesFor("127.0.0.1"), now)
	expired, expiredKey, _ := writePair(t, filepath.Join(dir, "c"), NamesFor("127.0.0.1"), now.Add(-2*ServerValidity))
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct {
		cert, key, field, want string
	}{
		{filepath.Join(dir, "none.pem"), goodKey, "tls-cert", "--tls-cert " + filepath.Join(dir, "none.pem") + " cannot be read: no such file or directory"},
		{notPEM, goodKey, "tls-cert", "is not a PEM certificate"},
		{good, filepath.Join(dir, "none.key"), "tls-key", "--tls-key " + filepath.Join(dir, "none.key") + " cannot be read"},
		{good, otherKey, "tls-key", "is not the private key of --tls-cert"},
		{good, notPEM, "tls-key", "is not the private key of --tls-cert"},
		{expired, expiredKey, "tls-cert", "expired on"},
	} {
		_, err := LoadPair(tc.cert, tc.key, now)
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.want) {
			t.Errorf("LoadPair(%s, %s) = %v; want Invalid %s %q", tc.cert, tc.key, err, tc.field, tc.want)
		}
	}
	if _, err := LoadPair(good, goodKey, now); err != nil {
		t.Errorf("a good pair: %v", err)
	}
}

// A provided certificate replaced on disk (a renewal) is served without a
// restart; a replacement that cannot be used is not.
func TestProvidedCertificateIsReadAgainWhenItChanges(t *testing.T) {
	t.Parallel()
	c := newClock()
	dir := t.TempDir()
	certFile, keyFile, _ := writePair(t, filepath.Join(dir, "served"), NamesFor("127.0.0.1"), c.t)
	p, err := LoadProvided(certFile, keyFile, c.now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := p.GetCertificate(nil)

	newCert, newKey, _ := writePair(t, filepath.Join(dir, "next"), NamesFor("127.0.0.1"), c.t)
	copyFile(t, newCert, certFile)
	copyFile(t, newKey, keyFile)
	if got, _ := p.GetCertificate(nil); got != first {
		t.Error("read again before reloadEvery passed")
	}
	c.t = c.t.Add(reloadEvery + time.Second)
	second, _ := p.GetCertificate(nil)
	if second == first || leaf(t, second).SerialNumber.Cmp(leaf(t, first).SerialNumber) == 0 {
		t.Fatal("the renewed certificate is not served")
	}

	os.WriteFile(keyFile, []byte("half-written"), 0o600)
	c.t = c.t.Add(reloadEvery + time.Second)
	if got, _ := p.GetCertificate(nil); got != second {
		t.Error("a replacement that cannot be used was served")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// A new size or time tells the change; make sure of the time.
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(to, later, later)
}

// What is passed on as a CA holds certificates only: a key in the same
// file never travels with it.
func TestCertificatesPEMKeepsOnlyCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := generate(t, dir, NamesFor("127.0.0.1"), newClock())
	key, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	got, err := CertificatesPEM(append(append([]byte{}, key...), g.CAPEM()...))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "PRIVATE KEY") || string(got) != string(g.CAPEM()) {
		t.Errorf("got %q", got)
	}
	if _, err := CertificatesPEM(key); err == nil {
		t.Error("a key alone was taken for a CA")
	}
}
