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
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/backoff"
)

// Client talks to one Paddock server as one user in one workspace.
type Client struct {
	Server    string // e.g. http://127.0.0.1:8765
	Token     string
	Workspace string
	HTTP      *http.Client
}

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
// a server that cannot be reached comes back as CodeUnavailable.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	contentType := "application/json"
	if raw, ok := body.(Raw); ok {
		rd, contentType = raw.Data, raw.ContentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return Invalid("server", "server URL %q is not valid: %v", c.Server, err)
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
		return unreachable(c.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Unavailable("reading the response from %s: %v", c.Server, err)
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
			return eb.Error
		}
		if resp.StatusCode == http.StatusBadRequest && bytes.Contains(data, []byte(httpToHTTPS)) {
			return plainToTLS(c.Server)
		}
		return &Error{Code: codeForStatus(resp.StatusCode), Message: fmt.Sprintf("server answered %s", resp.Status)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the response of %s %s: %w", method, path, err)
		}
	}
	return nil
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
