package targets_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
)

// A compute instance is seen by its owners and by Owners and Compute
// Operators; other users neither list nor show it, as if it did not exist.
// Shared targets are seen by every role.
func TestPrivateInstancesAreHidden(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, u := range []string{"ana", "bo"} {
		if err := f.st.CreateUser(f.ctx, store.User{Name: u}, store.Token{ID: "tok-" + u, User: u, Name: "default", Hash: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.create("ana", "ana-box", "instance", map[string]any{"vm_size": "STANDARD_D2_V2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.create("admin", "bos-box", "instance", map[string]any{"vm_size": "STANDARD_D2_V2", "assigned_user": "bo"}); err != nil {
		t.Fatal(err)
	}
	f.mustCreate("cpu", "cluster", map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 2})
	for _, c := range []struct {
		p    authz.Principal
		sees []string
	}{
		{authz.Principal{User: "ana", Role: authz.Contributor}, []string{"ana-box", "cpu", "local"}},
		{authz.Principal{User: "bo", Role: authz.Reader}, []string{"bos-box", "cpu", "local"}},
		{authz.Principal{User: "cy", Role: authz.Reader}, []string{"cpu", "local"}},
		{authz.Principal{User: "otto", Role: authz.ComputeOperator}, []string{"ana-box", "bos-box", "cpu", "local"}},
		{authz.Principal{User: "olga", Role: authz.Owner}, []string{"ana-box", "bos-box", "cpu", "local"}},
	} {
		list, err := f.svc.ListComputes(f.ctx, "default", c.p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range list {
			names = append(names, x.Name)
		}
		if !slices.Equal(names, c.sees) {
			t.Errorf("%s (%s) lists %v, want %v", c.p.User, c.p.Role, names, c.sees)
		}
		for _, name := range []string{"ana-box", "bos-box"} {
			_, err := f.svc.GetCompute(f.ctx, "default", c.p, name)
			if want := slices.Contains(c.sees, name); want != (err == nil) || !want && !errors.Is(err, api.ErrNotFound) {
				t.Errorf("%s (%s) shows %s: %v", c.p.User, c.p.Role, name, err)
			}
		}
	}
}
