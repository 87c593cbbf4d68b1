package identities

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// Credential issues a credential of one identity for an attempt, to the
// agent of a node the attempt runs on. It is refused with a conflict when
// the attempt is not current on that node (it ended: the agent's endpoint
// refuses too), and as forbidden when the run does not hold the identity
// now: it was not its target's when the run was submitted, or the target
// no longer assigns it.
func (s *Service) Credential(ctx context.Context, node store.Node, runID string, attempt int, name string) (api.IdentityCredential, error) {
	run, err := s.Store.GetRun(ctx, node.Workspace, runID)
	if err != nil {
		return api.IdentityCredential{}, err
	}
	if run.Attempt != attempt || run.Rank(node.ID) < 0 || run.Status.Terminal() {
		return api.IdentityCredential{}, api.Conflict("attempt %d of run %s is no longer current", attempt, runID)
	}
	id, err := s.held(ctx, run, name)
	if err != nil {
		return api.IdentityCredential{}, err
	}
	secrets, err := s.Box.OpenMap(id.Secrets, secretsAD(id.Workspace, id.Type, id.Name))
	if err != nil {
		return api.IdentityCredential{}, err
	}
	now := s.now()
	expires := now.Add(CredentialTTL)
	if end := attemptEnd(run, now); !end.IsZero() && end.Before(expires) {
		expires = end
	}
	expires = expires.Truncate(time.Second)
	out := api.IdentityCredential{Identity: id.Name, Type: id.Type, PrincipalID: id.PrincipalID, ExpiresOn: expires,
		Secrets: make(map[string]string, len(secrets)),
		Token: s.token(claims{Workspace: run.Workspace, RunID: run.ID, Attempt: run.Attempt, Identity: id.Name,
			Type: id.Type, Expires: expires.Unix()})}
	for k, v := range secrets {
		out.Secrets[k] = v.Reveal()
	}
	return out, nil
}

// attemptEnd is when the run's current attempt is stopped at the latest
// (its max_run_duration_seconds after it started), or zero.
func attemptEnd(run store.Run, now time.Time) time.Time {
	if run.MaxRunDurationSeconds <= 0 {
		return time.Time{}
	}
	start := now
	if n := len(run.Attempts); n > 0 && run.Attempts[n-1].StartedAt != nil {
		start = *run.Attempts[n-1].StartedAt
	}
	return start.Add(time.Duration(run.MaxRunDurationSeconds) * time.Second)
}

// held returns the identity if the run holds it now: it was its target's
// when the run was submitted, and the target still assigns it.
func (s *Service) held(ctx context.Context, run store.Run, name string) (store.Identity, error) {
	if !containsFold(run.Identities, name) {
		holds := "none"
		if len(run.Identities) > 0 {
			holds = strings.Join(run.Identities, ", ")
		}
		return store.Identity{}, api.Forbidden("run %s does not hold identity %q (it holds %s)", run.ID, name, holds)
	}
	rec, err := s.Store.GetCompute(ctx, run.Workspace, run.Compute)
	if errors.Is(err, api.ErrNotFound) {
		return store.Identity{}, api.Forbidden("identity %s is no longer assigned: compute target %s is gone", name, run.Compute)
	}
	if err != nil {
		return store.Identity{}, err
	}
	typ, names := ForRun(rec)
	if rec.State == api.StateDeleting || typ != run.IdentityType || !containsFold(names, name) {
		return store.Identity{}, api.Forbidden("identity %s is no longer assigned to compute target %s", name, rec.Name)
	}
	id, err := s.Store.GetIdentity(ctx, run.Workspace, typ, name)
	if errors.Is(err, api.ErrNotFound) {
		return store.Identity{}, api.Forbidden("identity %s no longer exists", name)
	}
	return id, err
}

// TokenInfo says what an identity token stands for while it is good: its
// signature holds, it has not expired, its attempt is current and the run
// still holds the identity. Anything else is ErrUnauthenticated.
func (s *Service) TokenInfo(ctx context.Context, tok string) (api.IdentityTokenInfo, error) {
	c, ok := s.parseToken(tok)
	if !ok {
		return api.IdentityTokenInfo{}, unauthenticated("the identity token is not valid for this server")
	}
	expires := time.Unix(c.Expires, 0).UTC()
	if !s.now().Before(expires) {
		return api.IdentityTokenInfo{}, unauthenticated("the identity token has expired; the run asks its identity endpoint for a new one")
	}
	run, err := s.Store.GetRun(ctx, c.Workspace, c.RunID)
	if errors.Is(err, api.ErrNotFound) || err == nil && (run.Attempt != c.Attempt || run.Status.Terminal()) {
		return api.IdentityTokenInfo{}, unauthenticated("the identity token has expired: its run attempt is no longer active")
	}
	if err != nil {
		return api.IdentityTokenInfo{}, err
	}
	id, err := s.held(ctx, run, c.Identity)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeForbidden {
		return api.IdentityTokenInfo{}, unauthenticated("the identity token is no longer good: " + ae.Message)
	}
	if err != nil {
		return api.IdentityTokenInfo{}, err
	}
	return api.IdentityTokenInfo{Identity: id.Name, Type: id.Type, PrincipalID: id.PrincipalID, Workspace: run.Workspace,
		Compute: run.Compute, RunID: run.ID, Attempt: run.Attempt, User: run.CreatedBy, ExpiresOn: expires}, nil
}

func unauthenticated(msg string) error {
	return &api.Error{Code: api.CodeUnauthenticated, Message: msg}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
