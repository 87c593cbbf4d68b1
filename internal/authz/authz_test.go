package authz

import (
	"errors"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// The roles as the product defines them (Azure ML's built-in roles),
// written out independently of the table: A any record, O own only,
// - not at all. Columns follow Actions().
func TestTableIsTheRoles(t *testing.T) {
	want := map[Role]string{
		//                compute     quota run          user audit ws identity
		//                r w d o p   w     r s c m      r w  r     w  w
		Owner:           "A A A A A   A     A A A A      A A  A     A  A",
		Contributor:     "A O O O -   -     A A O O      - -  -     -  O",
		ComputeOperator: "A A A A A   -     - - - -      - -  -     -  O",
		Reader:          "A - - - -   -     A - - -      - -  -     -  -",
	}
	letter := map[Scope]string{Any: "A", Own: "O", None: "-"}
	for role, row := range want {
		cells := strings.Fields(row)
		if len(cells) != len(Actions()) {
			t.Fatalf("%s: %d cells for %d actions", role, len(cells), len(Actions()))
		}
		for i, a := range Actions() {
			if got := letter[ScopeOf(role, a)]; got != cells[i] {
				t.Errorf("%s %s: %s, want %s", role, a, got, cells[i])
			}
		}
	}
	if len(want) != len(Roles()) {
		t.Errorf("the test knows %d roles, the package %d", len(want), len(Roles()))
	}
}

func TestCheck(t *testing.T) {
	bob := Principal{User: "bob", Role: Contributor}
	cases := []struct {
		p      Principal
		a      Action
		owners []string
		denied string // "" when allowed
	}{
		{bob, DeleteCompute, []string{"bob"}, ""},
		{bob, DeleteCompute, []string{"admin"}, "belongs to admin"},
		{bob, OperateCompute, []string{"bob", "admin"}, ""},
		{bob, WriteQuota, nil, "does not allow quota.write"},
		{Principal{User: "ann", Role: Owner}, DeleteCompute, []string{"bob"}, ""},
		{Principal{User: "rita", Role: Reader}, CancelRun, []string{"rita"}, "does not allow run.cancel"},
		{System, DeleteCompute, []string{"bob"}, ""},
		{bob, WriteIdentity, []string{"admin"}, "may change, delete or assign only what they own"},
		{Principal{User: "rita", Role: Reader}, WriteIdentity, []string{"rita"}, "does not allow identity.write"},
	}
	for _, c := range cases {
		err := c.p.Check(c.a, "the thing", c.owners...)
		switch {
		case c.denied == "" && err != nil:
			t.Errorf("%+v %s: %v", c.p, c.a, err)
		case c.denied != "" && (!errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), c.denied)):
			t.Errorf("%+v %s: %v, want Forbidden with %q", c.p, c.a, err, c.denied)
		}
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{"owner": Owner, "Contributor": Contributor, "compute-operator": ComputeOperator, "COMPUTEOPERATOR": ComputeOperator, "reader": Reader} {
		if got, err := ParseRole(in); err != nil || got != want {
			t.Errorf("ParseRole(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRole("god"); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "Owner, Contributor, ComputeOperator, Reader") {
		t.Errorf("ParseRole(god): %v", err)
	}
}
