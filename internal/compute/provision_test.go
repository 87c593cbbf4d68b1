package compute_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
)

func provisioner(t *testing.T, typ string) compute.Provisioner {
	t.Helper()
	p, ok := mustKind(t, typ).(compute.Provisioner)
	if !ok {
		t.Fatalf("kind %s is not a Provisioner", typ)
	}
	return p
}

func only(providers ...string) compute.ProvisionEnv {
	return compute.ProvisionEnv{ProviderAvailable: func(name string) bool {
		for _, p := range providers {
			if p == name {
				return true
			}
		}
		return false
	}}
}

func TestClusterProvision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		props    string
		env      compute.ProvisionEnv
		wantCode string // "" for success
	}{
		{"local provider available", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, only("local"), ""},
		{"ssh provider available", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"ssh","from":"gpu-pool"}`, only("local", "ssh"), ""},
		{"ssh provider not available", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"ssh","from":"gpu-pool"}`, only("local"), "ProviderNotAvailable"},
		{"slurm provider not available", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"slurm","from":"slurm-a"}`, only("local"), "ProviderNotAvailable"},
		{"no provider available", `{"vm_size":"STANDARD_D2_V2","max_nodes":4}`, only(), "ProviderNotAvailable"},
	}
	p := provisioner(t, "cluster")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			props := normalized(t, "cluster", tc.props)
			status := mustKind(t, "cluster").InitialStatus(props)
			c := &store.Compute{Name: "cpu-cluster", Type: "cluster", Properties: props, Status: status}
			err := p.Provision(t.Context(), c, tc.env)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Provision: %v", err)
				}
			} else {
				var pe *compute.ProvisionError
				if !errors.As(err, &pe) {
					t.Fatalf("Provision err = %T %v, want *ProvisionError", err, err)
				}
				if pe.Code != tc.wantCode || pe.Message == "" {
					t.Errorf("ProvisionError = %+v, want code %s and a message", pe, tc.wantCode)
				}
				if want := pe.Code + ": " + pe.Message; err.Error() != want {
					t.Errorf("Error() = %q, want %q", err.Error(), want)
				}
			}
			if string(c.Status) != string(status) {
				t.Errorf("Status changed to %s", c.Status)
			}
			if err := p.Deprovision(t.Context(), c, tc.env); err != nil {
				t.Errorf("Deprovision: %v", err)
			}
		})
	}
}

func TestClusterProvisionNamesProvider(t *testing.T) {
	t.Parallel()
	c := &store.Compute{Properties: normalized(t, "cluster", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"slurm","from":"slurm-a"}`)}
	err := provisioner(t, "cluster").Provision(t.Context(), c, only("local"))
	if err == nil || !strings.Contains(err.Error(), `"slurm"`) {
		t.Fatalf("err = %v, want one naming provider slurm", err)
	}
}

// Properties that cannot be read are not a permanent failure.
func TestClusterProvisionBadProperties(t *testing.T) {
	t.Parallel()
	c := &store.Compute{Properties: json.RawMessage(`[`)}
	err := provisioner(t, "cluster").Provision(t.Context(), c, only("local"))
	var pe *compute.ProvisionError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a non-ProvisionError error", err)
	}
}

func TestInstanceProvision(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "instance")
	tests := []struct {
		desc      string
		status    json.RawMessage
		env       compute.ProvisionEnv
		wantState string // "" for a ProvisionError
	}{
		// The instance controller, not provisioning, starts the node and
		// moves the instance to Running.
		{"from Creating", k.InitialStatus(nil), only("local"), "Creating"},
		{"again when already Running", json.RawMessage(`{"state":"Running","queued_runs":2,"running_runs":1}`), only("local"), "Running"},
		{"local provider not available", k.InitialStatus(nil), only("ssh"), ""},
	}
	p := provisioner(t, "instance")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			props := normalized(t, "instance", `{"vm_size":"STANDARD_DS3_V2"}`)
			c := &store.Compute{Name: "nb-alice", Type: "instance", Properties: props, Status: tc.status}
			err := p.Provision(t.Context(), c, tc.env)
			if tc.wantState == "" {
				var pe *compute.ProvisionError
				if !errors.As(err, &pe) || pe.Code != "ProviderNotAvailable" {
					t.Fatalf("Provision err = %v, want ProviderNotAvailable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}
			want := obj(t, tc.status)
			want["state"] = tc.wantState
			if d := cmp.Diff(want, obj(t, c.Status)); d != "" {
				t.Errorf("status mismatch (-want +got):\n%s", d)
			}
			// Provision is idempotent: a restart may call it again.
			if err := p.Provision(t.Context(), c, tc.env); err != nil {
				t.Fatalf("second Provision: %v", err)
			}
			if d := cmp.Diff(want, obj(t, c.Status)); d != "" {
				t.Errorf("status after a second Provision mismatch (-want +got):\n%s", d)
			}
			if err := p.Deprovision(t.Context(), c, tc.env); err != nil {
				t.Errorf("Deprovision: %v", err)
			}
		})
	}
}

func TestLocalIsNotAProvisioner(t *testing.T) {
	t.Parallel()
	if _, ok := mustKind(t, "local").(compute.Provisioner); ok {
		t.Error("the built-in local kind implements Provisioner")
	}
}
