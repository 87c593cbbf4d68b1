package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/certs"
)

// tlsDir is the data dir's directory of the certificates `paddock up
// --tls` makes (certs.CAFile and the others, 0600).
const tlsDir = "tls"

// tlsOn reports whether the server serves HTTPS.
func (o Options) tlsOn() bool { return o.TLS || o.TLSCertFile != "" }

// checkListen refuses TLS flags that do not go together, and plain HTTP
// on an address other than loopback unless InsecureListen allows it:
// tokens would cross the network unencrypted.
func checkListen(o Options) error {
	switch {
	case o.TLSCertFile != "" && o.TLSKeyFile == "":
		return api.Invalid("tls-key", "--tls-cert needs --tls-key, the certificate's private key")
	case o.TLSKeyFile != "" && o.TLSCertFile == "":
		return api.Invalid("tls-cert", "--tls-key needs --tls-cert, the certificate it is the key of")
	case o.TLSCAFile != "" && o.TLSCertFile == "":
		return api.Invalid("tls-ca", "--tls-ca names the CA of a certificate given with --tls-cert; --tls makes its own CA")
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return api.Invalid("listen", "--listen %q must be host:port, e.g. 127.0.0.1:8765", o.Listen)
	}
	if o.tlsOn() || o.InsecureListen || loopbackHost(host) {
		return nil
	}
	return api.Invalid("listen", "--listen %s is not a loopback address and plain HTTP there sends tokens unencrypted: serve HTTPS with --tls (or --tls-cert), or pass --insecure-listen", o.Listen)
}

// loopbackHost reports whether a listen host is a loopback address, or a
// name for one only. A name that does not resolve counts as loopback:
// listening on it fails with its own error.
func loopbackHost(host string) bool {
	if certs.IsWildcard(host) {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// urlHost is the host in the server's URL, which the CLI config, agents
// and runs connect to: the listen host as given (a name or an address);
// for a wildcard address the machine's host name when it resolves, else
// 127.0.0.1.
func urlHost(listenHost string) string {
	if !certs.IsWildcard(listenHost) {
		if ip := net.ParseIP(listenHost); ip != nil {
			return ip.String()
		}
		return listenHost
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := net.DefaultResolver.LookupHost(ctx, h); err == nil {
			return h
		}
	}
	return "127.0.0.1"
}

// setupTLS sets the server's URL and, with TLS, what it presents: the
// certificate made in the data dir (--tls) or the one given (--tls-cert),
// which is checked the way its clients will check it, so that the local
// agent and the CLI config work.
func (p *process) setupTLS(ln net.Listener) error {
	o := p.o
	listenHost, _, _ := net.SplitHostPort(o.Listen)
	host := urlHost(listenHost)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	hostport := net.JoinHostPort(host, port)
	switch {
	case o.TLSCertFile != "":
		prov, err := certs.LoadProvided(o.TLSCertFile, o.TLSKeyFile, time.Now, p.log)
		if err != nil {
			return err
		}
		var roots *x509.CertPool
		if o.TLSCAFile != "" {
			data, err := os.ReadFile(o.TLSCAFile)
			if err != nil {
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return api.Invalid("tls-ca", "--tls-ca %s cannot be read: %v", o.TLSCAFile, err)
			}
			if p.caPEM, err = certs.CertificatesPEM(data); err != nil {
				return api.Invalid("tls-ca", "--tls-ca %s is not a PEM certificate: %v", o.TLSCAFile, err)
			}
			roots, _ = certs.Pool(p.caPEM)
		}
		if err := certs.Verify(prov.Certificate(), host, roots, time.Now()); err != nil {
			var unknownCA x509.UnknownAuthorityError
			var badName x509.HostnameError
			hint := ""
			switch {
			case errors.As(err, &badName):
				hint = ": listen on a name or address it has (--listen NAME:PORT)"
			case errors.As(err, &unknownCA) && o.TLSCAFile == "":
				hint = ": give the CA that issued it with --tls-ca"
			case errors.As(err, &unknownCA):
				hint = ": --tls-ca must be the CA that issued it"
			}
			return api.Invalid("tls-cert", "--tls-cert %s would be refused by clients of https://%s (%v)%s", o.TLSCertFile, hostport, err, hint)
		}
		p.tls = &tls.Config{GetCertificate: prov.GetCertificate, MinVersion: tls.VersionTLS12}
	case o.TLS:
		gen, err := certs.LoadOrCreate(filepath.Join(p.dataDir, tlsDir), certs.NamesFor(listenHost).With(host), time.Now, p.log)
		if err != nil {
			return err
		}
		p.caPEM = gen.CAPEM()
		p.tls = &tls.Config{GetCertificate: gen.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	scheme := "http"
	if p.tls != nil {
		scheme = "https"
	}
	p.url = scheme + "://" + hostport
	return nil
}
