package targets_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/identities"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// The principals the tests act as: the admin (Owner) and bob, a
// Contributor.
var (
	ownerP = authz.Principal{User: "admin", Role: authz.Owner}
	bobP   = authz.Principal{User: "bob", Role: authz.Contributor}
)

// mkIdentity makes a user-assigned identity as user.
func (f *fixture) mkIdentity(user, name string) {
	f.t.Helper()
	ids := &identities.Service{Store: f.st, Box: f.svc.Box}
	role := authz.Contributor
	if user == "admin" {
		role = authz.Owner
	}
	if _, err := ids.Create(f.ctx, "default", authz.Principal{User: user, Role: role},
		api.IdentityCreate{Name: name, Secrets: map[string]string{"TOKEN": "s3cret"}}); err != nil {
		f.t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code api.Code, field string) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code || e.Field != field {
		t.Fatalf("err = %v, want %s naming %q", err, code, field)
	}
}

// A SystemAssigned cluster gets its own identity, with a principal id
// shown in `compute show`; it goes when the cluster is given another
// identity type, and comes back with a new principal id.
func TestSystemAssignedIdentityLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.mustCreate("sys-cluster", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2, "identity_type": "SystemAssigned"})
	got, err := f.svc.GetCompute(f.ctx, "default", authz.System, "sys-cluster")
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity == nil || got.Identity.Type != api.IdentitySystemAssigned || len(got.Identity.PrincipalID) != 36 {
		t.Fatalf("identity = %+v, want SystemAssigned with a principal id", got.Identity)
	}
	first := got.Identity.PrincipalID
	id, err := f.st.GetIdentity(f.ctx, "default", api.IdentitySystemAssigned, "sys-cluster")
	if err != nil || id.PrincipalID != first {
		t.Fatalf("stored system identity = %+v, %v", id, err)
	}

	// A second cluster of the same name is refused without touching it.
	if _, err := f.create("admin", "SYS-cluster", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2, "identity_type": "SystemAssigned"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("duplicate create: err = %v, want Conflict", err)
	}
	if id, _ := f.st.GetIdentity(f.ctx, "default", api.IdentitySystemAssigned, "sys-cluster"); id.PrincipalID != first {
		t.Fatal("a refused duplicate create replaced the cluster's identity")
	}

	update := func(props string) api.Compute {
		t.Helper()
		out, err := f.svc.UpdateCompute(f.ctx, "default", ownerP, "sys-cluster", api.ComputeUpdate{Properties: []byte(props)})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Provisioned(t, f.st, "default", "sys-cluster")
		return out
	}
	if out := update(`{"identity_type":"None"}`); out.Identity != nil {
		t.Fatalf("identity after None = %+v, want none", out.Identity)
	}
	if _, err := f.st.GetIdentity(f.ctx, "default", api.IdentitySystemAssigned, "sys-cluster"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("the system identity outlived identity_type None: %v", err)
	}
	out := update(`{"identity_type":"SystemAssigned"}`)
	if out.Identity == nil || out.Identity.PrincipalID == "" || out.Identity.PrincipalID == first {
		t.Fatalf("identity given again = %+v, want a new principal id", out.Identity)
	}
	if _, err := f.svc.DeleteCompute(f.ctx, "default", ownerP, "sys-cluster", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.GetIdentity(f.ctx, "default", api.IdentitySystemAssigned, "sys-cluster"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("the system identity outlived its cluster: %v", err)
	}
}

// User-assigned identities: identity_id must name existing ones, only
// their creator and admins may assign them, an identity in use cannot be
// deleted, and runs hold their target's identities as they were when
// submitted.
func TestUserAssignedIdentities(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.st.SetRole(f.ctx, "default", "bob", string(authz.Contributor)); err != nil {
		t.Fatal(err)
	}
	f.mkIdentity("admin", "blob-reader")
	f.mkIdentity("bob", "bobs-key")
	props := func(ids ...string) map[string]any {
		return map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2, "identity_type": "UserAssigned", "identity_id": ids}
	}
	_, err := f.create("admin", "c-missing", "cluster", props("nobody"))
	wantCode(t, err, api.CodeInvalid, "identity_id")
	_, err = f.create("bob", "c-stolen", "cluster", props("blob-reader"))
	wantCode(t, err, api.CodeForbidden, "identity_id")
	if _, err := f.create("bob", "c-bob", "cluster", props("bobs-key")); err != nil {
		t.Fatalf("bob assigning his own identity: %v", err)
	}
	testenv.Provisioned(t, f.st, "default", "c-bob")
	// An admin adds hers; bob may then change the cluster's other settings.
	if _, err := f.svc.UpdateCompute(f.ctx, "default", ownerP, "c-bob", api.ComputeUpdate{Properties: []byte(`{"identity_id":["bobs-key","Blob-Reader"]}`)}); err != nil {
		t.Fatal(err)
	}
	testenv.Provisioned(t, f.st, "default", "c-bob")
	out, err := f.svc.UpdateCompute(f.ctx, "default", bobP, "c-bob", api.ComputeUpdate{Properties: []byte(`{"max_nodes":3}`)})
	if err != nil {
		t.Fatalf("bob changing max_nodes of a cluster with an identity he did not assign: %v", err)
	}
	testenv.Provisioned(t, f.st, "default", "c-bob")
	if out.Identity == nil || len(out.Identity.UserAssignedIdentities) != 2 || out.Identity.UserAssignedIdentities[1].PrincipalID == "" {
		t.Fatalf("identity = %+v, want both with principal ids", out.Identity)
	}

	ids := &identities.Service{Store: f.st, Box: f.svc.Box}
	err = ids.Delete(f.ctx, "default", authz.Principal{User: "admin", Role: authz.Owner}, "blob-reader")
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "c-bob") {
		t.Fatalf("deleting an identity in use: err = %v, want a conflict naming c-bob", err)
	}

	run, err := f.svc.ValidateRun(f.ctx, "default", "bob", api.RunSubmit{Compute: "c-bob", Command: []string{"true"}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if run.IdentityType != api.IdentityUserAssigned || len(run.Identities) != 2 || run.Identities[1] != "blob-reader" {
		t.Fatalf("run identities = %s %v", run.IdentityType, run.Identities)
	}
	run, err = f.svc.ValidateRun(f.ctx, "default", "bob", api.RunSubmit{Compute: "local", Command: []string{"true"}}, func(string) bool { return true })
	if err != nil || run.IdentityType != "" || run.Identities != nil {
		t.Fatalf("a run on local holds identities %q %v (%v)", run.IdentityType, run.Identities, err)
	}
}
