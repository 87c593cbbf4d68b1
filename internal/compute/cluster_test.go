package compute_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/internal/secret"
)

// clusterDefaults is what Normalize makes of
// {"vm_size": "standard_d2_v2", "max_nodes": 4}.
func clusterDefaults() map[string]any {
	return map[string]any{
		"vm_size":                         "STANDARD_D2_V2",
		"vm_priority":                     "dedicated",
		"min_nodes":                       0.0,
		"max_nodes":                       4.0,
		"idle_seconds_before_scaledown":   1800.0,
		"identity_type":                   "None",
		"remote_login_port_public_access": "NotSpecified",
		"provider":                        "local",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func password(s string) map[string]secret.Value {
	return map[string]secret.Value{"admin_user_password": secret.New(s)}
}

func TestClusterNormalize(t *testing.T) {
	t.Parallel()
	keyJSON, _ := json.Marshal(sshKey()) // with its trailing newline
	tests := []struct {
		desc    string
		props   string
		secrets map[string]secret.Value
		want    map[string]any
	}{
		{
			desc:  "defaults",
			props: `{"vm_size":"standard_d2_v2","max_nodes":4}`,
			want:  clusterDefaults(),
		},
		{
			desc:  "vm_size in mixed case gets the catalog spelling",
			props: `{"vm_size":"Standard_Nc6","max_nodes":4}`,
			want:  with(clusterDefaults(), "vm_size", "STANDARD_NC6"),
		},
		{
			desc:  "min_nodes equal to max_nodes",
			props: `{"vm_size":"STANDARD_D2_V2","min_nodes":4,"max_nodes":4}`,
			want:  with(clusterDefaults(), "min_nodes", 4.0),
		},
		{
			desc:  "idle seconds zero is kept",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"idle_seconds_before_scaledown":0}`,
			want:  with(clusterDefaults(), "idle_seconds_before_scaledown", 0.0),
		},
		{
			desc:  "enums canonicalised case-insensitively",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"vm_priority":"LowPriority","identity_type":"systemassigned","remote_login_port_public_access":"enabled","provider":"SSH","from":"gpu-pool"}`,
			want: with(clusterDefaults(), "vm_priority", "lowpriority", "identity_type", "SystemAssigned",
				"remote_login_port_public_access", "Enabled", "provider", "ssh", "from", "gpu-pool"),
		},
		{
			desc:  "UserAssigned with identity_id",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_type":"UserAssigned","identity_id":["id-1","id-2"]}`,
			want:  with(clusterDefaults(), "identity_type", "UserAssigned", "identity_id", []any{"id-1", "id-2"}),
		},
		{
			desc: "identity_id by Azure resource id, any case, without duplicates",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_type":"UserAssigned","identity_id":[` +
				`"/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/blob-reader",` +
				`"BLOB-READER","id-1"]}`,
			want: with(clusterDefaults(), "identity_type", "UserAssigned", "identity_id", []any{"Blob-Reader", "id-1"}),
		},
		{
			desc:  "admin_username with ssh key, key trimmed",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"admin_username":"azureuser","admin_user_ssh_key":` + string(keyJSON) + `}`,
			want:  with(clusterDefaults(), "admin_username", "azureuser", "admin_user_ssh_key", sshKeyLine()),
		},
		{
			desc:    "admin_username with password secret",
			props:   `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"admin_username":"azureuser"}`,
			secrets: password("hunter2"),
			want:    with(clusterDefaults(), "admin_username", "azureuser"),
		},
		{
			desc:  "provider slurm from a slurm target",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"slurm","from":"slurm-a"}`,
			want:  with(clusterDefaults(), "provider", "slurm", "from", "slurm-a"),
		},
		{
			desc:  "provider kubernetes from a kubernetes target, any case",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"Kubernetes","from":"kube-a"}`,
			want:  with(clusterDefaults(), "provider", "kubernetes", "from", "kube-a"),
		},
		{
			desc:  "description and tags",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"description":"` + strings.Repeat("é", 1024) + `","tags":{"team":"vision","cost-center":""}}`,
			want: with(clusterDefaults(), "description", strings.Repeat("é", 1024),
				"tags", map[string]any{"team": "vision", "cost-center": ""}),
		},
		{
			desc:  "empty identity_id list with None",
			props: `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_id":[]}`,
			want:  clusterDefaults(),
		},
	}
	k := mustKind(t, "cluster")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			env := testEnv(t)
			got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), tc.secrets, env)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if d := cmp.Diff(tc.want, obj(t, got)); d != "" {
				t.Fatalf("Normalize mismatch (-want +got):\n%s", d)
			}
			// Update re-normalises stored properties: that must be a no-op.
			wantIdempotent(t, k, got, tc.secrets, env)
		})
	}
}

func TestClusterNormalizeInvalid(t *testing.T) {
	t.Parallel()
	const base = `"vm_size":"STANDARD_D2_V2","max_nodes":4`
	manyTags := map[string]string{}
	for i := range 51 {
		manyTags[strings.Repeat("k", i+1)] = "v"
	}
	manyTagsJSON, _ := json.Marshal(manyTags)
	keyJSON, _ := json.Marshal(sshKey())
	tests := []struct {
		desc    string
		props   string
		secrets map[string]secret.Value
		field   string
		msg     string // a substring of the message, when it matters
	}{
		{desc: "missing vm_size", props: `{"max_nodes":4}`, field: "vm_size", msg: "required"},
		{desc: "unknown vm_size", props: `{"vm_size":"STANDARD_X99","max_nodes":4}`, field: "vm_size", msg: "STANDARD_X99"},
		{desc: "missing max_nodes", props: `{"vm_size":"STANDARD_D2_V2"}`, field: "max_nodes", msg: "required"},
		{desc: "max_nodes null", props: `{"vm_size":"STANDARD_D2_V2","max_nodes":null}`, field: "max_nodes"},
		{desc: "max_nodes 0", props: `{"vm_size":"STANDARD_D2_V2","max_nodes":0}`, field: "max_nodes", msg: "at least 1"},
		{desc: "max_nodes negative", props: `{"vm_size":"STANDARD_D2_V2","max_nodes":-3}`, field: "max_nodes"},
		{desc: "negative min_nodes", props: `{` + base + `,"min_nodes":-1}`, field: "min_nodes", msg: "at least 0"},
		{desc: "min_nodes above max_nodes", props: `{` + base + `,"min_nodes":5}`, field: "min_nodes", msg: "max_nodes"},
		{desc: "negative idle seconds", props: `{` + base + `,"idle_seconds_before_scaledown":-1}`, field: "idle_seconds_before_scaledown"},
		{desc: "bad vm_priority", props: `{` + base + `,"vm_priority":"spot"}`, field: "vm_priority", msg: "spot"},
		{desc: "bad identity_type", props: `{` + base + `,"identity_type":"Managed"}`, field: "identity_type", msg: "Managed"},
		{desc: "UserAssigned without identity_id", props: `{` + base + `,"identity_type":"UserAssigned"}`, field: "identity_id"},
		{desc: "identity_id without UserAssigned", props: `{` + base + `,"identity_id":["id-1"]}`, field: "identity_id"},
		{desc: "identity_id with SystemAssigned", props: `{` + base + `,"identity_type":"SystemAssigned","identity_id":["id-1"]}`, field: "identity_id"},
		{desc: "empty identity_id entry", props: `{` + base + `,"identity_type":"UserAssigned","identity_id":["id-1",""]}`, field: "identity_id"},
		{desc: "identity_id naming no identity", props: `{` + base + `,"identity_type":"UserAssigned","identity_id":["nobody"]}`, field: "identity_id", msg: "paddock identity create nobody"},
		{desc: "identity_id not a name", props: `{` + base + `,"identity_type":"UserAssigned","identity_id":["two words"]}`, field: "identity_id", msg: "two words"},
		{desc: "identity_id another Azure resource", props: `{` + base + `,"identity_type":"UserAssigned","identity_id":["/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"]}`, field: "identity_id"},
		{desc: "bad remote_login_port_public_access", props: `{` + base + `,"remote_login_port_public_access":"Open"}`, field: "remote_login_port_public_access"},
		{desc: "invalid ssh key", props: `{` + base + `,"admin_username":"u","admin_user_ssh_key":"ssh-ed25519 notbase64"}`, field: "admin_user_ssh_key", msg: "OpenSSH"},
		{desc: "private key as ssh key", props: `{` + base + `,"admin_username":"u","admin_user_ssh_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}`, field: "admin_user_ssh_key"},
		{desc: "ssh key without admin_username", props: `{` + base + `,"admin_user_ssh_key":` + string(keyJSON) + `}`, field: "admin_username"},
		{desc: "password without admin_username", props: `{` + base + `}`, secrets: password("hunter2"), field: "admin_username"},
		{desc: "bad provider", props: `{` + base + `,"provider":"aws"}`, field: "provider", msg: "aws"},
		{desc: "provider slurm without from", props: `{` + base + `,"provider":"slurm"}`, field: "from", msg: "slurm"},
		{desc: "provider Kubernetes without from", props: `{` + base + `,"provider":"Kubernetes"}`, field: "from", msg: "attached kubernetes target"},
		{desc: "from naming a slurm target for kubernetes", props: `{` + base + `,"provider":"kubernetes","from":"slurm-a"}`, field: "from", msg: "needs a kubernetes target"},
		{desc: "from with provider local", props: `{` + base + `,"from":"slurm-a"}`, field: "from"},
		{desc: "provider ssh with a bad pool name", props: `{` + base + `,"provider":"ssh","from":"Slurm_A"}`, field: "from"},
		{desc: "provider ssh without a pool", props: `{` + base + `,"provider":"ssh"}`, field: "from"},
		{desc: "from naming a missing target", props: `{` + base + `,"provider":"slurm","from":"nowhere"}`, field: "from", msg: "nowhere"},
		{desc: "from naming a kubernetes target for slurm", props: `{` + base + `,"provider":"slurm","from":"kube-a"}`, field: "from", msg: "kubernetes"},
		{desc: "from naming a remote target for slurm", props: `{` + base + `,"provider":"slurm","from":"box-a"}`, field: "from", msg: "remote"},
		{desc: "from naming a cluster", props: `{` + base + `,"provider":"slurm","from":"cpu-small"}`, field: "from"},
		{desc: "unknown property", props: `{` + base + `,"vm_sizes":"STANDARD_D2_V2"}`, field: "vm_sizes", msg: "unknown property"},
		{desc: "unknown property nodes", props: `{` + base + `,"nodes":3}`, field: "nodes"},
		{desc: "secret left in properties", props: `{` + base + `,"admin_user_password":"x"}`, field: "admin_user_password"},
		{desc: "max_nodes a string", props: `{"vm_size":"STANDARD_D2_V2","max_nodes":"four"}`, field: "max_nodes", msg: "a number"},
		{desc: "max_nodes fractional", props: `{"vm_size":"STANDARD_D2_V2","max_nodes":2.5}`, field: "max_nodes"},
		{desc: "vm_size a number", props: `{"vm_size":2,"max_nodes":4}`, field: "vm_size", msg: "a string"},
		{desc: "identity_id a string", props: `{` + base + `,"identity_type":"UserAssigned","identity_id":"id-1"}`, field: "identity_id", msg: "a list"},
		{desc: "description too long", props: `{` + base + `,"description":"` + strings.Repeat("x", 1025) + `"}`, field: "description", msg: "1024"},
		{desc: "tag key with =", props: `{` + base + `,"tags":{"a=b":"c"}}`, field: "tags"},
		{desc: "tag key with comma", props: `{` + base + `,"tags":{"a,b":"c"}}`, field: "tags"},
		{desc: "empty tag key", props: `{` + base + `,"tags":{"":"c"}}`, field: "tags"},
		{desc: "tag key too long", props: `{` + base + `,"tags":{"` + strings.Repeat("k", 129) + `":"c"}}`, field: "tags"},
		{desc: "tag value too long", props: `{` + base + `,"tags":{"k":"` + strings.Repeat("v", 257) + `"}}`, field: "tags"},
		{desc: "too many tags", props: `{` + base + `,"tags":` + string(manyTagsJSON) + `}`, field: "tags", msg: "50"},
	}
	k := mustKind(t, "cluster")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := k.Normalize(t.Context(), json.RawMessage(tc.props), tc.secrets, testEnv(t))
			wantRefused(t, got, err, tc.field, tc.msg)
		})
	}
}

// A failing lookup of the `from` target is the store's problem, not the
// user's: it is passed on as it is, not turned into an Invalid error.
func TestClusterNormalizeTargetLookupError(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "cluster")
	_, err := k.Normalize(t.Context(),
		json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":4,"provider":"slurm","from":"broken"}`), nil, testEnv(t))
	if !errors.Is(err, errLookup) {
		t.Fatalf("err = %v, want the lookup error %v", err, errLookup)
	}
}

// A failing lookup of an identity is passed on as it is, like a target's.
func TestClusterNormalizeIdentityLookupError(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "cluster")
	_, err := k.Normalize(t.Context(),
		json.RawMessage(`{"vm_size":"STANDARD_D2_V2","max_nodes":4,"identity_type":"UserAssigned","identity_id":["broken-id"]}`), nil, testEnv(t))
	if !errors.Is(err, errLookup) {
		t.Fatalf("err = %v, want the lookup error %v", err, errLookup)
	}
}

// A wrong JSON type in a field of the embedded Common struct must name the
// JSON field, as it does for every other field.
func TestClusterNormalizeWrongTypeInCommonField(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "cluster")
	for _, tc := range []struct{ desc, props, field string }{
		{"description a number", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"description":5}`, "description"},
		{"tags a list", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"tags":["a"]}`, "tags"},
		{"tag value a number", `{"vm_size":"STANDARD_D2_V2","max_nodes":4,"tags":{"a":1}}`, "tags"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := k.Normalize(t.Context(), json.RawMessage(tc.props), nil, testEnv(t))
			ae := wantInvalid(t, err, tc.field)
			if strings.Contains(ae.Message, "Common") {
				t.Errorf("message %q shows the Go struct name", ae.Message)
			}
		})
	}
}

// admin_user_ssh_key is documented as one authorized_keys line.
func TestClusterNormalizeSSHKeyIsOneLine(t *testing.T) {
	t.Parallel()
	k := mustKind(t, "cluster")
	for _, tc := range []struct{ desc, key string }{
		{"junk line before the key", "not a key\n" + sshKeyLine()},
		{"two keys", sshKeyLine() + "\n" + sshKeyLine()},
		{"comment line before the key", "# a comment\n" + sshKeyLine()},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			props, _ := json.Marshal(map[string]any{
				"vm_size": "STANDARD_D2_V2", "max_nodes": 4, "admin_username": "u", "admin_user_ssh_key": tc.key,
			})
			_, err := k.Normalize(t.Context(), props, nil, testEnv(t))
			wantInvalid(t, err, "admin_user_ssh_key")
		})
	}
}
