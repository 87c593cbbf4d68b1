package users_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/users"
)

// A sign-in link works once — also when two servers redeem it at the same
// moment — and the session it gives authenticates until signed out.
func TestSigninLinkIsSingleUse(t *testing.T) {
	f := newFixture(t)
	u, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo"})
	if err != nil {
		t.Fatal(err)
	}
	bo, err := f.svc.Authenticate(t.Context(), u.Token)
	if err != nil {
		t.Fatal(err)
	}
	code, expires, err := f.svc.CreateSigninLink(t.Context(), bo)
	if err != nil || !strings.HasPrefix(code, "pdl_") || expires.Sub(f.clock.Now()) != users.LinkLife {
		t.Fatalf("CreateSigninLink = %q, %v, %v", code, expires, err)
	}
	var wg sync.WaitGroup
	sessions := make([]string, 2)
	errs := make([]error, 2)
	for i, svc := range []*users.Service{f.svc, f.other} {
		wg.Go(func() { sessions[i], _, errs[i] = svc.Redeem(t.Context(), code) })
	}
	wg.Wait()
	won := 0
	for i := range 2 {
		if errs[i] == nil {
			won++
			if !strings.HasPrefix(sessions[i], "pds_") {
				t.Errorf("session %q", sessions[i])
			}
		} else {
			wantUnauthenticated(t, errs[i], "used already")
		}
	}
	if won != 1 {
		t.Fatalf("the link was redeemed %d times, want once: %v", won, errs)
	}
	session := sessions[0] + sessions[1]
	id, err := f.svc.Authenticate(t.Context(), session)
	if err != nil || id.User.Name != "bo" || !strings.HasPrefix(id.Token.Name, users.SessionTokenName) {
		t.Fatalf("the session authenticates as %+v, %v", id, err)
	}
	if _, _, err := f.svc.Redeem(t.Context(), code); err == nil {
		t.Fatal("a used link was redeemed again")
	}
	if err := f.svc.EndSession(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Authenticate(t.Context(), session)
	wantUnauthenticated(t, err, "revoked")
}

// A link expires; a user token is not a link; a session lasts SessionLife.
func TestSigninLinkExpires(t *testing.T) {
	f := newFixture(t)
	u, err := f.svc.Add(t.Context(), "default", api.UserCreate{Name: "bo"})
	if err != nil {
		t.Fatal(err)
	}
	bo, _ := f.svc.Authenticate(t.Context(), u.Token)
	code, _, err := f.svc.CreateSigninLink(t.Context(), bo)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Redeem(t.Context(), u.Token); err == nil {
		t.Fatal("a user token was redeemed as a link")
	}
	f.clock.Advance(users.LinkLife)
	_, _, err = f.svc.Redeem(t.Context(), code)
	wantUnauthenticated(t, err, "expired")

	session, _, err := f.svc.StartSession(t.Context(), bo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(t.Context(), session); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(users.SessionLife)
	_, err = f.svc.Authenticate(t.Context(), session)
	wantUnauthenticated(t, err, "expired")
}
