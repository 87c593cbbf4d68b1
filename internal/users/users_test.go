package users_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
	"github.com/paddock-ml/paddock/internal/users"
)

// countingStore counts token reads, to see the cache at work.
type countingStore struct {
	store.Store
	reads atomic.Int64 // servers redeem concurrently in the sign-in tests
}

func (c *countingStore) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	c.reads.Add(1)
	return c.Store.TokenByHash(ctx, hash)
}

type fixture struct {
	clock *testenv.Clock
	st    *countingStore
	svc   *users.Service
	other *users.Service // a second server on the same database
}

func newFixture(t *testing.T) *fixture {
	st := &countingStore{Store: testenv.Store(t)}
	clk := testenv.NewClock()
	return &fixture{clock: clk, st: st, svc: &users.Service{Store: st, Clock: clk}, other: &users.Service{Store: st, Clock: clk}}
}

func wantUnauthenticated(t *testing.T, err error, says string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeUnauthenticated || !strings.Contains(e.Message, says) {
		t.Fatalf("err = %v, want Unauthenticated saying %q", err, says)
	}
}

// Authentication reads the store once per CacheFor; a token revoked on
// this server stops at once, one revoked by another server within 1 s.
func TestRevocationIsHonouredWithinASecond(t *testing.T) {
	f := newFixture(t)
	u, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo"})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := f.svc.Authenticate(t.Context(), u.Token); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.st.reads.Load(); n != 1 {
		t.Fatalf("100 authentications read the store %d times, want 1", n)
	}
	id, _ := f.other.Authenticate(t.Context(), u.Token)
	if _, err := f.other.Revoke(t.Context(), id, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.other.Authenticate(t.Context(), u.Token); err == nil {
		t.Fatal("the revoking server still accepts the token")
	}
	f.clock.Advance(999 * time.Millisecond)
	if _, err := f.svc.Authenticate(t.Context(), u.Token); err != nil {
		t.Fatalf("within the cache's second: %v", err) // allowed, not required
	}
	f.clock.Advance(time.Millisecond)
	_, err = f.svc.Authenticate(t.Context(), u.Token)
	wantUnauthenticated(t, err, "was revoked")
}

func TestExpiryAndRotation(t *testing.T) {
	f := newFixture(t)
	u, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.svc.Authenticate(t.Context(), u.Token)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := f.svc.CreateToken(t.Context(), id, api.TokenCreate{Name: "ci", ExpiresInSeconds: 60})
	if err != nil || ci.Token == "" || ci.ExpiresAt == nil {
		t.Fatalf("CreateToken = %+v, %v", ci, err)
	}
	if _, err := f.svc.CreateToken(t.Context(), id, api.TokenCreate{Name: "ci"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a second live ci token: %v", err)
	}
	for _, bad := range []api.TokenCreate{{Name: "Bad Name"}, {Name: "x", ExpiresInSeconds: -1}, {Name: "y", ExpiresInSeconds: 1 << 40}} {
		if _, err := f.svc.CreateToken(t.Context(), id, bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("CreateToken(%+v): %v, want Invalid", bad, err)
		}
	}
	f.clock.Advance(59 * time.Second)
	ciID, err := f.svc.Authenticate(t.Context(), ci.Token)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	_, err = f.svc.Authenticate(t.Context(), ci.Token)
	wantUnauthenticated(t, err, "expired")

	// Rotating keeps the name and lifetime; the old token is refused.
	next, err := f.svc.Rotate(t.Context(), ciID)
	if err != nil || next.Name != "ci" || next.ExpiresAt == nil || next.ExpiresAt.Sub(next.CreatedAt) != time.Minute {
		t.Fatalf("Rotate = %+v, %v", next, err)
	}
	if _, err := f.svc.Authenticate(t.Context(), next.Token); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(t.Context(), ci.Token)
	wantUnauthenticated(t, err, "revoked")

	// Last use is stored by FlushUsage and listed.
	if err := f.svc.FlushUsage(t.Context()); err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.Tokens(t.Context(), id, false)
	if err != nil || len(list) != 3 {
		t.Fatalf("Tokens = %+v, %v", list, err)
	}
	for _, tk := range list {
		if tk.Token != "" {
			t.Fatal("a listing shows a token's secret")
		}
		if tk.Name == "default" && (tk.LastUsedAt == nil || !tk.LastUsedAt.Equal(f.clock.Now().Add(-time.Minute))) {
			t.Errorf("default's last use = %v", tk.LastUsedAt)
		}
	}
	if _, err := f.svc.Tokens(t.Context(), id, true); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("a user listing everyone's tokens: %v", err)
	}
}

// Removing a user kills their tokens at once; their role goes with them.
func TestRemoveAndRoles(t *testing.T) {
	f := newFixture(t)
	u, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo", Role: "reader"})
	if err != nil || u.Role != "Reader" {
		t.Fatalf("Add = %+v, %v", u, err)
	}
	if _, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("adding bo twice: %v", err)
	}
	if _, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "x", Role: "boss"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("a bad role: %v", err)
	}
	id, err := f.svc.Authenticate(t.Context(), u.Token)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Principal(t.Context(), id, "default")
	if err != nil || p.Role != authz.Reader {
		t.Fatalf("Principal = %+v, %v", p, err)
	}
	if _, err := f.svc.SetRole(t.Context(), "default", "bo", api.UserUpdate{Role: "Owner"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.svc.Principal(t.Context(), id, "default"); p.Role != authz.Owner {
		t.Fatalf("after set-role: %s, want Owner at once on this server", p.Role)
	}
	if _, err := f.svc.Principal(t.Context(), id, "elsewhere"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("a workspace without a role: %v", err)
	}
	admin := authz.Principal{User: "admin", Role: authz.Owner}
	if err := f.svc.Remove(t.Context(), "default", admin, "bo"); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(t.Context(), u.Token)
	wantUnauthenticated(t, err, "not valid")
	if err := f.svc.Remove(t.Context(), "default", admin, "bo"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
}

// The admin's bootstrap token: made once, kept across restarts, replaced
// when the data dir's copy changes, and a revoked one stays revoked.
func TestEnsureAdmin(t *testing.T) {
	f := newFixture(t)
	if revoked, err := f.svc.EnsureAdmin(t.Context(), "admin", "pdk_one"); err != nil || revoked {
		t.Fatal(revoked, err)
	}
	if revoked, err := f.svc.EnsureAdmin(t.Context(), "admin", "pdk_one"); err != nil || revoked {
		t.Fatal(revoked, err)
	}
	id, err := f.svc.Authenticate(t.Context(), "pdk_one")
	if err != nil || !id.User.Admin || id.Token.Name != users.AdminTokenName {
		t.Fatalf("admin = %+v, %v", id, err)
	}
	if _, err := f.svc.EnsureAdmin(t.Context(), "admin", "pdk_two"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.Authenticate(t.Context(), "pdk_one"); err == nil {
		t.Fatal("the replaced bootstrap token still works")
	}
	id2, err := f.svc.Authenticate(t.Context(), "pdk_two")
	if err != nil {
		t.Fatal(err)
	}
	var rotated string
	f.svc.OnAdminRotated = func(tok string) error { rotated = tok; return nil }
	next, err := f.svc.Rotate(t.Context(), id2)
	if err != nil || rotated != next.Token {
		t.Fatalf("rotating the admin's token: %+v, %v; told %q", next, err, rotated)
	}
	if revoked, err := f.svc.EnsureAdmin(t.Context(), "admin", "pdk_two"); err != nil || !revoked {
		t.Fatalf("a revoked bootstrap token: revoked = %v, %v", revoked, err)
	}
}
