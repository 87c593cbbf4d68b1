package compute

import (
	"context"
	"encoding/json"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
)

// InstanceProperties are the properties of a compute instance (Azure ML's
// ComputeInstance): one node that belongs to one user.
type InstanceProperties struct {
	Common
	VMSize          string `json:"vm_size"`
	SSHPublicAccess bool   `json:"ssh_public_access"`
	AdminUserSSHKey string `json:"admin_user_ssh_key,omitempty"`
	AssignedUser    string `json:"assigned_user"`
	// IdleTimeBeforeShutdown is a Go duration ("30m", "2h"); empty means never.
	IdleTimeBeforeShutdown string `json:"idle_time_before_shutdown,omitempty"`
	MaxConcurrentRuns      *int   `json:"max_concurrent_runs"`
}

// InstanceStatus is an instance's live status.
type InstanceStatus struct {
	State       string `json:"state"`
	QueuedRuns  int    `json:"queued_runs"`
	RunningRuns int    `json:"running_runs"`
	SSH         string `json:"ssh,omitempty"`
}

type instance struct{}

func init() { Register(instance{}) }

func (instance) Type() string           { return "instance" }
func (instance) Origin() Origin         { return Created }
func (instance) SecretFields() []string { return nil }
func (instance) UpdatableFields() []string {
	return []string{"description", "idle_time_before_shutdown", "max_concurrent_runs", "tags"}
}

func (instance) Normalize(ctx context.Context, raw json.RawMessage, _ map[string]secret.Value, env Env) (json.RawMessage, error) {
	var p InstanceProperties
	size, err := decodeSized(raw, &p, &p.Common, &p.VMSize, env)
	if err != nil {
		return nil, err
	}
	if p.AdminUserSSHKey, err = sshPublicKey("admin_user_ssh_key", p.AdminUserSSHKey); err != nil {
		return nil, err
	}
	if p.SSHPublicAccess && p.AdminUserSSHKey == "" {
		return nil, api.Invalid("admin_user_ssh_key", "admin_user_ssh_key is required when ssh_public_access is enabled")
	}
	if p.AssignedUser == "" {
		p.AssignedUser = env.User
	} else if ok, err := env.UserExists(ctx, p.AssignedUser); err != nil {
		return nil, err
	} else if !ok {
		return nil, api.Invalid("assigned_user", "assigned_user %q is not a known user", p.AssignedUser)
	}
	if p.IdleTimeBeforeShutdown != "" {
		d, err := time.ParseDuration(p.IdleTimeBeforeShutdown)
		if err != nil || d < 0 {
			return nil, api.Invalid("idle_time_before_shutdown", "idle_time_before_shutdown must be a duration such as 30m or 2h, not %q", p.IdleTimeBeforeShutdown)
		}
		if d > maxIdleShutdown {
			return nil, api.Invalid("idle_time_before_shutdown", "idle_time_before_shutdown must be at most %s (30 days), not %q", maxIdleShutdown, p.IdleTimeBeforeShutdown)
		}
		if d == 0 {
			p.IdleTimeBeforeShutdown = ""
		} else {
			p.IdleTimeBeforeShutdown = d.String()
		}
	}
	maxRuns, err := intField("max_concurrent_runs", p.MaxConcurrentRuns, min(size.Cores, maxConcurrentRuns), 1, maxConcurrentRuns)
	if err != nil {
		return nil, err
	}
	p.MaxConcurrentRuns = ptr(maxRuns)
	return mustJSON(p), nil
}

func (instance) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(InstanceStatus{State: "Creating"})
}

var (
	_ NodeKind    = instance{}
	_ RunTarget   = instance{}
	_ QuotaHolder = instance{}
	_ Private     = instance{}
	_ Startable   = instance{}
	_ IdleStopper = instance{}
)

// IdleTime implements IdleStopper: idle_time_before_shutdown.
func (instance) IdleTime(props json.RawMessage) time.Duration {
	var p InstanceProperties
	json.Unmarshal(props, &p)
	d, _ := time.ParseDuration(p.IdleTimeBeforeShutdown)
	return max(d, 0)
}

// Provider implements NodeKind: an instance's node is a local one.
func (instance) Provider(json.RawMessage) string { return "local" }

// RunRules implements RunTarget: runs share the instance's cores unless
// they ask for some.
func (instance) RunRules(json.RawMessage, *Catalog) (RunRules, error) {
	return RunRules{DefaultCores: 0}, nil
}

// Quota implements QuotaHolder: one dedicated node while it runs.
func (instance) Quota(props json.RawMessage) (string, int, bool) {
	var p InstanceProperties
	json.Unmarshal(props, &p)
	return p.VMSize, 1, false
}

// AssignedUser implements Private.
func (instance) AssignedUser(props json.RawMessage) string {
	var p InstanceProperties
	json.Unmarshal(props, &p)
	return p.AssignedUser
}

// StartStop implements Startable.
func (instance) StartStop() {}
