package compute

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// Provisioner is implemented by kinds whose targets need resources made
// when created and released when deleted. The provisioning controller calls
// it from its reconcile loop; both methods must be idempotent, because a
// server restart may call them again for the same target.
type Provisioner interface {
	// Provision makes what the target needs and may set c.Status. A
	// *ProvisionError fails the target for good; any other error is retried.
	Provision(ctx context.Context, c *store.Compute, env ProvisionEnv) error
	// Deprovision releases everything Provision made.
	Deprovision(ctx context.Context, c *store.Compute, env ProvisionEnv) error
}

// ProvisionEnv is what provisioning may use of the server.
type ProvisionEnv struct {
	// ProviderAvailable reports whether this server can realise nodes with
	// the named provider.
	ProviderAvailable func(name string) bool
	// ReleaseNodes removes every node of a cluster (nil: nothing to do).
	ReleaseNodes func(ctx context.Context, workspace, name, provider string) error
}

// ProvisionError is a permanent provisioning failure; it becomes an entry
// of the target's provisioning_errors.
type ProvisionError api.ProvisioningError

func (e *ProvisionError) Error() string { return e.Code + ": " + e.Message }

func (cluster) Provision(_ context.Context, c *store.Compute, env ProvisionEnv) error {
	var p ClusterProperties
	if err := json.Unmarshal(c.Properties, &p); err != nil {
		return err
	}
	if !env.ProviderAvailable(p.Provider) {
		msg := fmt.Sprintf("provider %q is not available on this server; use provider local", p.Provider)
		if p.Provider == "sim" {
			msg = `provider "sim" (simulated nodes, for load tests) is enabled only on a server started with paddock up --sim`
		}
		return &ProvisionError{Code: "ProviderNotAvailable", Message: msg}
	}
	return nil
}

func (cluster) Deprovision(ctx context.Context, c *store.Compute, env ProvisionEnv) error {
	var p ClusterProperties
	if err := json.Unmarshal(c.Properties, &p); err != nil {
		return err
	}
	return env.release(ctx, c, p.Provider)
}

// release removes a target's nodes through its provider, when the server
// gave a way to.
// attached is the lifecycle attached kinds share: attaching makes nothing
// (the node controller installs the agent, or submits pilot jobs, once the
// target exists); detaching has the kind's provider stop and remove what
// it installed.
type attached struct{}

// Provision has nothing to make.
func (attached) Provision(context.Context, *store.Compute, ProvisionEnv) error { return nil }

// Deprovision releases the target's nodes through its provider.
func (attached) Deprovision(ctx context.Context, c *store.Compute, env ProvisionEnv) error {
	name, _ := ProviderOf(*c)
	return env.release(ctx, c, name)
}

func (env ProvisionEnv) release(ctx context.Context, c *store.Compute, provider string) error {
	if env.ReleaseNodes == nil {
		return nil
	}
	return env.ReleaseNodes(ctx, c.Workspace, c.Name, provider)
}

func (instance) Provision(_ context.Context, c *store.Compute, env ProvisionEnv) error {
	if !env.ProviderAvailable("local") {
		return &ProvisionError{Code: "ProviderNotAvailable", Message: "the local provider is not available on this server"}
	}
	// The instance controller starts its node and moves it to Running.
	return nil
}

func (instance) Deprovision(ctx context.Context, c *store.Compute, env ProvisionEnv) error {
	return env.release(ctx, c, "local")
}

var (
	_ Provisioner = cluster{}
	_ Provisioner = instance{}
)
