package api

import (
	"context"
	"net/http"
	"time"
)

// Identity types: how a compute target comes to hold an identity (Azure
// ML's managed identities). A UserAssigned identity is made by a user
// (`paddock identity create`) and named in a cluster's identity_id; a
// SystemAssigned one belongs to one cluster, made and deleted with it.
const (
	IdentityUserAssigned   = "UserAssigned"
	IdentitySystemAssigned = "SystemAssigned"
)

// Identity is a workspace's identity as the API returns it: never its
// secrets' values, only their keys.
type Identity struct {
	Name string `json:"name"`
	Type string `json:"type"` // UserAssigned or SystemAssigned
	// PrincipalID is the identity's stable id (a UUID): what a service
	// that checks identity tokens records and grants rights to.
	PrincipalID string `json:"principal_id"`
	// Compute is the cluster a SystemAssigned identity belongs to.
	Compute     string `json:"compute,omitempty"`
	Description string `json:"description,omitempty"`
	// SecretKeys names the identity's secrets (their values are never
	// returned).
	SecretKeys []string `json:"secret_keys"`
	// UsedBy lists the compute targets that assign the identity to their
	// runs.
	UsedBy    []string  `json:"used_by"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// IdentityCreate is the body of POST .../identities. Secrets are write-only
// KEY=VALUE pairs a run holding the identity receives.
type IdentityCreate struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Secrets     map[string]string `json:"secrets,omitempty"`
}

// IdentityUpdate is the body of PATCH .../identities/{name}: secrets to
// set (added, or replacing a value: rotation), keys to remove, and a new
// description. Runs that ask for the identity afterwards get the new
// values.
type IdentityUpdate struct {
	Description   *string           `json:"description,omitempty"`
	Secrets       map[string]string `json:"secrets,omitempty"`
	RemoveSecrets []string          `json:"remove_secrets,omitempty"`
}

// IdentityList is the body of GET .../identities.
type IdentityList struct {
	Items []Identity `json:"items"`
}

// IdentityCredential is what a run gets from its identity endpoint
// (PADDOCK_IDENTITY_ENDPOINT), and its agent from the server: the
// identity's secrets and a token naming the identity and the run's
// attempt. Both are good until ExpiresOn at most, and only while the
// attempt runs: ask again after that.
type IdentityCredential struct {
	Identity    string `json:"identity"`
	Type        string `json:"type"`
	PrincipalID string `json:"principal_id"`
	// Token (pdi_…) proves the identity to a service that asks the server
	// (GET /api/v1/identity/token); it stops working when the attempt ends.
	Token     string            `json:"token"`
	ExpiresOn time.Time         `json:"expires_on"`
	Secrets   map[string]string `json:"secrets"`
}

// IdentityTokenInfo is the answer to GET /api/v1/identity/token: what an
// identity token (sent as the bearer token) stands for, while it is good.
type IdentityTokenInfo struct {
	Identity    string    `json:"identity"`
	Type        string    `json:"type"`
	PrincipalID string    `json:"principal_id"`
	Workspace   string    `json:"workspace"`
	Compute     string    `json:"compute"`
	RunID       string    `json:"run_id"`
	Attempt     int       `json:"attempt"`
	User        string    `json:"user"` // who submitted the run
	ExpiresOn   time.Time `json:"expires_on"`
}

// AgentIdentityRequest is the body of an agent's request for a credential
// of one identity of one of its attempts.
type AgentIdentityRequest struct {
	Identity string `json:"identity"`
}

// ComputeIdentity is a compute target's managed identity, as `compute
// show` reports it (Azure ML's compute `identity`).
type ComputeIdentity struct {
	Type string `json:"type"` // SystemAssigned or UserAssigned
	// PrincipalID is the SystemAssigned identity's.
	PrincipalID string `json:"principal_id,omitempty"`
	// UserAssignedIdentities are the UserAssigned identities, each with
	// its principal id.
	UserAssignedIdentities []ComputeUserIdentity `json:"user_assigned_identities,omitempty"`
}

// ComputeUserIdentity is one identity of a target's identity_id.
type ComputeUserIdentity struct {
	Name        string `json:"name"`
	PrincipalID string `json:"principal_id"`
}

// ListIdentities lists the workspace's identities, both kinds.
func (c *Client) ListIdentities(ctx context.Context) ([]Identity, error) {
	l, err := call[IdentityList](ctx, c, http.MethodGet, c.wsPath("identities"), nil)
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// GetIdentity returns one user-assigned identity (SystemAssigned ones are
// named after their cluster and listed by ListIdentities).
func (c *Client) GetIdentity(ctx context.Context, name string) (*Identity, error) {
	return call[Identity](ctx, c, http.MethodGet, c.wsPath("identities", name), nil)
}

// CreateIdentity makes a user-assigned identity with its secrets.
func (c *Client) CreateIdentity(ctx context.Context, in IdentityCreate) (*Identity, error) {
	return call[Identity](ctx, c, http.MethodPost, c.wsPath("identities"), in)
}

// UpdateIdentity sets or removes secrets of a user-assigned identity, or
// changes its description.
func (c *Client) UpdateIdentity(ctx context.Context, name string, in IdentityUpdate) (*Identity, error) {
	return call[Identity](ctx, c, http.MethodPatch, c.wsPath("identities", name), in)
}

// DeleteIdentity deletes a user-assigned identity; the server refuses
// (ErrConflict) while a compute target names it.
func (c *Client) DeleteIdentity(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, c.wsPath("identities", name), nil, nil)
}

// IdentityCredential asks the server for a credential of one identity of
// one of the node's attempts. The server answers ErrConflict when the
// attempt is no longer current on this node and ErrForbidden when the
// run does not hold that identity (any more).
func (c *AgentClient) IdentityCredential(ctx context.Context, ref AttemptRef, identity string) (IdentityCredential, error) {
	var out IdentityCredential
	err := c.Do(ctx, http.MethodPost, attemptPath(ref, "identity"), AgentIdentityRequest{Identity: identity}, &out)
	return out, err
}

// IdentityTokenPath is the route a service calls, with an identity token
// as its bearer token, to learn what the token stands for.
const IdentityTokenPath = "/api/v1/identity/token"
