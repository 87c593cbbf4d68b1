package compute_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
)

var (
	allStates = []api.ProvisioningState{
		api.StateCreating, api.StateSucceeded, api.StateFailed,
		api.StateUpdating, api.StateDeleting, api.StateCanceled,
	}
	allEvents = []compute.Event{
		compute.EventProvisioned, compute.EventProvisionFail, compute.EventUpdate,
		compute.EventUpdated, compute.EventUpdateFail, compute.EventDelete,
	}
)

func TestNext(t *testing.T) {
	t.Parallel()
	// allowed is the whole state machine, written out independently of
	// the package's table; every pair not listed must be refused.
	allowed := map[api.ProvisioningState]map[compute.Event]api.ProvisioningState{
		api.StateCreating: {
			compute.EventProvisioned:   api.StateSucceeded,
			compute.EventProvisionFail: api.StateFailed,
			compute.EventDelete:        api.StateDeleting,
		},
		api.StateSucceeded: {
			compute.EventUpdate: api.StateUpdating,
			compute.EventDelete: api.StateDeleting,
		},
		api.StateUpdating: {
			compute.EventUpdated:    api.StateSucceeded,
			compute.EventUpdateFail: api.StateFailed,
			compute.EventDelete:     api.StateDeleting,
		},
		api.StateFailed:   {compute.EventDelete: api.StateDeleting},
		api.StateCanceled: {compute.EventDelete: api.StateDeleting},
	}
	// msgs: what a refusal must tell the user, where it says more than
	// the generic message.
	msgs := map[string]string{
		"Creating/update":       "wait until it is Succeeded",
		"Updating/update":       "wait until it is Succeeded",
		"Deleting/update":       "wait until it is Succeeded",
		"Canceled/update":       "wait until it is Succeeded",
		"Failed/update":         "delete it and create it again",
		"Deleting/delete":       "already being deleted",
		"Succeeded/provisioned": "cannot go from Succeeded on provisioned",
	}
	for _, from := range allStates {
		for _, ev := range allEvents {
			name := fmt.Sprintf("%s/%s", from, ev)
			want, ok := allowed[from][ev]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got, err := compute.Next("gpu-box", from, ev)
				if ok {
					if err != nil || got != want {
						t.Fatalf("Next(%s, %s) = %q, %v; want %q", from, ev, got, err, want)
					}
					return
				}
				if !errors.Is(err, api.ErrConflict) {
					t.Fatalf("Next(%s, %s) = %q, %v; want a Conflict error", from, ev, got, err)
				}
				if got != "" {
					t.Errorf("state = %q with an error, want empty", got)
				}
				if !strings.Contains(err.Error(), `"gpu-box"`) {
					t.Errorf("message %q does not name the target", err)
				}
				if m := msgs[name]; !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not contain %q", err, m)
				}
			})
		}
	}
}
