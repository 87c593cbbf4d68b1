package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// testIdentities: identities are unique per workspace, type and name
// (case-insensitively), round-trip whole, are listed UserAssigned first,
// update with optimistic concurrency and delete idempotently.
func testIdentities(t *testing.T, s store.Store) {
	for _, ws := range []string{"ws", "other"} {
		if err := s.EnsureWorkspace(ctx(t), ws); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	user := store.Identity{Workspace: "ws", Name: "Blob-Reader", Type: api.IdentityUserAssigned, PrincipalID: "p-1",
		Description: "reads the bucket", CreatedBy: "ana", CreatedAt: now, UpdatedAt: now,
		Secrets: []byte{1, 2, 3}, SecretKeys: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, Version: 1}
	if err := s.CreateIdentity(ctx(t), user); err != nil {
		t.Fatal(err)
	}
	dup := user
	dup.Name = "blob-reader"
	if err := s.CreateIdentity(ctx(t), dup); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("case-insensitive duplicate: err = %v, want Conflict", err)
	}
	// The same name as a cluster's SystemAssigned identity, or in another
	// workspace, is another identity.
	system := store.Identity{Workspace: "ws", Name: "blob-reader", Type: api.IdentitySystemAssigned, PrincipalID: "p-2",
		Target: "blob-reader", CreatedBy: "ana", CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := s.CreateIdentity(ctx(t), system); err != nil {
		t.Fatalf("a SystemAssigned identity named like a UserAssigned one: %v", err)
	}
	elsewhere := user
	elsewhere.Workspace = "other"
	if err := s.CreateIdentity(ctx(t), elsewhere); err != nil {
		t.Fatalf("the same name in another workspace: %v", err)
	}
	got, err := s.GetIdentity(ctx(t), "ws", api.IdentityUserAssigned, "BLOB-READER")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(user, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("GetIdentity mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.GetIdentity(ctx(t), "ws", api.IdentityUserAssigned, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown identity: err = %v, want NotFound", err)
	}
	list, err := s.ListIdentities(ctx(t), "ws")
	if err != nil || len(list) != 2 || list[0].Type != api.IdentityUserAssigned || list[1].Type != api.IdentitySystemAssigned {
		t.Fatalf("ListIdentities = %+v, %v; want the UserAssigned one, then the SystemAssigned one", list, err)
	}

	stale := got
	got.SecretKeys, got.Secrets, got.Description = []string{"TOKEN"}, []byte{9}, ""
	if err := s.UpdateIdentity(ctx(t), &got); err != nil || got.Version != 2 {
		t.Fatalf("UpdateIdentity = %v, version %d; want nil, 2", err, got.Version)
	}
	if err := s.UpdateIdentity(ctx(t), &stale); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale UpdateIdentity: err = %v, want Conflict", err)
	}
	again, _ := s.GetIdentity(ctx(t), "ws", api.IdentityUserAssigned, "blob-reader")
	if diff := cmp.Diff(got, again, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("after UpdateIdentity (-want +got):\n%s", diff)
	}

	if err := s.DeleteIdentity(ctx(t), "ws", api.IdentityUserAssigned, "Blob-Reader"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIdentity(ctx(t), "ws", api.IdentityUserAssigned, "Blob-Reader"); err != nil {
		t.Fatalf("deleting a deleted identity: %v", err)
	}
	if _, err := s.GetIdentity(ctx(t), "ws", api.IdentityUserAssigned, "blob-reader"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("after delete: err = %v, want NotFound", err)
	}
	if _, err := s.GetIdentity(ctx(t), "ws", api.IdentitySystemAssigned, "blob-reader"); err != nil {
		t.Fatalf("deleting the UserAssigned identity took the SystemAssigned one: %v", err)
	}
	gone := got
	if err := s.UpdateIdentity(ctx(t), &gone); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("UpdateIdentity of a deleted identity: err = %v, want NotFound", err)
	}
}

// testPolicy: a workspace without a policy has the zero one; PutPolicy
// creates and replaces.
func testPolicy(t *testing.T, s store.Store) {
	if err := s.EnsureWorkspace(ctx(t), "ws"); err != nil {
		t.Fatal(err)
	}
	p, err := s.Policy(ctx(t), "ws")
	if err != nil || p.MaxIdleSeconds != 0 || p.MaxRunDurationSeconds != 0 || p.Workspace != "ws" {
		t.Fatalf("Policy of a workspace without one = %+v, %v", p, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	want := store.Policy{Workspace: "ws", MaxIdleSeconds: 7200, MaxRunDurationSeconds: 86400, UpdatedBy: "admin", UpdatedAt: now}
	for range 2 { // replacing is the same as creating
		if err := s.PutPolicy(ctx(t), want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Policy(ctx(t), "ws")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Policy after PutPolicy (-want +got):\n%s", diff)
		}
		want.MaxIdleSeconds = 0
	}
}
