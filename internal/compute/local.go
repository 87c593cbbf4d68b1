package compute

import (
	"context"
	"encoding/json"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
)

// LocalStatus is the built-in local target's status.
type LocalStatus struct {
	Reachable bool `json:"reachable"`
}

// local is the built-in target that runs work on the server's own host. It
// exists in every workspace and can be neither created nor deleted.
type local struct{}

func init() { Register(local{}) }

func (local) Type() string              { return "local" }
func (local) Origin() Origin            { return BuiltIn }
func (local) SecretFields() []string    { return nil }
func (local) UpdatableFields() []string { return nil }

func (local) Normalize(context.Context, json.RawMessage, map[string]secret.Value, Env) (json.RawMessage, error) {
	return nil, api.Invalid("type", "the local target is built in; it cannot be created or changed")
}

func (local) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(LocalStatus{Reachable: true})
}

var _ RunTarget = local{}

// RunRules implements RunTarget.
func (local) RunRules(json.RawMessage, *Catalog) (RunRules, error) {
	return RunRules{DefaultCores: 1}, nil
}
