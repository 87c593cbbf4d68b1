// Package identities is a workspace's managed identities (Azure ML's
// managed identities, made for runs): named sets of secrets a compute
// target hands to the runs it runs, and the short-lived credentials those
// runs get.
//
// A UserAssigned identity is made by a user (`paddock identity create NAME
// --secret KEY=@FILE`) and named in a cluster's identity_id; a
// SystemAssigned one belongs to one cluster, is made with it (or when it
// is given one) and deleted with it, and holds no secrets: its credential
// is its token. Secrets are sealed with the server's secret.Box and only
// ever leave the server in a credential, to the agent of a node that runs
// an attempt holding the identity, which serves it to that run alone.
//
//	run ──GET PADDOCK_IDENTITY_ENDPOINT (bearer PADDOCK_IDENTITY_TOKEN)──► its node's agent
//	agent ──POST /api/v1/agent/runs/{id}/attempts/{n}/identity (node token)──► Credential
//	service ──GET /api/v1/identity/token (bearer pdi_… from a credential)──► TokenInfo
//
// Every credential is checked against the present: the attempt is current
// on that node, the run holds the identity, and its target still assigns
// it; it is good for CredentialTTL at most and never past the attempt.
package identities

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
)

// CredentialTTL is the longest a credential is good for; runs ask again
// (their agent does, on each request).
const CredentialTTL = 15 * time.Minute

// TokenPrefix starts an identity token.
const TokenPrefix = "pdi_"

// Limits of an identity's secrets (documented in docs/security.md).
const (
	maxSecrets      = 64
	maxSecretKey    = 128
	maxSecretValue  = 64 << 10
	maxDescription  = 1024
	secretsADPrefix = "identity/"
)

var secretKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Service performs identity operations.
type Service struct {
	Store store.Store
	Box   *secret.Box
	// Clock stamps changes and times credentials (default clock.Real).
	Clock clock.Clock
}

func (s *Service) now() time.Time { return clock.Or(s.Clock).Now() }

// secretsAD binds an identity's sealed secrets to it.
func secretsAD(ws, typ, name string) []byte {
	return []byte(secretsADPrefix + ws + "/" + typ + "/" + strings.ToLower(name))
}

// newPrincipalID returns a random UUID (version 4).
func newPrincipalID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// mayChange checks that p may change or delete an identity, or assign it
// to a target: its creator and Owners (those who may hand out its
// secrets; authz.WriteIdentity).
func mayChange(p authz.Principal, id store.Identity) error {
	return p.Check(authz.WriteIdentity, "identity "+id.Name, id.CreatedBy)
}

// Create makes a user-assigned identity with its secrets; p becomes its
// creator.
func (s *Service) Create(ctx context.Context, ws string, p authz.Principal, in api.IdentityCreate) (api.Identity, error) {
	if err := p.Allow(authz.WriteIdentity); err != nil {
		return api.Identity{}, err
	}
	if !compute.IdentityName.MatchString(in.Name) {
		return api.Identity{}, api.Invalid("name", "identity name %q must be 3 to 64 letters, digits, '-' or '_', starting with a letter", in.Name)
	}
	if err := checkDescription(in.Description); err != nil {
		return api.Identity{}, err
	}
	secrets, err := checkSecrets(in.Secrets, nil)
	if err != nil {
		return api.Identity{}, err
	}
	sealed, err := s.Box.SealMap(secrets, secretsAD(ws, api.IdentityUserAssigned, in.Name))
	if err != nil {
		return api.Identity{}, err
	}
	now := s.now()
	id := store.Identity{Workspace: ws, Name: in.Name, Type: api.IdentityUserAssigned, PrincipalID: newPrincipalID(),
		Description: in.Description, CreatedBy: p.User, CreatedAt: now, UpdatedAt: now,
		Secrets: sealed, SecretKeys: keysOf(secrets), Version: 1}
	if err := s.Store.CreateIdentity(ctx, id); err != nil {
		return api.Identity{}, err
	}
	return toAPI(id, nil), nil
}

// Get returns one user-assigned identity and the targets that use it.
func (s *Service) Get(ctx context.Context, ws, name string) (api.Identity, error) {
	id, err := s.Store.GetIdentity(ctx, ws, api.IdentityUserAssigned, name)
	if err != nil {
		return api.Identity{}, err
	}
	users, err := s.usedBy(ctx, ws)
	if err != nil {
		return api.Identity{}, err
	}
	return toAPI(id, users[strings.ToLower(id.Name)]), nil
}

// List returns the workspace's identities, user-assigned first; a
// system-assigned identity is listed while its cluster holds it.
func (s *Service) List(ctx context.Context, ws string) ([]api.Identity, error) {
	ids, err := s.Store.ListIdentities(ctx, ws)
	if err != nil {
		return nil, err
	}
	users, err := s.usedBy(ctx, ws)
	if err != nil {
		return nil, err
	}
	targets, err := s.Store.ListComputes(ctx, ws)
	if err != nil {
		return nil, err
	}
	out := make([]api.Identity, 0, len(ids))
	for _, id := range ids {
		if id.Type == api.IdentitySystemAssigned {
			if !holdsSystem(targets, id) {
				continue // left by a failed change; replaced or removed with its cluster
			}
			out = append(out, toAPI(id, []string{id.Target}))
			continue
		}
		out = append(out, toAPI(id, users[strings.ToLower(id.Name)]))
	}
	return out, nil
}

// holdsSystem reports whether a system-assigned identity's cluster exists
// and has identity_type SystemAssigned.
func holdsSystem(targets []store.Compute, id store.Identity) bool {
	for _, t := range targets {
		if strings.EqualFold(t.Name, id.Target) {
			typ, _ := compute.IdentityOf(t)
			return typ == api.IdentitySystemAssigned && t.State != api.StateDeleting
		}
	}
	return false
}

// usedBy maps each user-assigned identity (lower-case name) to the targets
// that name it in identity_id.
func (s *Service) usedBy(ctx context.Context, ws string) (map[string][]string, error) {
	targets, err := s.Store.ListComputes(ctx, ws)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, t := range targets {
		typ, names := compute.IdentityOf(t)
		if typ != api.IdentityUserAssigned {
			continue
		}
		for _, n := range names {
			out[strings.ToLower(n)] = append(out[strings.ToLower(n)], t.Name)
		}
	}
	return out, nil
}

// Update sets or removes secrets of a user-assigned identity, or changes
// its description (its creator and Owners). Runs that ask for a
// credential afterwards get the new values.
func (s *Service) Update(ctx context.Context, ws string, p authz.Principal, name string, in api.IdentityUpdate) (api.Identity, error) {
	if in.Description == nil && len(in.Secrets) == 0 && len(in.RemoveSecrets) == 0 {
		return api.Identity{}, api.Invalid("secrets", "nothing to change: give secrets to set, remove_secrets or a description")
	}
	for attempt := 1; ; attempt++ {
		out, err := s.update(ctx, ws, p, name, in)
		if !errors.Is(err, api.ErrConflict) || attempt == 5 {
			return out, err
		}
	}
}

func (s *Service) update(ctx context.Context, ws string, p authz.Principal, name string, in api.IdentityUpdate) (api.Identity, error) {
	id, err := s.Store.GetIdentity(ctx, ws, api.IdentityUserAssigned, name)
	if err != nil {
		return api.Identity{}, err
	}
	if err := mayChange(p, id); err != nil {
		return api.Identity{}, err
	}
	if in.Description != nil {
		if err := checkDescription(*in.Description); err != nil {
			return api.Identity{}, err
		}
		id.Description = *in.Description
	}
	ad := secretsAD(ws, id.Type, id.Name)
	current, err := s.Box.OpenMap(id.Secrets, ad)
	if err != nil {
		return api.Identity{}, err
	}
	for _, k := range in.RemoveSecrets {
		if _, ok := current[k]; !ok {
			return api.Identity{}, api.Invalid("remove_secrets", "identity %s has no secret %q to remove (it has %s)", id.Name, k, keyList(keysOf(current)))
		}
		if _, set := in.Secrets[k]; set {
			return api.Identity{}, api.Invalid("remove_secrets", "secret %q is both set and removed; give it once", k)
		}
		delete(current, k)
	}
	next, err := checkSecrets(in.Secrets, current)
	if err != nil {
		return api.Identity{}, err
	}
	if id.Secrets, err = s.Box.SealMap(next, ad); err != nil {
		return api.Identity{}, err
	}
	id.SecretKeys, id.UpdatedAt = keysOf(next), s.now()
	if err := s.Store.UpdateIdentity(ctx, &id); err != nil {
		return api.Identity{}, err
	}
	users, err := s.usedBy(ctx, ws)
	if err != nil {
		return api.Identity{}, err
	}
	return toAPI(id, users[strings.ToLower(id.Name)]), nil
}

// Delete deletes a user-assigned identity (its creator and Owners). One a
// compute target names in identity_id is refused with a conflict naming
// the targets: remove it from them first.
func (s *Service) Delete(ctx context.Context, ws string, p authz.Principal, name string) error {
	id, err := s.Store.GetIdentity(ctx, ws, api.IdentityUserAssigned, name)
	if err != nil {
		return err
	}
	if err := mayChange(p, id); err != nil {
		return err
	}
	users, err := s.usedBy(ctx, ws)
	if err != nil {
		return err
	}
	if targets := users[strings.ToLower(id.Name)]; len(targets) > 0 {
		return api.Conflict("identity %s is in use by compute target %s; remove it from their identity_id first (`paddock compute update NAME --identity-type None`)",
			id.Name, strings.Join(targets, ", "))
	}
	return s.Store.DeleteIdentity(ctx, ws, api.IdentityUserAssigned, id.Name)
}

// Lookup finds a user-assigned identity for a cluster's identity_id and
// returns its name as stored (compute.Env.Identity).
func (s *Service) Lookup(ctx context.Context, ws, name string) (string, error) {
	id, err := s.Store.GetIdentity(ctx, ws, api.IdentityUserAssigned, name)
	return id.Name, err
}

// MayAssign checks that p may give these user-assigned identities to a
// compute target: each one's creator and Owners may. Giving an identity to
// a target gives its secrets to everyone who may run there.
func (s *Service) MayAssign(ctx context.Context, ws string, p authz.Principal, names []string) error {
	for _, n := range names {
		id, err := s.Store.GetIdentity(ctx, ws, api.IdentityUserAssigned, n)
		if err != nil {
			return err
		}
		if err := mayChange(p, id); err != nil {
			return &api.Error{Code: api.CodeForbidden, Field: "identity_id",
				Message: fmt.Sprintf("identity_id: identity %s was made by %s; only they and Owners may assign it to a compute target", id.Name, id.CreatedBy)}
		}
	}
	return nil
}

// EnsureSystem makes the system-assigned identity of a cluster, replacing
// one left by a failed change (a new principal id, as a cluster given an
// identity again gets in Azure). undo removes it again.
func (s *Service) EnsureSystem(ctx context.Context, ws, target, by string) (undo func(), err error) {
	if err := s.Store.DeleteIdentity(ctx, ws, api.IdentitySystemAssigned, target); err != nil {
		return nil, err
	}
	now := s.now()
	id := store.Identity{Workspace: ws, Name: target, Type: api.IdentitySystemAssigned, PrincipalID: newPrincipalID(),
		Target: target, CreatedBy: by, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := s.Store.CreateIdentity(ctx, id); err != nil {
		return nil, err
	}
	return func() { s.DropSystem(context.WithoutCancel(ctx), ws, target) }, nil
}

// DropSystem deletes a cluster's system-assigned identity (it was deleted,
// or given another identity type).
func (s *Service) DropSystem(ctx context.Context, ws, target string) error {
	return s.Store.DeleteIdentity(ctx, ws, api.IdentitySystemAssigned, target)
}

// OfTarget is a target's identity as `compute show` reports it, with the
// principal ids; nil for a target without one.
func (s *Service) OfTarget(ctx context.Context, rec store.Compute) (*api.ComputeIdentity, error) {
	typ, names := compute.IdentityOf(rec)
	switch typ {
	case api.IdentitySystemAssigned:
		id, err := s.Store.GetIdentity(ctx, rec.Workspace, typ, rec.Name)
		if errors.Is(err, api.ErrNotFound) {
			return &api.ComputeIdentity{Type: typ}, nil
		}
		return &api.ComputeIdentity{Type: typ, PrincipalID: id.PrincipalID}, err
	case api.IdentityUserAssigned:
		out := &api.ComputeIdentity{Type: typ}
		for _, n := range names {
			id, err := s.Store.GetIdentity(ctx, rec.Workspace, typ, n)
			if err != nil && !errors.Is(err, api.ErrNotFound) {
				return nil, err
			}
			out.UserAssignedIdentities = append(out.UserAssignedIdentities, api.ComputeUserIdentity{Name: n, PrincipalID: id.PrincipalID})
		}
		return out, nil
	}
	return nil, nil
}

// ForRun returns the identities a run submitted to rec holds: the
// target's identity type and names (the cluster's own name for its
// system-assigned identity); none for a target without.
func ForRun(rec store.Compute) (typ string, names []string) {
	typ, names = compute.IdentityOf(rec)
	switch typ {
	case api.IdentitySystemAssigned:
		return typ, []string{rec.Name}
	case api.IdentityUserAssigned:
		return typ, slices.Clone(names)
	}
	return "", nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxDescription || strings.ContainsRune(d, 0) {
		return api.Invalid("description", "description must be at most %d characters without NUL bytes", maxDescription)
	}
	return nil
}

// checkSecrets checks secrets to set and returns them over base (which it
// changes).
func checkSecrets(in map[string]string, base map[string]secret.Value) (map[string]secret.Value, error) {
	if base == nil {
		base = map[string]secret.Value{}
	}
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := in[k]
		switch {
		case !secretKey.MatchString(k) || len(k) > maxSecretKey:
			return nil, api.Invalid("secrets", "secret key %q must be 1 to %d letters, digits and '_', not starting with a digit (it names the secret, like an environment variable)", k, maxSecretKey)
		case len(v) > maxSecretValue:
			return nil, api.Invalid("secrets", "the value of secret %s is larger than %d KiB", k, maxSecretValue>>10)
		case strings.ContainsRune(v, 0):
			return nil, api.Invalid("secrets", "the value of secret %s contains a NUL byte", k)
		}
		base[k] = secret.New(v)
	}
	if len(base) > maxSecrets {
		return nil, api.Invalid("secrets", "an identity holds at most %d secrets, not %d", maxSecrets, len(base))
	}
	return base, nil
}

func keysOf(m map[string]secret.Value) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func keyList(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

func toAPI(id store.Identity, usedBy []string) api.Identity {
	if usedBy == nil {
		usedBy = []string{}
	}
	keys := id.SecretKeys
	if keys == nil {
		keys = []string{}
	}
	return api.Identity{Name: id.Name, Type: id.Type, PrincipalID: id.PrincipalID, Compute: id.Target,
		Description: id.Description, SecretKeys: keys, UsedBy: usedBy, CreatedBy: id.CreatedBy,
		CreatedAt: id.CreatedAt, UpdatedAt: id.UpdatedAt}
}

// claims is what an identity token says; it is signed, not stored.
type claims struct {
	Workspace string `json:"ws"`
	RunID     string `json:"run"`
	Attempt   int    `json:"n"`
	Identity  string `json:"id"`
	Type      string `json:"t"`
	Expires   int64  `json:"exp"` // unix seconds
}

// token signs claims: pdi_<base64url(JSON)>.<MAC>.
func (s *Service) token(c claims) string {
	body, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(body)
	return TokenPrefix + payload + "." + s.Box.Sign("identity-token", payload)
}

// parseToken checks a token's signature and returns its claims.
func (s *Service) parseToken(tok string) (claims, bool) {
	var c claims
	body, ok := strings.CutPrefix(tok, TokenPrefix)
	payload, sig, ok2 := strings.Cut(body, ".")
	if !ok || !ok2 || !s.Box.Verify(sig, "identity-token", payload) {
		return c, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return c, false
	}
	return c, true
}
