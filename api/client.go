package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/internal/backoff"
)

// Client talks to one Paddock server as one user in one workspace.
type Client struct {
	// Server is the server's URL (http://127.0.0.1:8765), or the URLs of
	// the replicas of one workspace separated by commas. A call goes to the
	// one that answered last; when that one cannot be reached, or answers
	// that another must take the call (HeaderRetryElsewhere), it goes to
	// the next. A call whose request may have been applied is not sent
	// again, except reads.
	Server    string
	Token     string
	Workspace string
	HTTP      *http.Client

	// first is the index in Server of the replica to call first (the last
	// one that answered); copies of a Client share it. Nil: the first.
	first *atomic.Int32
}

// Servers splits a list of server URLs (separated by commas or white
// space, as --server, PADDOCK_SERVER and an agent's server file may give
// them), without trailing slashes or repeats.
func Servers(list string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		u := strings.TrimRight(f, "/")
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// start is the index of the server to call first of n.
func (c *Client) start(n int) int {
	if c.first == nil || n <= 1 {
		return 0
	}
	return int(c.first.Load()) % n
}

// attempt is one server a call may go to: its index in Server and
// whether more servers come after it.
type attempt struct {
	idx    int
	server string
	more   bool
}

// attempts are the servers in the order a call tries them: the one that
// answered last first.
func (c *Client) attempts() []attempt {
	servers := c.servers()
	first := c.start(len(servers))
	out := make([]attempt, len(servers))
	for i := range servers {
		idx := (first + i) % len(servers)
		out[i] = attempt{idx: idx, server: servers[idx], more: i+1 < len(servers)}
	}
	return out
}

// answered notes which server to call first next time.
func (c *Client) answered(i int) {
	if c.first != nil {
		c.first.Store(int32(i))
	}
}

// servers is Server as a list, never empty.
func (c *Client) servers() []string {
	if l := Servers(c.Server); len(l) > 0 {
		return l
	}
	return []string{strings.TrimRight(c.Server, "/")}
}

// notSent reports whether a request failed before any of it reached the
// server: it could not connect.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// readOnly methods may be sent again to another server.
func readOnly(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// Option configures a Client made by NewClient.
type Option func(*Client)

// WithRootCAs makes the client trust, for an https server, the CAs in
// pool and no others (the CA `paddock up --tls` made, say); nil keeps the
// system's roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) {
		if pool != nil {
			c.HTTP.Transport = NewTransport(pool)
		}
	}
}

// NewClient returns a client with sensible timeouts.
func NewClient(server, token, workspace string, opts ...Option) *Client {
	c := &Client{
		Server:    strings.TrimRight(server, "/"),
		Token:     token,
		Workspace: workspace,
		HTTP:      &http.Client{Timeout: 60 * time.Second},
		first:     new(atomic.Int32),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewTransport is an HTTP transport like http.DefaultTransport that
// trusts, for https, the CAs in roots and no others (nil: the system's
// roots), over TLS 1.2 or later.
func NewTransport(roots *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return t
}

// unreachable is the error of a request that got no answer: the server is
// not there, or the TLS handshake failed, which says why.
func unreachable(server string, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var notTLS tls.RecordHeaderError
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err // without the method and URL, which the message names
	}
	switch {
	case errors.As(err, &unknownCA) || errors.As(err, &badName) || errors.As(err, &invalid) || errors.As(err, &verify):
		return Unavailable("the Paddock server at %s presented a certificate this client does not trust (%v): give the client the server's CA (paddock --ca-file, PADDOCK_CA_FILE)", server, cause)
	case errors.As(err, &notTLS) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return Unavailable("the Paddock server at %s does not speak TLS: use an http:// URL", server)
	}
	return Unavailable("cannot reach the Paddock server at %s (is `paddock up` running?): %v", server, err)
}

// httpToHTTPS is what Go's HTTPS server answers a plain HTTP request.
const httpToHTTPS = "Client sent an HTTP request to an HTTPS server"

// plainToTLS is the error of a plain HTTP request to an HTTPS server.
func plainToTLS(server string) error {
	return Unavailable("the Paddock server at %s serves HTTPS: use %s", server, "https://"+strings.TrimPrefix(server, "http://"))
}

func (c *Client) wsPath(parts ...string) string {
	p := "/api/v1/workspaces/" + url.PathEscape(c.Workspace)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// Do sends a request with body in JSON (when not nil) and decodes a JSON
// response into out (when not nil). Error responses come back as *Error;
// a server that cannot be reached comes back as CodeUnavailable. With
// several servers, it tries the next as Server says.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	var stream io.Reader // a body that can be sent only once
	contentType := "application/json"
	if raw, ok := body.(Raw); ok {
		stream, contentType = raw.Data, raw.ContentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	all := c.attempts()
	var lastErr error
	for _, at := range all {
		idx, server := at.idx, at.server
		more := at.more && stream == nil // another server may take it
		var rd io.Reader
		switch {
		case stream != nil:
			rd = stream
		case payload != nil:
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, server+path, rd)
		if err != nil {
			return Invalid("server", "server URL %q is not valid: %v", server, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range headersFrom(ctx) {
			req.Header.Set(k, v)
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr = unreachable(server, err)
			if more && (notSent(err) || readOnly(method)) {
				continue
			}
			c.answered((idx + 1) % len(all)) // the next call tries the next one first
			return lastErr
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = Unavailable("reading the response from %s: %v", server, err)
			if more && readOnly(method) {
				continue
			}
			return lastErr
		}
		if resp.StatusCode >= 400 {
			lastErr = responseError(server, resp.StatusCode, data)
			if more && (resp.Header.Get(HeaderRetryElsewhere) != "" || readOnly(method) && resp.StatusCode >= 500) {
				continue
			}
			c.answered(idx)
			return lastErr
		}
		c.answered(idx)
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("decoding the response of %s %s: %w", method, path, err)
			}
		}
		return nil
	}
	return lastErr
}

// responseError is the error of an answer with an error status.
func responseError(server string, status int, data []byte) error {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		return eb.Error
	}
	if status == http.StatusBadRequest && bytes.Contains(data, []byte(httpToHTTPS)) {
		return plainToTLS(server)
	}
	return &Error{Code: codeForStatus(status), Message: fmt.Sprintf("server answered %d %s", status, http.StatusText(status))}
}

func codeForStatus(status int) Code {
	for _, c := range Codes {
		if c != CodeInternal && c.HTTPStatus() == status {
			return c
		}
	}
	return CodeInternal
}

// Raw is a request body sent as it is instead of as JSON.
type Raw struct {
	ContentType string
	Data        io.Reader
}

type headersKey struct{}

// WithHeader returns a context whose requests carry an extra header (e.g.
// Idempotency-Key).
func WithHeader(ctx context.Context, k, v string) context.Context {
	h := map[string]string{}
	for a, b := range headersFrom(ctx) {
		h[a] = b
	}
	h[k] = v
	return context.WithValue(ctx, headersKey{}, h)
}

func headersFrom(ctx context.Context) map[string]string {
	h, _ := ctx.Value(headersKey{}).(map[string]string)
	return h
}

// call sends a request and decodes the JSON answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, body any) (*T, error) {
	var out T
	if err := c.Do(ctx, method, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListComputes lists the workspace's compute targets, sorted by name.
func (c *Client) ListComputes(ctx context.Context) ([]Compute, error) {
	var l ComputeList
	err := c.Do(ctx, http.MethodGet, c.wsPath("computes"), nil, &l)
	return l.Items, err
}

// GetCompute returns one compute target.
func (c *Client) GetCompute(ctx context.Context, name string) (*Compute, error) {
	return call[Compute](ctx, c, http.MethodGet, c.wsPath("computes", name), nil)
}

// CreateCompute creates a compute target; it returns as soon as the target
// is stored (provisioning_state Creating). Use WaitCompute to follow it.
func (c *Client) CreateCompute(ctx context.Context, in ComputeCreate) (*Compute, error) {
	return call[Compute](ctx, c, http.MethodPost, c.wsPath("computes"), in)
}

// UpdateCompute changes some properties of a compute target.
func (c *Client) UpdateCompute(ctx context.Context, name string, in ComputeUpdate) (*Compute, error) {
	return call[Compute](ctx, c, http.MethodPatch, c.wsPath("computes", name), in)
}

// DeleteCompute starts deleting a compute target (provisioning_state
// Deleting); the target disappears when its resources are released.
func (c *Client) DeleteCompute(ctx context.Context, name string, force bool) (*Compute, error) {
	path := c.wsPath("computes", name)
	if force {
		path += "?force=true"
	}
	return call[Compute](ctx, c, http.MethodDelete, path, nil)
}

// ListNodes returns a target's nodes.
func (c *Client) ListNodes(ctx context.Context, name string) ([]Node, error) {
	l, err := call[NodeList](ctx, c, http.MethodGet, c.wsPath("computes", name, "nodes"), nil)
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// InstanceAction starts, stops or restarts a compute instance.
func (c *Client) InstanceAction(ctx context.Context, name, action string) (*Compute, error) {
	return call[Compute](ctx, c, http.MethodPost, c.wsPath("computes", name+":"+action), nil)
}

// PreemptNode injects a preemption of a cluster node (admins).
func (c *Client) PreemptNode(ctx context.Context, name, node string) error {
	return c.Do(ctx, http.MethodPost, c.wsPath("computes", name, "nodes", node+":preempt"), nil, nil)
}

// Quotas returns the workspace's core quotas and their use.
func (c *Client) Quotas(ctx context.Context) ([]Quota, error) {
	l, err := call[QuotaList](ctx, c, http.MethodGet, c.wsPath("quotas"), nil)
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// SetQuota changes a quota (admins).
func (c *Client) SetQuota(ctx context.Context, in QuotaSet) (*Quota, error) {
	return call[Quota](ctx, c, http.MethodPut, c.wsPath("quotas"), in)
}

// ListSizes returns the size catalog, and a warning when the admin's
// sizes file is invalid (the last good catalog is listed then).
func (c *Client) ListSizes(ctx context.Context) ([]Size, string, error) {
	var l SizeList
	err := c.Do(ctx, http.MethodGet, c.wsPath("sizes"), nil, &l)
	return l.Items, l.Warning, err
}

// WaitCompute polls a compute target until its provisioning state is
// terminal (or, with gone, until it no longer exists), calling progress on
// every change it sees. It returns the last state seen (nil once gone).
func (c *Client) WaitCompute(ctx context.Context, name string, gone bool, progress func(*Compute)) (*Compute, error) {
	var last ProvisioningState
	poll := backoff.New(20*time.Millisecond, 500*time.Millisecond)
	for {
		cur, err := c.GetCompute(ctx, name)
		if gone && err != nil && isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if cur.ProvisioningState != last && progress != nil {
			progress(cur)
		}
		last = cur.ProvisioningState
		if !gone && cur.ProvisioningState.Terminal() {
			return cur, nil
		}
		if !poll.Wait(ctx) {
			return cur, ctx.Err()
		}
	}
}

func isNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Code == CodeNotFound
}
