package compute

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
)

// ClusterProperties are the properties of a cluster (Azure ML's AmlCompute):
// a pool of nodes of one size that scales between min_nodes and max_nodes.
type ClusterProperties struct {
	Common
	VMSize                      string   `json:"vm_size"`
	VMPriority                  string   `json:"vm_priority"`
	MinNodes                    *int     `json:"min_nodes"`
	MaxNodes                    *int     `json:"max_nodes"`
	IdleSecondsBeforeScaledown  *int     `json:"idle_seconds_before_scaledown"`
	IdentityType                string   `json:"identity_type"`
	IdentityID                  []string `json:"identity_id,omitempty"`
	RemoteLoginPortPublicAccess string   `json:"remote_login_port_public_access"`
	AdminUsername               string   `json:"admin_username,omitempty"`
	AdminUserSSHKey             string   `json:"admin_user_ssh_key,omitempty"`
	Provider                    string   `json:"provider"`
	From                        string   `json:"from,omitempty"`
}

// ClusterStatus is a cluster's live status.
type ClusterStatus struct {
	AllocationState  string                  `json:"allocation_state"`
	CurrentNodeCount int                     `json:"current_node_count"`
	TargetNodeCount  int                     `json:"target_node_count"`
	NodeStateCounts  map[string]int          `json:"node_state_counts"`
	Errors           []api.ProvisioningError `json:"errors"`
}

// Providers a cluster may name; which of them this server can run is the
// provisioner's business (a cluster on an unavailable provider fails to
// provision with a clear error rather than failing validation).
var clusterProviders = []string{"local", "ssh", "slurm", "kubernetes", "sim"}

// providerSource is the attached target type a provider draws nodes from.
var providerSource = map[string]string{"slurm": "slurm", "kubernetes": "kubernetes"}

type cluster struct{}

func init() { Register(cluster{}) }

func (cluster) Type() string           { return "cluster" }
func (cluster) Origin() Origin         { return Created }
func (cluster) SecretFields() []string { return []string{"admin_user_password"} }
func (cluster) UpdatableFields() []string {
	return []string{"description", "identity_id", "identity_type", "idle_seconds_before_scaledown", "max_nodes", "min_nodes", "tags"}
}

func (cluster) Normalize(ctx context.Context, raw json.RawMessage, secrets map[string]secret.Value, env Env) (json.RawMessage, error) {
	var p ClusterProperties
	if _, err := decodeSized(raw, &p, &p.Common, &p.VMSize, env); err != nil {
		return nil, err
	}
	if p.MaxNodes == nil {
		return nil, api.Invalid("max_nodes", "max_nodes is required and must be at least 1")
	}
	maxN, err := intField("max_nodes", p.MaxNodes, 0, 1, MaxClusterNodes)
	if err != nil {
		return nil, err
	}
	minN, err := intField("min_nodes", p.MinNodes, 0, 0, MaxClusterNodes)
	if err != nil {
		return nil, err
	}
	if minN > maxN {
		return nil, api.Invalid("min_nodes", "min_nodes (%d) must not be more than max_nodes (%d)", minN, maxN)
	}
	idle, err := intField("idle_seconds_before_scaledown", p.IdleSecondsBeforeScaledown, 1800, 0, maxIdleSeconds)
	if err != nil {
		return nil, err
	}
	p.MinNodes, p.MaxNodes, p.IdleSecondsBeforeScaledown = ptr(minN), ptr(maxN), ptr(idle)
	if p.VMPriority, err = enum("vm_priority", p.VMPriority, "dedicated", "dedicated", "lowpriority"); err != nil {
		return nil, err
	}
	if p.IdentityType, err = enum("identity_type", p.IdentityType, "None", "None", "SystemAssigned", "UserAssigned"); err != nil {
		return nil, err
	}
	switch {
	case p.IdentityType == "UserAssigned" && len(p.IdentityID) == 0:
		return nil, api.Invalid("identity_id", "identity_id must name at least one identity when identity_type is UserAssigned")
	case p.IdentityType != "UserAssigned" && len(p.IdentityID) > 0:
		return nil, api.Invalid("identity_id", "identity_id is only allowed when identity_type is UserAssigned")
	}
	if len(p.IdentityID) > maxIdentityIDs {
		return nil, api.Invalid("identity_id", "identity_id may name at most %d identities", maxIdentityIDs)
	}
	if p.IdentityID, err = identityIDs(ctx, env, p.IdentityID); err != nil {
		return nil, err
	}
	if p.RemoteLoginPortPublicAccess, err = enum("remote_login_port_public_access", p.RemoteLoginPortPublicAccess,
		"NotSpecified", "Enabled", "Disabled", "NotSpecified"); err != nil {
		return nil, err
	}
	if p.AdminUserSSHKey, err = sshPublicKey("admin_user_ssh_key", p.AdminUserSSHKey); err != nil {
		return nil, err
	}
	if p.AdminUsername == "" && (p.AdminUserSSHKey != "" || secrets["admin_user_password"].IsSet()) {
		return nil, api.Invalid("admin_username", "admin_username is required when admin_user_password or admin_user_ssh_key is given")
	}
	if p.Provider, err = enum("provider", p.Provider, "local", clusterProviders...); err != nil {
		return nil, err
	}
	if err := checkFrom(ctx, env, p.Provider, p.From); err != nil {
		return nil, err
	}
	return mustJSON(p), nil
}

// checkFrom validates the `from` reference of a provider that draws its
// nodes from an attached target.
func checkFrom(ctx context.Context, env Env, provider, from string) error {
	if provider == "ssh" {
		if !poolName.MatchString(from) {
			return api.Invalid("from", "from must name the SSH pool provider ssh takes hosts from (remote targets attached with --pool NAME)")
		}
		return nil
	}
	want, needs := providerSource[provider]
	switch {
	case !needs && from != "":
		return api.Invalid("from", "from is only used with provider ssh, slurm or kubernetes")
	case needs && from == "":
		return api.Invalid("from", "from must name the attached %s target that provider %s takes nodes from", want, provider)
	case !needs:
		return nil
	}
	typ, err := env.Target(ctx, from)
	if errors.Is(err, api.ErrNotFound) {
		return api.Invalid("from", "from names %q, but there is no compute target of that name; attach it first with `paddock compute attach %s`", from, want)
	}
	if err != nil {
		return err
	}
	if typ != want {
		return api.Invalid("from", "from names %q, a %s target; provider %s needs a %s target", from, typ, provider, want)
	}
	return nil
}

func (cluster) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(ClusterStatus{
		AllocationState: "Steady",
		NodeStateCounts: map[string]int{"idle": 0, "running": 0, "preparing": 0, "unusable": 0, "leaving": 0, "preempted": 0},
		Errors:          []api.ProvisioningError{},
	})
}

var (
	_ NodeKind       = cluster{}
	_ RunTarget      = cluster{}
	_ QuotaHolder    = cluster{}
	_ Preemptible    = cluster{}
	_ IdentityHolder = cluster{}
	_ patchCompleter = cluster{}
)

// Provider implements NodeKind: the cluster's provider property.
func (cluster) Provider(props json.RawMessage) string {
	p := ClusterProperties{Provider: "local"}
	json.Unmarshal(props, &p)
	return p.Provider
}

// RunRules implements RunTarget: a run must fit a node of the cluster's
// size; it may ask for several.
func (cluster) RunRules(props json.RawMessage, sizes *Catalog) (RunRules, error) {
	var p ClusterProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return RunRules{}, err
	}
	size, ok := sizes.Find(p.VMSize)
	if !ok {
		return RunRules{}, api.Conflict("the cluster's size %s is no longer in the size catalog", p.VMSize)
	}
	return RunRules{DefaultCores: 1, NodeSize: &size, MaxNodes: *p.MaxNodes}, nil
}

// Quota implements QuotaHolder: min_nodes nodes of vm_size.
func (cluster) Quota(props json.RawMessage) (string, int, bool) {
	var p ClusterProperties
	json.Unmarshal(props, &p)
	minNodes := 0
	if p.MinNodes != nil {
		minNodes = *p.MinNodes
	}
	return p.VMSize, minNodes, p.VMPriority == "lowpriority"
}

// PreemptibleNodes implements Preemptible.
func (cluster) PreemptibleNodes() {}

// Identity implements IdentityHolder: the cluster's identity_type and
// identity_id.
func (cluster) Identity(props json.RawMessage) (string, []string) {
	var p ClusterProperties
	json.Unmarshal(props, &p)
	if p.IdentityType == "" {
		p.IdentityType = "None"
	}
	return p.IdentityType, p.IdentityID
}

// completePatch implements patchCompleter: changing identity_type to
// anything but UserAssigned drops the identity_id it had, so
// `identity_type: None` alone removes a cluster's identities.
func (cluster) completePatch(patch map[string]json.RawMessage) {
	raw, ok := patch["identity_type"]
	if _, given := patch["identity_id"]; !ok || given {
		return
	}
	var t string
	if json.Unmarshal(raw, &t) == nil && !strings.EqualFold(t, "UserAssigned") {
		patch["identity_id"] = json.RawMessage("null")
	}
}
