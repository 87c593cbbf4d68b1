package api

import (
	"encoding/json"
	"time"
)

// ProvisioningState is where a compute target is in its lifecycle.
type ProvisioningState string

// Provisioning states, as in PRODUCT.md.
const (
	StateCreating  ProvisioningState = "Creating"
	StateSucceeded ProvisioningState = "Succeeded"
	StateFailed    ProvisioningState = "Failed"
	StateUpdating  ProvisioningState = "Updating"
	StateDeleting  ProvisioningState = "Deleting"
	StateCanceled  ProvisioningState = "Canceled"
)

// Terminal reports whether no further transition happens without a user
// request.
func (s ProvisioningState) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCanceled
}

// ProvisioningError is one entry of a target's provisioning_errors.
type ProvisioningError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Compute is a compute target as the API returns it. Properties are
// type-specific and never contain secrets; Status is live and type-specific.
type Compute struct {
	Name               string              `json:"name"`
	Type               string              `json:"type"`
	ProvisioningState  ProvisioningState   `json:"provisioning_state"`
	ProvisioningErrors []ProvisioningError `json:"provisioning_errors"`
	CreatedBy          string              `json:"created_by"`
	CreatedAt          time.Time           `json:"created_at"`
	UpdatedAt          time.Time           `json:"updated_at"`
	Properties         json.RawMessage     `json:"properties"`
	// SecretsSet names the write-only properties that hold a value; their
	// values are never returned.
	SecretsSet []string        `json:"secrets_set,omitempty"`
	Status     json.RawMessage `json:"status"`
	// Identity is the target's managed identity, when it has one.
	Identity *ComputeIdentity `json:"identity,omitempty"`
	// Limits are the limits that hold for the target with the workspace's
	// policy applied, for kinds they concern.
	Limits *ComputeLimits `json:"limits,omitempty"`
}

// ComputeCreate is the body of POST .../computes. Properties holds the
// type-specific fields, secrets included (they are write-only).
type ComputeCreate struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties json.RawMessage `json:"properties"`
}

// ComputeUpdate is the body of PATCH .../computes/{name}: the properties to
// change; absent ones keep their value.
type ComputeUpdate struct {
	Properties json.RawMessage `json:"properties"`
}

// ComputeList is the body of GET .../computes.
type ComputeList struct {
	Items []Compute `json:"items"`
}

// Size is one entry of the size catalog.
type Size struct {
	Name     string  `json:"name"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	GPUs     int     `json:"gpus"`
	Family   string  `json:"family"`
	// Source is "builtin" or the file an admin defined it in.
	Source string `json:"source"`
}

// SizeList is the body of GET .../sizes.
type SizeList struct {
	Items []Size `json:"items"`
	// Warning says why the admin's sizes file is not in use as it is now
	// (it is invalid; the last good catalog is listed).
	Warning string `json:"warning,omitempty"`
}

// Version is the body of GET /api/v1/version.
type Version struct {
	Version string `json:"version"`
}

// Node is one node of a compute target.
type Node struct {
	ID        string    `json:"id"`
	Compute   string    `json:"compute"`
	State     string    `json:"state"` // starting, idle, running, leaving, unusable, preempted
	Reason    string    `json:"reason,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	Address   string    `json:"address,omitempty"`
	Cores     float64   `json:"cores"`
	MemoryGB  float64   `json:"memory_gb"`
	GPUs      []GPUInfo `json:"gpus,omitempty"`
	Version   string    `json:"version,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// NodeList is the body of GET .../computes/{name}/nodes.
type NodeList struct {
	Items []Node `json:"items"`
}

// Quota is a core quota and what is in use under it. Family "" is the
// workspace-wide quota; -1 means no limit.
type Quota struct {
	Family           string  `json:"family"`
	DedicatedCores   int     `json:"dedicated_cores"`
	LowPriorityCores int     `json:"lowpriority_cores"`
	DedicatedUsed    float64 `json:"dedicated_used"`
	LowPriorityUsed  float64 `json:"lowpriority_used"`
}

// QuotaList is the body of GET .../quotas.
type QuotaList struct {
	Items []Quota `json:"items"`
}

// QuotaSet is the body of PUT .../quotas: the fields to change.
type QuotaSet struct {
	Family           string `json:"family,omitempty"`
	DedicatedCores   *int   `json:"dedicated_cores,omitempty"`
	LowPriorityCores *int   `json:"lowpriority_cores,omitempty"`
}
