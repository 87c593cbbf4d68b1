package compute_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
	"golang.org/x/crypto/ssh"
)

// errLookup is what the fake Target and UserExists return for the names
// "broken" and "ghost": a failure of the store, not an answer.
var errLookup = errors.New("store unavailable")

// testEnv is an Env backed by maps: a catalog of only the built-in sizes,
// users alice and bob, one target of each attached type, and identities
// named id-* and Blob-Reader ("broken-id" fails to look up).
func testEnv(t *testing.T) compute.Env {
	t.Helper()
	cat, err := compute.NewCatalog(filepath.Join(t.TempDir(), compute.SizesFile))
	if err != nil {
		t.Fatalf("NewCatalog without a file: %v", err)
	}
	users := map[string]bool{"alice": true, "bob": true}
	targets := map[string]string{
		"slurm-a":   "slurm",
		"kube-a":    "kubernetes",
		"box-a":     "remote",
		"cpu-small": "cluster",
	}
	return compute.Env{
		Sizes: cat,
		User:  "alice",
		UserExists: func(_ context.Context, name string) (bool, error) {
			if name == "ghost" {
				return false, errLookup
			}
			return users[name], nil
		},
		Target: func(_ context.Context, name string) (string, error) {
			if name == "broken" {
				return "", errLookup
			}
			typ, ok := targets[name]
			if !ok {
				return "", api.NotFound("compute target %q not found", name)
			}
			return typ, nil
		},
		Identity: func(_ context.Context, name string) (string, error) {
			switch {
			case name == "broken-id":
				return "", errLookup
			case strings.EqualFold(name, "blob-reader"):
				return "Blob-Reader", nil
			case strings.HasPrefix(name, "id-"):
				return name, nil
			}
			return "", api.NotFound("identity %q not found", name)
		},
	}
}

// sshKey returns one authorized_keys line (with its trailing newline, as
// ssh.MarshalAuthorizedKey writes it) for a fresh ed25519 key.
var sshKey = sync.OnceValue(func() string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return string(ssh.MarshalAuthorizedKey(pk))
})

// sshKeyLine is sshKey without the trailing newline: what Normalize stores.
func sshKeyLine() string { return strings.TrimSpace(sshKey()) }

func mustKind(t *testing.T, typ string) compute.Kind {
	t.Helper()
	k, ok := compute.Lookup(typ)
	if !ok {
		t.Fatalf("Lookup(%q): kind not registered", typ)
	}
	return k
}

// wantInvalid fails unless err is an *api.Error with Code Invalid and the
// given Field.
func wantInvalid(t *testing.T, err error, field string) *api.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want Invalid error for field %q", field)
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %T %v, want *api.Error", err, err)
	}
	if ae.Code != api.CodeInvalid || ae.Field != field {
		t.Fatalf("err = {Code: %q, Field: %q, Message: %q}, want Code %q, Field %q",
			ae.Code, ae.Field, ae.Message, api.CodeInvalid, field)
	}
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("errors.Is(%v, api.ErrInvalid) = false", err)
	}
	if ae.Message == "" {
		t.Fatal("Invalid error has an empty message")
	}
	return ae
}

// obj decodes a JSON object for comparison; numbers become float64.
func obj(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", raw, err)
	}
	return m
}

// wantRefused fails unless a call returned no result and an Invalid error
// for field whose message contains msg.
func wantRefused(t *testing.T, got json.RawMessage, err error, field, msg string) {
	t.Helper()
	ae := wantInvalid(t, err, field)
	if !strings.Contains(ae.Message, msg) {
		t.Errorf("message %q does not contain %q", ae.Message, msg)
	}
	if got != nil {
		t.Errorf("got %s with an error, want nil", got)
	}
}

// wantIdempotent checks that normalising Normalize's own output changes
// nothing: updates re-normalise stored properties.
func wantIdempotent(t *testing.T, k compute.Kind, got json.RawMessage, secrets map[string]secret.Value, env compute.Env) {
	t.Helper()
	again, err := k.Normalize(t.Context(), got, secrets, env)
	if err != nil {
		t.Fatalf("Normalize of its own output: %v", err)
	}
	if d := cmp.Diff(obj(t, got), obj(t, again)); d != "" {
		t.Errorf("Normalize is not idempotent (-first +second):\n%s", d)
	}
}
