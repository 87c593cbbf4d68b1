// Package authz says who may do what in a workspace: the roles (with the
// semantics of Azure ML's built-in roles), the actions the API performs,
// and one table from role and action to scope — any record, only the
// caller's own, or none. The server's router names an action for every
// user route and asks Allow before the handler runs; services ask Check
// where the answer depends on who owns the record.
package authz

import (
	"slices"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

// Role is what a user may do in a workspace.
type Role string

// The roles.
const (
	// Owner may do everything, users and quotas included.
	Owner Role = "Owner"
	// Contributor creates and uses compute and runs; changes, deletes or
	// cancels only what they created.
	Contributor Role = "Contributor"
	// Reader reads compute targets and runs.
	Reader Role = "Reader"
	// ComputeOperator manages compute targets (any of them), not runs.
	ComputeOperator Role = "ComputeOperator"
)

// Roles lists the roles, most powerful first.
func Roles() []Role { return []Role{Owner, Contributor, ComputeOperator, Reader} }

// ParseRole reads a role name, case-insensitively and with or without
// dashes ("compute-operator").
func ParseRole(s string) (Role, error) {
	key := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	for _, r := range Roles() {
		if strings.ToLower(string(r)) == key {
			return r, nil
		}
	}
	names := make([]string, 0, 4)
	for _, r := range Roles() {
		names = append(names, string(r))
	}
	return "", api.Invalid("role", "role must be one of %s, not %q", strings.Join(names, ", "), s)
}

// Action is something the API does, as the audit log names it.
type Action string

// The actions.
const (
	ReadCompute    Action = "compute.read"
	WriteCompute   Action = "compute.write"   // create and update
	DeleteCompute  Action = "compute.delete"  // delete and detach
	OperateCompute Action = "compute.operate" // start, stop, restart an instance
	PreemptNode    Action = "compute.preempt" // inject a preemption (tests, demos)
	WriteQuota     Action = "quota.write"
	ReadRun        Action = "run.read"
	SubmitRun      Action = "run.submit" // snapshots and submissions
	CancelRun      Action = "run.cancel"
	WriteMetrics   Action = "run.metrics"
	ReadUsers      Action = "user.read"
	WriteUsers     Action = "user.write" // add, set role, remove
	ReadAudit      Action = "audit.read"
	WriteWorkspace Action = "workspace.write" // workspace settings and policy
	// WriteIdentity makes, changes, deletes and assigns managed
	// identities (assigning one to a target hands its secrets to the
	// target's runs).
	WriteIdentity Action = "identity.write"
)

// Actions lists every action.
func Actions() []Action {
	return []Action{ReadCompute, WriteCompute, DeleteCompute, OperateCompute, PreemptNode, WriteQuota,
		ReadRun, SubmitRun, CancelRun, WriteMetrics, ReadUsers, WriteUsers, ReadAudit, WriteWorkspace, WriteIdentity}
}

// Scope is how far a role's permission for an action reaches.
type Scope int

// The scopes.
const (
	None Scope = iota // not allowed
	Own               // only records the caller owns (created, or an instance assigned to them)
	Any               // every record
)

// table is the one authorization table. An action missing from a role's
// row is None.
var table = map[Role]map[Action]Scope{
	Owner: all(Any),
	Contributor: {
		ReadCompute: Any, WriteCompute: Own, DeleteCompute: Own, OperateCompute: Own,
		ReadRun: Any, SubmitRun: Any, CancelRun: Own, WriteMetrics: Own, WriteIdentity: Own,
	},
	ComputeOperator: {
		ReadCompute: Any, WriteCompute: Any, DeleteCompute: Any, OperateCompute: Any, PreemptNode: Any, WriteIdentity: Own,
	},
	Reader: {
		ReadCompute: Any, ReadRun: Any,
	},
}

func all(s Scope) map[Action]Scope {
	m := map[Action]Scope{}
	for _, a := range Actions() {
		m[a] = s
	}
	return m
}

// ScopeOf is how far role r may do a.
func ScopeOf(r Role, a Action) Scope { return table[r][a] }

// Principal is a user acting in a workspace with a role there.
type Principal struct {
	User string
	Role Role
}

// System is the server acting on its own (e.g. deleting the cluster it
// made for a run when the run ends).
var System = Principal{User: "paddock", Role: Owner}

// Allow reports whether p may do a at all (on some record); the router
// asks it before a handler runs.
func (p Principal) Allow(a Action) error {
	if ScopeOf(p.Role, a) == None {
		return api.Forbidden("%s is %s in this workspace, which does not allow %s", p.User, article(p.Role), a)
	}
	return nil
}

// Check reports whether p may do a on a record owned by owner (who created
// it; for an instance, also its assigned user — pass both).
func (p Principal) Check(a Action, what string, owners ...string) error {
	switch ScopeOf(p.Role, a) {
	case Any:
		return nil
	case Own:
		if slices.Contains(owners, p.User) {
			return nil
		}
		return api.Forbidden("%s is %s in this workspace and may %s only what they own; %s belongs to %s",
			p.User, article(p.Role), verb(a), what, strings.Join(owners, " and "))
	}
	return p.Allow(a)
}

// Any reports whether p may do a on every record.
func (p Principal) Any(a Action) bool { return ScopeOf(p.Role, a) == Any }

func article(r Role) string {
	if r == Owner {
		return "an Owner"
	}
	return "a " + string(r)
}

// verb is an action as a verb for messages.
func verb(a Action) string {
	switch a {
	case WriteCompute:
		return "change"
	case DeleteCompute:
		return "delete"
	case OperateCompute:
		return "start, stop or restart"
	case CancelRun:
		return "cancel"
	case WriteMetrics:
		return "post metrics to"
	case WriteIdentity:
		return "change, delete or assign"
	}
	return string(a)
}
