package compute

import (
	"github.com/paddock-ml/paddock/api"
)

// Event is something that moves a target through its provisioning states.
type Event string

// Events of the provisioning state machine.
const (
	EventProvisioned   Event = "provisioned"    // the provider made the resources
	EventProvisionFail Event = "provision-fail" // the provider could not
	EventUpdate        Event = "update"         // a user changed properties
	EventUpdated       Event = "updated"        // the change was applied
	EventUpdateFail    Event = "update-fail"    // the change could not be applied
	EventDelete        Event = "delete"         // a user asked for deletion
)

// transitions is the whole state machine: a state and an event give the
// next state. Anything not listed is refused. A new target starts in
// Creating; a target leaves the machine when Deleting completes.
var transitions = map[api.ProvisioningState]map[Event]api.ProvisioningState{
	api.StateCreating: {
		EventProvisioned:   api.StateSucceeded,
		EventProvisionFail: api.StateFailed,
		EventDelete:        api.StateDeleting,
	},
	api.StateSucceeded: {
		EventUpdate: api.StateUpdating,
		EventDelete: api.StateDeleting,
	},
	api.StateUpdating: {
		EventUpdated:    api.StateSucceeded,
		EventUpdateFail: api.StateFailed,
		EventDelete:     api.StateDeleting,
	},
	api.StateFailed: {
		EventDelete: api.StateDeleting,
	},
	api.StateCanceled: {
		EventDelete: api.StateDeleting,
	},
}

// Next returns the state after ev happens in from, or an api.ErrConflict
// that tells the user why the operation cannot happen now.
func Next(name string, from api.ProvisioningState, ev Event) (api.ProvisioningState, error) {
	if to, ok := transitions[from][ev]; ok {
		return to, nil
	}
	switch {
	case ev == EventUpdate && from == api.StateFailed:
		return "", api.Conflict("compute target %q is Failed and cannot be updated; delete it and create it again", name)
	case ev == EventUpdate:
		return "", api.Conflict("compute target %q is %s; wait until it is Succeeded (`paddock compute wait %s`) and retry", name, from, name)
	case ev == EventDelete && from == api.StateDeleting:
		return "", api.Conflict("compute target %q is already being deleted", name)
	}
	return "", api.Conflict("compute target %q cannot go from %s on %s", name, from, ev)
}
