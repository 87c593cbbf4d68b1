package compute

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/sshclient"
	"golang.org/x/crypto/ssh"
)

// RemoteProperties are the properties of a remote target (Azure ML's
// RemoteCompute): an existing machine reached over SSH.
type RemoteProperties struct {
	Common
	Address  string `json:"address"`
	SSHPort  int    `json:"ssh_port"`
	Username string `json:"username"`
	// HostKey is the SHA256 fingerprint of the host key seen at attach
	// (trust on first use); later connections must see the same.
	HostKey string `json:"host_key,omitempty"`
	// Pool, when set, makes the machine a host of that SSH pool: it runs no
	// runs of its own, and clusters with provider ssh and from = the pool
	// take their nodes from the pool's hosts, one node per host.
	Pool string `json:"pool,omitempty"`
}

// RemoteStatus is what attach found on the machine.
type RemoteStatus struct {
	Reachable bool    `json:"reachable"`
	OS        string  `json:"os"`
	Cores     int     `json:"cores"`
	MemoryGB  float64 `json:"memory_gb"`
	GPUs      int     `json:"gpus"`
	// Error is the last problem reaching the machine (e.g. its host key
	// changed), empty while all is well.
	Error string `json:"error,omitempty"`
}

// Attacher is implemented by attached kinds: Attach connects to what is
// being attached before anything is stored, checks it and returns the
// properties to store (e.g. with the host key recorded) and its status. An
// error means nothing is stored.
type Attacher interface {
	Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error)
}

// sshSecrets are the secret fields of a target Paddock logs in to over SSH.
func sshSecrets() []string { return []string{"password", "private_key", "private_key_passphrase"} }

var poolName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

type remote struct{ attached }

func init() { Register(remote{}) }

func (remote) Type() string              { return "remote" }
func (remote) Origin() Origin            { return Attached }
func (remote) SecretFields() []string    { return sshSecrets() }
func (remote) UpdatableFields() []string { return []string{"description", "tags"} }

func (remote) Normalize(_ context.Context, raw json.RawMessage, secrets map[string]secret.Value, _ Env) (json.RawMessage, error) {
	var p RemoteProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	if err := p.Common.validate(); err != nil {
		return nil, err
	}
	if err := checkSSHLogin(&p.Address, &p.SSHPort, p.Username, "the host name or IP address of the machine", secrets); err != nil {
		return nil, err
	}
	if p.Pool != "" && !poolName.MatchString(p.Pool) {
		return nil, api.Invalid("pool", "pool %q must be 1 to 63 lower-case letters, digits and '-', starting with a letter", p.Pool)
	}
	return mustJSON(p), nil
}

// checkSSHLogin checks and defaults the login of a target reached over SSH
// (address trimmed, port defaulted to 22, exactly one credential); host
// says what the address names.
func checkSSHLogin(address *string, port *int, username, host string, secrets map[string]secret.Value) error {
	*address = strings.TrimSpace(*address)
	switch {
	case *address == "":
		return api.Invalid("address", "address is required: %s", host)
	case strings.ContainsAny(*address, " /@"):
		return api.Invalid("address", "address %q must be a host name or IP address", *address)
	case username == "":
		return api.Invalid("username", "username is required")
	}
	var err error
	if *port, err = sshPort(*port); err != nil {
		return err
	}
	pw, key, pass := secrets["password"].IsSet(), secrets["private_key"].IsSet(), secrets["private_key_passphrase"].IsSet()
	switch {
	case pw == key:
		return api.Invalid("password", "give exactly one credential: password or private_key")
	case pass && !key:
		return api.Invalid("private_key_passphrase", "private_key_passphrase is only used with private_key")
	}
	return nil
}

// dialAttached connects to a target being attached and returns the host
// key it saw (recorded as host_key, which the caller may not give).
func dialAttached(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (*ssh.Client, string, error) {
	t, _, err := SSHTarget(props, secrets)
	if err != nil {
		return nil, "", err
	}
	if t.HostKey != "" {
		return nil, "", api.Invalid("host_key", "host_key is recorded by the server when it first connects; do not give it")
	}
	return sshclient.Dial(ctx, t)
}

func (remote) InitialStatus(json.RawMessage) json.RawMessage { return mustJSON(RemoteStatus{}) }

// SSHTarget builds the connection settings of a remote target.
func SSHTarget(props json.RawMessage, secrets map[string]secret.Value) (sshclient.Target, RemoteProperties, error) {
	var p RemoteProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return sshclient.Target{}, p, err
	}
	return sshclient.Target{Address: p.Address, Port: p.SSHPort, User: p.Username, HostKey: p.HostKey,
		Password: secrets["password"].Reveal(), PrivateKey: secrets["private_key"].Reveal(),
		Passphrase: secrets["private_key_passphrase"].Reveal()}, p, nil
}

// Attach connects, records the host key and detects the machine.
func (remote) Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error) {
	_, p, err := SSHTarget(props, secrets)
	if err != nil {
		return nil, nil, err
	}
	c, hostKey, err := dialAttached(ctx, props, secrets)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	st, err := hostFacts(c)
	if err != nil {
		return nil, nil, api.Unavailable("connected to %s but could not read what it has: %v", p.Address, err)
	}
	p.HostKey = hostKey
	return mustJSON(p), mustJSON(st), nil
}

// hostFacts reads what a machine reached over SSH has: its OS, cores,
// memory (GiB, one decimal) and NVIDIA GPUs.
func hostFacts(c *ssh.Client) (RemoteStatus, error) {
	out, err := sshclient.MustRun(c, `uname -sr; nproc; awk '/MemTotal/ {print $2}' /proc/meminfo; (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true`, nil)
	if err != nil {
		return RemoteStatus{}, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	st := RemoteStatus{Reachable: true}
	if len(lines) >= 3 {
		st.OS = lines[0]
		st.Cores, _ = strconv.Atoi(strings.TrimSpace(lines[1]))
		kb, _ := strconv.ParseFloat(strings.TrimSpace(lines[2]), 64)
		st.MemoryGB = float64(int(kb/(1<<20)*10)) / 10
	}
	if len(lines) >= 4 {
		st.GPUs, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	return st, nil
}

var (
	_ Attacher    = remote{}
	_ Provisioner = remote{}
)

var (
	_ NodeKind  = remote{}
	_ RunTarget = remote{}
)

// Provider implements NodeKind: the machine's agent is installed over SSH.
func (remote) Provider(json.RawMessage) string { return "ssh" }

// RunRules implements RunTarget: a host of an SSH pool runs no runs of its
// own.
func (remote) RunRules(props json.RawMessage, _ *Catalog) (RunRules, error) {
	var p RemoteProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return RunRules{}, err
	}
	r := RunRules{DefaultCores: 1}
	if p.Pool != "" {
		r.Refuse = fmt.Sprintf("this machine is a host of SSH pool %s and runs no runs of its own; submit to a cluster with --provider ssh --from %s", p.Pool, p.Pool)
	}
	return r, nil
}
