package api

import (
	"context"
	"net/http"
)

// Workspace is a workspace as GET /api/v1/workspaces/{ws} returns it: its
// name and the policy its Owners set.
type Workspace struct {
	Name   string `json:"name"`
	Policy Policy `json:"policy"`
}

// Policy is a workspace's admin policy: limits the server applies to every
// compute instance and run, whatever their users ask for. An empty or zero
// field sets no limit.
type Policy struct {
	// MaxIdleTimeBeforeShutdown is the longest an instance may stay idle
	// before it is stopped (a duration such as "2h"): an instance asking
	// for longer is refused; one asking for no idle shutdown, or that was
	// made before the policy, is stopped after this long.
	MaxIdleTimeBeforeShutdown string `json:"max_idle_time_before_shutdown,omitempty"`
	// MaxRunDurationSeconds is the longest a run may run: a run asking for
	// more is refused; one asking for no limit gets this one.
	MaxRunDurationSeconds int64 `json:"max_run_duration_seconds,omitempty"`
}

// PolicyUpdate is the body of PATCH /api/v1/workspaces/{ws}: the policy
// fields to change; absent ones keep their value, "0" or 0 removes a limit.
type PolicyUpdate struct {
	Policy struct {
		MaxIdleTimeBeforeShutdown *string `json:"max_idle_time_before_shutdown,omitempty"`
		MaxRunDurationSeconds     *int64  `json:"max_run_duration_seconds,omitempty"`
	} `json:"policy"`
}

// ComputeLimits are the limits that hold for a target, its own settings
// and the workspace's policy together, as `compute show` reports them.
type ComputeLimits struct {
	// IdleTimeBeforeShutdown is when an instance is stopped once idle
	// ("" never); IdleTimeFromPolicy says the policy set it.
	IdleTimeBeforeShutdown string `json:"idle_time_before_shutdown,omitempty"`
	IdleTimeFromPolicy     bool   `json:"idle_time_from_policy,omitempty"`
	// MaxRunDurationSeconds is the longest a run on the target may run (0
	// no limit): the workspace's policy.
	MaxRunDurationSeconds int64 `json:"max_run_duration_seconds,omitempty"`
}

// GetWorkspace returns the client's workspace and its policy.
func (c *Client) GetWorkspace(ctx context.Context) (*Workspace, error) {
	return call[Workspace](ctx, c, http.MethodGet, c.wsPath(), nil)
}

// UpdateWorkspace changes the workspace's policy (Owners).
func (c *Client) UpdateWorkspace(ctx context.Context, in PolicyUpdate) (*Workspace, error) {
	return call[Workspace](ctx, c, http.MethodPatch, c.wsPath(), in)
}
