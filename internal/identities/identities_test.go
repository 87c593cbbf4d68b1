package identities_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

var (
	admin = authz.Principal{User: "admin", Role: authz.Owner}
	bob   = authz.Principal{User: "bob", Role: authz.Contributor}
)

func newService(t *testing.T) (*identities.Service, *testenv.Clock) {
	t.Helper()
	clk := testenv.NewClock()
	return &identities.Service{Store: testenv.Store(t), Box: testenv.Box(t), Clock: clk}, clk
}

func wantErr(t *testing.T, err error, code api.Code, field string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code || e.Field != field {
		t.Fatalf("err = %v, want %s naming %q", err, code, field)
	}
}

func TestCreateChecks(t *testing.T) {
	t.Parallel()
	s, _ := newService(t)
	tests := []struct {
		desc  string
		in    api.IdentityCreate
		field string
	}{
		{"ok", api.IdentityCreate{Name: "blob-reader", Secrets: map[string]string{"AWS_KEY": "k", "_X1": ""}}, ""},
		{"no secrets", api.IdentityCreate{Name: "empty_one"}, ""},
		{"short name", api.IdentityCreate{Name: "ab"}, "name"},
		{"name with a slash", api.IdentityCreate{Name: "a/b/c"}, "name"},
		{"name starting with a digit", api.IdentityCreate{Name: "1abc"}, "name"},
		{"key with a dash", api.IdentityCreate{Name: "k-dash", Secrets: map[string]string{"AWS-KEY": "k"}}, "secrets"},
		{"key starting with a digit", api.IdentityCreate{Name: "k-digit", Secrets: map[string]string{"1KEY": "k"}}, "secrets"},
		{"NUL in a value", api.IdentityCreate{Name: "k-nul", Secrets: map[string]string{"KEY": "a\x00b"}}, "secrets"},
		{"value too large", api.IdentityCreate{Name: "k-large", Secrets: map[string]string{"KEY": strings.Repeat("x", 64<<10+1)}}, "secrets"},
		{"description too long", api.IdentityCreate{Name: "k-desc", Description: strings.Repeat("d", 1025)}, "description"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := s.Create(t.Context(), "default", bob, tc.in)
			if tc.field != "" {
				wantErr(t, err, api.CodeInvalid, tc.field)
				if _, err := s.Get(t.Context(), "default", tc.in.Name); !errors.Is(err, api.ErrNotFound) {
					t.Fatalf("a refused identity was stored: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(got)
			if strings.Contains(string(raw), `"k"`) || got.CreatedBy != "bob" || len(got.PrincipalID) != 36 {
				t.Fatalf("created %s", raw)
			}
		})
	}
	if _, err := s.Create(t.Context(), "default", admin, api.IdentityCreate{Name: "Blob-Reader"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("duplicate name: err = %v, want Conflict", err)
	}
	reader := authz.Principal{User: "rita", Role: authz.Reader}
	if _, err := s.Create(t.Context(), "default", reader, api.IdentityCreate{Name: "readers-key"}); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("a Reader creating an identity: err = %v, want Forbidden", err)
	}
}

// Secrets are sealed at rest; an update rotates, adds and removes them;
// only the creator and Owners change or delete an identity.
func TestUpdateAndDelete(t *testing.T) {
	t.Parallel()
	s, _ := newService(t)
	ctx := t.Context()
	if _, err := s.Create(ctx, "default", bob, api.IdentityCreate{Name: "bobs-key", Secrets: map[string]string{"A": "1", "B": "2"}}); err != nil {
		t.Fatal(err)
	}
	stored, err := s.Store.GetIdentity(ctx, "default", api.IdentityUserAssigned, "bobs-key")
	if err != nil || strings.Contains(string(stored.Secrets), `"1"`) || len(stored.Secrets) == 0 {
		t.Fatalf("stored secrets are not sealed: %q (%v)", stored.Secrets, err)
	}
	other := authz.Principal{User: "carol", Role: authz.Contributor}
	if _, err := s.Update(ctx, "default", other, "bobs-key", api.IdentityUpdate{Secrets: map[string]string{"A": "x"}}); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("carol changing bob's identity: err = %v, want Forbidden", err)
	}
	got, err := s.Update(ctx, "default", admin, "bobs-key", api.IdentityUpdate{Secrets: map[string]string{"A": "rotated", "C": "3"}, RemoveSecrets: []string{"B"}})
	if err != nil || strings.Join(got.SecretKeys, ",") != "A,C" {
		t.Fatalf("Update = %+v, %v; want keys A,C", got, err)
	}
	_, err = s.Update(ctx, "default", bob, "bobs-key", api.IdentityUpdate{RemoveSecrets: []string{"B"}})
	wantErr(t, err, api.CodeInvalid, "remove_secrets")
	_, err = s.Update(ctx, "default", bob, "bobs-key", api.IdentityUpdate{})
	wantErr(t, err, api.CodeInvalid, "secrets")
	if err := s.Delete(ctx, "default", other, "bobs-key"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("carol deleting bob's identity: err = %v, want Forbidden", err)
	}
	if err := s.Delete(ctx, "default", bob, "bobs-key"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "default", bob, "bobs-key"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("deleting it again: err = %v, want NotFound", err)
	}
}

// credFixture: a cluster with a user-assigned identity and a run on node
// n1 holding it.
type credFixture struct {
	t   *testing.T
	s   *identities.Service
	clk *testenv.Clock
	run store.Run
	n1  store.Node
}

func newCredFixture(t *testing.T) *credFixture {
	t.Helper()
	s, clk := newService(t)
	ctx := t.Context()
	if _, err := s.Create(ctx, "default", admin, api.IdentityCreate{Name: "blob-reader", Secrets: map[string]string{"TOKEN": "s3cret"}}); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	if err := s.Store.CreateCompute(ctx, store.Compute{Workspace: "default", Name: "cpu", Type: "cluster", State: api.StateSucceeded,
		CreatedBy: "admin", CreatedAt: now, UpdatedAt: now, Version: 1,
		Properties: json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":2,"identity_type":"UserAssigned","identity_id":["blob-reader"]}`)}); err != nil {
		t.Fatal(err)
	}
	f := &credFixture{t: t, s: s, clk: clk, n1: store.Node{ID: "n1", Workspace: "default", Compute: "cpu"}}
	f.run = store.Run{Workspace: "default", Seq: 1, Node: "n1", Run: api.Run{ID: "run-1", Compute: "cpu", Status: api.RunRunning,
		Attempt: 1, CreatedBy: "bob", CreatedAt: now, MaxRunDurationSeconds: 3600,
		IdentityType: api.IdentityUserAssigned, Identities: []string{"blob-reader"},
		Attempts: []api.Attempt{{Number: 1, Node: "n1", Status: api.RunRunning, StartedAt: &now}}}}
	f.save()
	return f
}

func (f *credFixture) save() {
	f.t.Helper()
	if err := f.s.Store.SaveBatch(f.t.Context(), []store.Run{f.run}, nil, nil); err != nil {
		f.t.Fatal(err)
	}
}

func TestCredential(t *testing.T) {
	t.Parallel()
	f := newCredFixture(t)
	ctx := t.Context()
	cred, err := f.s.Credential(ctx, f.n1, "run-1", 1, "Blob-Reader")
	if err != nil {
		t.Fatal(err)
	}
	if cred.Secrets["TOKEN"] != "s3cret" || cred.Identity != "blob-reader" || !strings.HasPrefix(cred.Token, identities.TokenPrefix) {
		t.Fatalf("credential = %+v", cred)
	}
	if want := f.clk.Now().Add(identities.CredentialTTL).Truncate(time.Second); !cred.ExpiresOn.Equal(want) {
		t.Fatalf("expires %s, want %s (the TTL)", cred.ExpiresOn, want)
	}
	info, err := f.s.TokenInfo(ctx, cred.Token)
	if err != nil || info.RunID != "run-1" || info.User != "bob" || info.PrincipalID != cred.PrincipalID || info.Compute != "cpu" {
		t.Fatalf("TokenInfo = %+v, %v", info, err)
	}

	// Refused: another node, another attempt, an identity the run lacks.
	if _, err := f.s.Credential(ctx, store.Node{ID: "n2", Workspace: "default"}, "run-1", 1, "blob-reader"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("from another node: err = %v, want Conflict", err)
	}
	if _, err := f.s.Credential(ctx, f.n1, "run-1", 2, "blob-reader"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("for another attempt: err = %v, want Conflict", err)
	}
	if _, err := f.s.Credential(ctx, f.n1, "run-1", 1, "other-key"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("an identity the run does not hold: err = %v, want Forbidden", err)
	}
	// A forged or tampered token is refused.
	if _, err := f.s.TokenInfo(ctx, cred.Token+"x"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("tampered token: err = %v", err)
	}

	// A credential never outlives the attempt's max_run_duration.
	f.clk.Advance(3590 * time.Second)
	cred2, err := f.s.Credential(ctx, f.n1, "run-1", 1, "blob-reader")
	if err != nil || !cred2.ExpiresOn.Equal(f.run.Attempts[0].StartedAt.Add(3600*time.Second)) {
		t.Fatalf("late credential expires %s (%v), want at the attempt's end", cred2.ExpiresOn, err)
	}
	f.clk.Advance(11 * time.Second)
	if _, err := f.s.TokenInfo(ctx, cred2.Token); !errors.Is(err, api.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: err = %v", err)
	}

}

// Once the attempt ends, both the credential and its token are refused.
func TestCredentialEndsWithTheAttempt(t *testing.T) {
	t.Parallel()
	f := newCredFixture(t)
	ctx := t.Context()
	cred, err := f.s.Credential(ctx, f.n1, "run-1", 1, "blob-reader")
	if err != nil {
		t.Fatal(err)
	}
	ended := f.clk.Now()
	f.run.Status, f.run.EndedAt, f.run.Node = api.RunCompleted, &ended, ""
	f.save()
	if _, err := f.s.Credential(ctx, f.n1, "run-1", 1, "blob-reader"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("after the run ended: err = %v, want Conflict", err)
	}
	if _, err := f.s.TokenInfo(ctx, cred.Token); !errors.Is(err, api.ErrUnauthenticated) || !strings.Contains(err.Error(), "no longer active") {
		t.Fatalf("token after the run ended: err = %v, want Unauthenticated", err)
	}
}

// Removing an identity from the target revokes it for runs already
// running, though they were submitted with it.
func TestCredentialRevokedWithTheTarget(t *testing.T) {
	t.Parallel()
	f := newCredFixture(t)
	ctx := t.Context()
	cred, err := f.s.Credential(ctx, f.n1, "run-1", 1, "blob-reader")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := f.s.Store.GetCompute(ctx, "default", "cpu")
	rec.Properties = json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":2,"identity_type":"None"}`)
	if err := f.s.Store.UpdateCompute(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Credential(ctx, f.n1, "run-1", 1, "blob-reader"); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "no longer assigned") {
		t.Fatalf("after the identity was removed: err = %v, want Forbidden", err)
	}
	if _, err := f.s.TokenInfo(ctx, cred.Token); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("token after the identity was removed: err = %v", err)
	}
}
