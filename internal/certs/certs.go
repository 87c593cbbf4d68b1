// Package certs holds the workspace server's TLS certificates: the CA and
// server certificate `paddock up --tls` makes in its data dir and renews,
// a certificate an admin provides (`--tls-cert`, `--tls-key`), and the CA
// pools its clients (the CLI, agents) pin.
//
// Only the standard library's crypto is used: ECDSA P-256 keys, X.509
// certificates signed by the generated CA, keys in PKCS #8 PEM files of
// mode 0600.
package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// Validity of what LoadOrCreate makes, and when it renews the server
// certificate.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	// RenewBefore is how long before it expires a generated server
	// certificate is made anew (the CA stays, so clients notice nothing).
	RenewBefore = 30 * 24 * time.Hour
)

// Names are what a server certificate must name: the host names and IP
// addresses clients reach the server at.
type Names struct {
	DNS []string
	IPs []net.IP
}

// loopback names every generated certificate has, so tools on the
// server's own host can always connect.
var loopback = Names{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}

// NamesFor returns the names of a server listening on host (the host of
// --listen: an IP address, a host name, or empty): that host and the
// loopback names; for a wildcard address (empty, 0.0.0.0, ::) the
// machine's host name and its non-loopback IP addresses instead of the
// host.
func NamesFor(host string) Names {
	if !IsWildcard(host) {
		return namesFor(host, "", nil)
	}
	hostname, _ := os.Hostname()
	var ips []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	return namesFor(host, hostname, ips)
}

// namesFor is NamesFor with the machine's host name and addresses given.
func namesFor(host, hostname string, addrs []net.IP) Names {
	n := Names{DNS: slices.Clone(loopback.DNS), IPs: slices.Clone(loopback.IPs)}
	if IsWildcard(host) {
		if hostname != "" {
			n.add(hostname)
		}
		for _, ip := range addrs {
			if ip.IsGlobalUnicast() { // not loopback, link-local or multicast; private ranges are
				n.add(ip.String())
			}
		}
		return n
	}
	n.add(host)
	return n
}

// IsWildcard reports whether a listen host means every address of the
// machine: empty, 0.0.0.0 or ::.
func IsWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// add adds a name or an IP address, once.
func (n *Names) add(name string) {
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil {
		if !slices.ContainsFunc(n.IPs, ip.Equal) {
			n.IPs = append(n.IPs, ip)
		}
		return
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name != "" && !slices.Contains(n.DNS, name) {
		n.DNS = append(n.DNS, name)
	}
}

// With returns n with more names (host names or IP addresses).
func (n Names) With(names ...string) Names {
	out := Names{DNS: slices.Clone(n.DNS), IPs: slices.Clone(n.IPs)}
	for _, name := range names {
		out.add(name)
	}
	return out
}

// missingFrom returns the names c does not have, as text.
func (n Names) missingFrom(c *x509.Certificate) []string {
	var missing []string
	for _, d := range n.DNS {
		if !slices.ContainsFunc(c.DNSNames, func(s string) bool { return strings.EqualFold(s, d) }) {
			missing = append(missing, d)
		}
	}
	for _, ip := range n.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	return missing
}

// String lists the names, for logs.
func (n Names) String() string {
	all := slices.Clone(n.DNS)
	for _, ip := range n.IPs {
		all = append(all, ip.String())
	}
	return strings.Join(all, ",")
}

// CertificatesPEM returns only the CERTIFICATE blocks of PEM data,
// re-encoded: what is passed on to clients as a CA, so a key that was in
// the same file never travels with it. It fails when there is none or one
// cannot be parsed.
func CertificatesPEM(data []byte) ([]byte, error) {
	var out bytes.Buffer
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("a certificate in it cannot be parsed: %w", err)
		}
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})
	}
	if out.Len() == 0 {
		return nil, errors.New("it holds no PEM certificate")
	}
	return out.Bytes(), nil
}

// Pool is a pool of the certificates in PEM data: a client using it as
// its roots trusts those CAs and no others.
func Pool(pemData []byte) (*x509.CertPool, error) {
	certs, err := CertificatesPEM(pemData)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs)
	return pool, nil
}

// Verify checks cert the way a client connecting to host would: its
// chain up to roots (nil: the system's), its validity at now, and that it
// names host.
func Verify(cert *tls.Certificate, host string, roots *x509.CertPool, now time.Time) error {
	leaf, err := leafOf(cert)
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: strings.Trim(host, "[]"), Roots: roots, Intermediates: inter,
		CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// leafOf is a certificate's parsed leaf.
func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(cert.Certificate[0])
}
