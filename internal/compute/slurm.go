package compute

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/sshclient"
)

// SlurmProperties are the properties of a slurm target (Azure ML's
// BatchCompute, for a scheduler you already run): the login node of a
// Slurm cluster, reached over SSH, where sbatch, squeue and scancel run.
type SlurmProperties struct {
	Common
	Address  string `json:"address"`
	SSHPort  int    `json:"ssh_port"`
	Username string `json:"username"`
	HostKey  string `json:"host_key,omitempty"`
	// RestURL would reach slurmrestd instead of a login node; not supported yet.
	RestURL        string `json:"rest_url,omitempty"`
	Partition      string `json:"partition,omitempty"`
	Account        string `json:"account,omitempty"`
	QoS            string `json:"qos,omitempty"`
	LowPriorityQoS string `json:"lowpriority_qos,omitempty"`
	// SlurmConf is SLURM_CONF for the commands on the login node, for a
	// cluster whose configuration is not in the default place.
	SlurmConf string `json:"slurm_conf,omitempty"`
}

// SlurmPartition is one partition as sinfo reports it.
type SlurmPartition struct {
	Name     string  `json:"name"`
	Default  bool    `json:"default"`
	Nodes    int     `json:"nodes"`
	CPUs     int     `json:"cpus_per_node"`
	MemoryGB float64 `json:"memory_gb_per_node"`
}

// SlurmStatus is what attach found, and the last problem reaching it.
type SlurmStatus struct {
	Reachable  bool             `json:"reachable"`
	Partitions []SlurmPartition `json:"partitions"`
	Error      string           `json:"error,omitempty"`
}

type slurm struct{ attached }

func init() { Register(slurm{}) }

func (slurm) Type() string   { return "slurm" }
func (slurm) Origin() Origin { return Attached }
func (slurm) SecretFields() []string {
	return append(sshSecrets(), "jwt")
}
func (slurm) UpdatableFields() []string { return []string{"description", "tags"} }

func (slurm) Normalize(_ context.Context, raw json.RawMessage, secrets map[string]secret.Value, _ Env) (json.RawMessage, error) {
	var p SlurmProperties
	if err := decodeStrict(raw, &p); err != nil {
		return nil, err
	}
	if err := p.Common.validate(); err != nil {
		return nil, err
	}
	if p.RestURL != "" || secrets["jwt"].IsSet() {
		return nil, api.Invalid("rest_url", "attaching through slurmrestd is not supported by this server yet; attach the login node over SSH with --address")
	}
	p.Address = strings.TrimSpace(p.Address)
	switch {
	case p.Address == "":
		return nil, api.Invalid("address", "address is required: the login node's host name or IP address")
	case p.Username == "":
		return nil, api.Invalid("username", "username is required")
	}
	var err error
	if p.SSHPort, err = sshPort(p.SSHPort); err != nil {
		return nil, err
	}
	for field, v := range map[string]string{"partition": p.Partition, "account": p.Account, "qos": p.QoS, "lowpriority_qos": p.LowPriorityQoS, "slurm_conf": p.SlurmConf} {
		if strings.ContainsAny(v, " '\"\\$`;|&") {
			return nil, api.Invalid(field, "%s %q has characters a Slurm name or path does not", field, v)
		}
	}
	if secrets["password"].IsSet() == secrets["private_key"].IsSet() {
		return nil, api.Invalid("password", "give exactly one credential: password or private_key")
	}
	return mustJSON(p), nil
}

func (slurm) InitialStatus(json.RawMessage) json.RawMessage {
	return mustJSON(SlurmStatus{Partitions: []SlurmPartition{}})
}

// SlurmEnv is the prefix that points Slurm commands at the target's
// configuration.
func SlurmEnv(p SlurmProperties) string {
	if p.SlurmConf == "" {
		return ""
	}
	return "SLURM_CONF=" + sshclient.Quote(p.SlurmConf) + " "
}

// Attach connects to the login node, records its host key, and reads the
// partitions; a partition named in the properties must exist.
func (slurm) Attach(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value) (json.RawMessage, json.RawMessage, error) {
	var p SlurmProperties
	if err := json.Unmarshal(props, &p); err != nil {
		return nil, nil, err
	}
	c, hostKey, err := dialAttached(ctx, props, secrets)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	out, errOut, code, err := sshclient.Run(c, "env "+SlurmEnv(p)+"sinfo -h -o '%P|%D|%c|%m'", nil)
	if err != nil || code != 0 {
		return nil, nil, api.Unavailable("connected to %s, but sinfo failed there (is it a Slurm login node?): %s", p.Address, strings.TrimSpace(errOut+" "+errString(err)))
	}
	st := SlurmStatus{Reachable: true, Partitions: []SlurmPartition{}}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			continue
		}
		part := SlurmPartition{Name: strings.TrimSuffix(f[0], "*"), Default: strings.HasSuffix(f[0], "*")}
		part.Nodes, _ = strconv.Atoi(f[1])
		part.CPUs, _ = strconv.Atoi(strings.TrimSuffix(f[2], "+"))
		mb, _ := strconv.ParseFloat(strings.TrimSuffix(f[3], "+"), 64)
		part.MemoryGB = float64(int(mb/1024*10)) / 10
		st.Partitions = append(st.Partitions, part)
		seen[part.Name] = true
	}
	if p.Partition != "" && !seen[p.Partition] {
		return nil, nil, api.Invalid("partition", "partition %q does not exist on %s (it has %s)", p.Partition, p.Address, partitionNames(st.Partitions))
	}
	p.HostKey = hostKey
	return mustJSON(p), mustJSON(st), nil
}

func partitionNames(ps []SlurmPartition) string {
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var (
	_ Attacher    = slurm{}
	_ Provisioner = slurm{}
)

var (
	_ NodeKind  = slurm{}
	_ RunTarget = slurm{}
)

// Provider implements NodeKind: nodes are Slurm pilot jobs.
func (slurm) Provider(json.RawMessage) string { return "slurm" }

// RunRules implements RunTarget.
func (slurm) RunRules(json.RawMessage, *Catalog) (RunRules, error) {
	return RunRules{DefaultCores: 1}, nil
}
