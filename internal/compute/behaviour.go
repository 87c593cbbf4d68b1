package compute

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// What a kind does beyond validation, each an optional interface a kind
// implements when it has that behaviour. The rest of the server asks these
// (through the helpers below) instead of comparing type names, so a new
// kind is a new file here plus its node reconciler.

// NodeKind is a kind whose targets have nodes: it names the provider that
// realises them (a cluster's provider property; "local" for instances;
// "ssh" for remote machines; "slurm" for Slurm targets).
type NodeKind interface {
	Provider(props json.RawMessage) string
}

// RunTarget is a kind that takes runs.
type RunTarget interface {
	// RunRules says how runs are checked and defaulted on the target.
	RunRules(props json.RawMessage, sizes *Catalog) (RunRules, error)
}

// RunRules are a target's rules for the runs submitted to it.
type RunRules struct {
	// DefaultCores is what a run takes when it asks for no cores: 1, or
	// 0 on an instance, whose runs share its cores.
	DefaultCores float64
	// NodeSize, when set, is the size of every node: a run must fit one
	// (a cluster's vm_size).
	NodeSize *api.Size
	// MaxNodes is how many nodes one run may ask for (a cluster's
	// max_nodes); 0 means 1.
	MaxNodes int
	// Refuse, when set, refuses every run with this message.
	Refuse string
}

// QuotaHolder is a kind whose nodes count against the workspace's core
// quotas.
type QuotaHolder interface {
	// Quota says the size of the target's nodes, how many it holds at
	// rest (a cluster's min_nodes; 1 for an instance, while it runs) and
	// whether they are low priority.
	Quota(props json.RawMessage) (vmSize string, atRest int, lowPriority bool)
}

// Private is a kind whose targets belong to one user: only they (and
// admins) may use them.
type Private interface {
	AssignedUser(props json.RawMessage) string
}

// Startable is a kind whose targets are started, stopped and restarted by
// users (compute instances).
type Startable interface {
	StartStop()
}

// Preemptible is a kind whose nodes may be preempted on request (tests,
// demos) when their provider can.
type Preemptible interface {
	PreemptibleNodes()
}

// IdentityHolder is a kind whose targets may hold managed identities that
// their runs use (a cluster's identity_type and identity_id).
type IdentityHolder interface {
	// Identity returns the identity type (None, SystemAssigned or
	// UserAssigned) and, for UserAssigned, the identities' names.
	Identity(props json.RawMessage) (typ string, names []string)
}

// IdleStopper is a kind whose targets are stopped when idle for a time of
// their own (an instance's idle_time_before_shutdown), which the
// workspace's policy caps.
type IdleStopper interface {
	// IdleTime is the target's own idle time before it is stopped (0:
	// never).
	IdleTime(props json.RawMessage) time.Duration
}

// IdleTimeOf returns a kind's idle time before shutdown in props; ok is
// false for kinds that are not stopped when idle.
func IdleTimeOf(k Kind, props json.RawMessage) (d time.Duration, ok bool) {
	is, ok := k.(IdleStopper)
	if !ok {
		return 0, false
	}
	return is.IdleTime(props), true
}

// kindOf returns the kind of a stored target, or nil.
func kindOf(rec store.Compute) Kind {
	k, _ := Lookup(rec.Type)
	return k
}

// ProviderOf is the provider of a target's nodes; ok is false for kinds
// without nodes.
func ProviderOf(rec store.Compute) (name string, ok bool) {
	nk, ok := kindOf(rec).(NodeKind)
	if !ok {
		return "", false
	}
	return nk.Provider(rec.Properties), true
}

// RunRulesOf returns a target's rules for runs; ok is false for kinds that
// take no runs.
func RunRulesOf(rec store.Compute, sizes *Catalog) (RunRules, bool, error) {
	rt, ok := kindOf(rec).(RunTarget)
	if !ok {
		return RunRules{}, false, nil
	}
	r, err := rt.RunRules(rec.Properties, sizes)
	return r, true, err
}

// RunnableTypes lists the kinds that take runs, sorted.
func RunnableTypes() []string {
	var out []string
	for _, o := range []Origin{BuiltIn, Created, Attached} {
		for _, t := range Types(o) {
			if k, _ := Lookup(t); k != nil {
				if _, ok := k.(RunTarget); ok {
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// QuotaOf says what a target holds against quotas; ok is false for kinds
// that hold nothing.
func QuotaOf(rec store.Compute) (vmSize string, atRest int, lowPriority, ok bool) {
	q, ok := kindOf(rec).(QuotaHolder)
	if !ok {
		return "", 0, false, false
	}
	vmSize, atRest, lowPriority = q.Quota(rec.Properties)
	return vmSize, atRest, lowPriority, true
}

// Owner is the user a private target belongs to ("" for shared targets).
func Owner(rec store.Compute) string {
	p, ok := kindOf(rec).(Private)
	if !ok {
		return ""
	}
	return p.AssignedUser(rec.Properties)
}

// CanStartStop reports whether users start and stop targets of this kind.
func CanStartStop(rec store.Compute) bool {
	_, ok := kindOf(rec).(Startable)
	return ok
}

// CanPreempt reports whether a target's nodes may be preempted on request.
func CanPreempt(rec store.Compute) bool {
	_, ok := kindOf(rec).(Preemptible)
	return ok
}

// IdentityOf returns the managed identities a target gives its runs: the
// identity type and the names of its user-assigned identities. typ is
// "None" for targets without one and kinds that cannot hold one.
func IdentityOf(rec store.Compute) (typ string, names []string) {
	h, ok := kindOf(rec).(IdentityHolder)
	if !ok {
		return "None", nil
	}
	return h.Identity(rec.Properties)
}

// Props decodes a target's properties as T (e.g. ClusterProperties).
func Props[T any](rec store.Compute) (T, error) {
	var p T
	if err := json.Unmarshal(rec.Properties, &p); err != nil {
		return p, fmt.Errorf("the properties of %s target %s: %w", rec.Type, rec.Name, err)
	}
	return p, nil
}

// Status decodes a target's status as T (e.g. ClusterStatus).
func Status[T any](rec store.Compute) (T, error) {
	var s T
	if len(rec.Status) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(rec.Status, &s); err != nil {
		return s, fmt.Errorf("the status of %s target %s: %w", rec.Type, rec.Name, err)
	}
	return s, nil
}

// Tags are a target's tags, whatever its kind (nil when it has none).
func Tags(rec store.Compute) map[string]string {
	var c Common
	json.Unmarshal(rec.Properties, &c)
	return c.Tags
}

// HasNodes reports whether targets of a type have nodes (a NodeKind).
func HasNodes(typ string) bool {
	k, ok := Lookup(typ)
	if !ok {
		return false
	}
	_, ok = k.(NodeKind)
	return ok
}
