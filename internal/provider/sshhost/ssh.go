// Package sshhost is the ssh node provider: a node is a `paddock agent`
// that the server installs on a host over SSH (it ships its own binary; the
// host needs no internet) and starts under the remote user. The agent
// connects back to the server, so the host must reach the server's URL;
// for an https server it pins the server's CA, written beside the URL.
// Deleting the node stops the agent and removes everything that was
// installed, leaving the host as it was.
package sshhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/sshclient"
	"golang.org/x/crypto/ssh"
)

// Provider installs and runs agents over SSH: the "ssh" provider (a host
// of an SSH pool, or an attached remote machine) and, through the Slurm
// type, the "slurm" one (pilot jobs submitted on a login node).
type Provider struct {
	name string
	log  *slog.Logger
	env  provider.Env

	binOnce sync.Once
	bin     []byte
	binSum  string
	binErr  error

	mu    sync.Mutex
	nodes map[string]bool
}

// SSH is the ssh provider: nodes on attached machines, one per host of a
// pool for clusters.
type SSH struct{ *Provider }

// Slurm is the slurm provider: each node is a pilot job that runs an agent,
// submitted through an attached Slurm login node.
type Slurm struct{ *Provider }

var (
	_ provider.Provider       = SSH{}
	_ provider.Pooled         = SSH{}
	_ provider.Provider       = Slurm{}
	_ provider.JobStates      = Slurm{}
	_ provider.NodeConfigurer = Slurm{}
	_ provider.Adopter        = SSH{}
	_ provider.Adopter        = Slurm{}
)

func init() {
	provider.Register("ssh", func(_ context.Context, env provider.Env) (provider.Provider, error) {
		return SSH{New("ssh", env)}, nil
	})
	provider.Register("slurm", func(_ context.Context, env provider.Env) (provider.Provider, error) {
		return Slurm{New("slurm", env)}, nil
	})
}

// New returns the provider base under a name.
func New(name string, env provider.Env) *Provider {
	return &Provider{name: name, log: env.Log, env: env, nodes: map[string]bool{}}
}

// PoolHosts implements provider.Pooled.
func (SSH) PoolHosts() {}

// target opens how to reach an attached target over SSH.
func (p *Provider) target(ctx context.Context, ws, name string) (sshclient.Target, error) {
	rec, secrets, err := p.env.Target(ctx, ws, name)
	if err != nil {
		return sshclient.Target{}, err
	}
	t, _, err := compute.SSHTarget(rec.Properties, secrets)
	return t, err
}

// nodeTarget is how to reach the host a node was made on.
func (p *Provider) nodeTarget(ctx context.Context, nodeID string) (sshclient.Target, error) {
	ws, name, err := p.env.NodeHost(ctx, nodeID)
	if err != nil {
		return sshclient.Target{}, err
	}
	return p.target(ctx, ws, name)
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return p.name }

// base is the directory all of Paddock's files live in on a host.
const base = ".paddock-agent"

func (p *Provider) binary() ([]byte, string, error) {
	p.binOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			p.binErr = err
			return
		}
		p.bin, p.binErr = os.ReadFile(exe)
		sum := sha256.Sum256(p.bin)
		p.binSum = hex.EncodeToString(sum[:])
	})
	return p.bin, p.binSum, p.binErr
}

// Create implements provider.Provider: it copies this paddock binary to the
// host (once per version), writes the node's token and starts the agent,
// detached from the SSH session.
func (s SSH) Create(ctx context.Context, spec provider.NodeSpec) error {
	return s.create(ctx, spec, func(c *ssh.Client, dir, agent string, target sshclient.Target) error {
		// The agent is detached from the SSH session entirely: a new
		// session (setsid), and the subshell that starts it has its own
		// stdin, stdout and stderr redirected too. A login shell such as
		// bash runs `a && b &` in a subshell that waits for b; were that
		// subshell left holding the session's output, sshd would keep the
		// channel open as long as the agent runs and this call would never
		// return.
		start := fmt.Sprintf(`(cd "$HOME" && exec setsid nohup %s --address %s) > %s/agent.log 2>&1 < /dev/null &`, agent, sshclient.Quote(target.Address), dir)
		if _, err := sshclient.MustRun(c, start, nil); err != nil {
			return fmt.Errorf("starting the agent on %s: %w", target.Address, err)
		}
		return nil
	})
}

// Create implements provider.Provider: as the ssh provider's, but the agent
// runs as a Slurm pilot job submitted on the login node (spec.Config is
// its SlurmJob).
func (s Slurm) Create(ctx context.Context, spec provider.NodeSpec) error {
	var job SlurmJob
	if err := json.Unmarshal(spec.Config, &job); err != nil {
		return fmt.Errorf("slurm provider: node %s: %w", spec.ID, err)
	}
	return s.create(ctx, spec, func(c *ssh.Client, dir, agent string, _ sshclient.Target) error {
		return submitPilot(c, dir, agent, spec.ID, job)
	})
}

// create installs the agent for a node on its host, then starts it.
func (p *Provider) create(ctx context.Context, spec provider.NodeSpec, start func(c *ssh.Client, dir, agent string, target sshclient.Target) error) error {
	if spec.Host == "" {
		return fmt.Errorf("%s provider: node %s has no host", p.name, spec.ID)
	}
	target, err := p.target(ctx, spec.Workspace, spec.Host)
	if err != nil {
		return err
	}
	bin, sum, err := p.binary()
	if err != nil {
		return err
	}
	c, _, err := sshclient.Dial(ctx, target)
	if err != nil {
		return err
	}
	defer c.Close()
	dir := base + "/" + spec.ID
	have, _ := sshclient.MustRun(c, "cat "+base+"/paddock.sha256 2>/dev/null || true", nil)
	if strings.TrimSpace(have) != sum {
		if _, err := sshclient.MustRun(c, "mkdir -p "+base+" && cat > "+base+"/paddock.tmp && chmod 755 "+base+"/paddock.tmp && mv "+base+"/paddock.tmp "+base+"/paddock && echo "+sum+" > "+base+"/paddock.sha256",
			bytes.NewReader(bin)); err != nil {
			return fmt.Errorf("installing the agent on %s: %w", target.Address, err)
		}
	}
	setup := fmt.Sprintf("umask 077 && mkdir -p %[1]s/work && cat > %[1]s/token && printf '%%s\\n' %[2]s > %[1]s/server-url", dir, sshclient.Quote(spec.ServerURL))
	// The CA the agent pins for an https server: a public certificate, so
	// it may travel on the command line (the token goes on stdin).
	if len(p.env.CA) > 0 {
		setup += fmt.Sprintf(" && printf '%%s' %s > %s/ca.pem", sshclient.Quote(string(p.env.CA)), dir)
	} else {
		setup += " && rm -f " + dir + "/ca.pem"
	}
	if _, err := sshclient.MustRun(c, setup, strings.NewReader(spec.Token+"\n")); err != nil {
		return fmt.Errorf("preparing node %s on %s: %w", spec.ID, target.Address, err)
	}
	// Runs see none of Paddock's files on the host (other nodes' tokens
	// included).
	agent := fmt.Sprintf(`%[1]s/paddock agent --server-file %[2]s/server-url --ca-file %[2]s/ca.pem --token-file %[2]s/token --work-dir %[2]s/work --pid-file %[2]s/agent.pid --hide %[1]s --cores %[3]s --memory-gb %[4]s`,
		base, dir, strconv.FormatFloat(spec.Cores, 'f', -1, 64), strconv.FormatFloat(spec.MemoryGB, 'f', -1, 64))
	if err := start(c, dir, agent, target); err != nil {
		return err
	}
	p.mu.Lock()
	p.nodes[spec.ID] = true
	p.mu.Unlock()
	p.log.Info("ssh node started", "node", spec.ID, "host", target.Address)
	return nil
}

// Delete implements provider.Provider: the agent is stopped (SIGTERM, then
// SIGKILL) and the node's files removed; the last node on a host removes
// the installed binary too.
func (p *Provider) Delete(ctx context.Context, id string) error {
	t, err := p.nodeTarget(ctx, id)
	if err != nil {
		return err
	}
	c, _, err := sshclient.Dial(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close()
	dir := base + "/" + id
	// A pilot job is cancelled first (scancel stops its agent).
	if _, err := sshclient.MustRun(c, "if [ -f "+dir+"/cancel ]; then sh "+dir+"/cancel; fi; true", nil); err != nil {
		return fmt.Errorf("cancelling the Slurm job of node %s: %w", id, err)
	}
	stop := fmt.Sprintf(`pid=$(cat %[1]s/agent.pid 2>/dev/null); if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null; fi; rm -rf %[1]s; rmdir %[2]s 2>/dev/null || { ls -d %[2]s/*/ >/dev/null 2>&1 || rm -rf %[2]s; }; true`, dir, base)
	if _, err := sshclient.MustRun(c, stop, nil); err != nil {
		return fmt.Errorf("removing node %s from %s: %w", id, t.Address, err)
	}
	p.mu.Lock()
	delete(p.nodes, id)
	p.mu.Unlock()
	return nil
}

// List implements provider.Provider: the nodes this server started or
// adopted (see Adopt).
func (p *Provider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.nodes)), nil
}

// Adopt implements provider.Adopter: after a restart, a node whose agent
// still runs on its host is this provider's again, and its agent goes on
// with its runs.
func (s SSH) Adopt(ctx context.Context, ids []string) []string {
	return s.adopt(ctx, ids, func(c *ssh.Client, id string) (bool, error) {
		out, err := sshclient.MustRun(c, fmt.Sprintf(`pid=$(cat %s/%s/agent.pid 2>/dev/null); if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo alive; fi; true`, base, id), nil)
		return strings.TrimSpace(out) == "alive", err
	})
}

// Adopt implements provider.Adopter: after a restart, a node whose pilot
// job is still queued or running is this provider's again.
func (s Slurm) Adopt(ctx context.Context, ids []string) []string {
	return s.adopt(ctx, ids, func(c *ssh.Client, id string) (bool, error) {
		state, _, err := jobState(c, id)
		if err != nil {
			return false, err
		}
		return slices.Contains([]string{"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}, state), nil
	})
}

// adopt asks each node's host (eight at a time) whether the node is alive
// and, if it is, gives its agent this server's URL (which it reads again
// when it cannot reach the server: the restarted server may listen
// elsewhere). A node whose host cannot be reached now is kept (its agent
// may reconnect; if it does not, the server finds it lost when it stays
// silent); one whose target is gone is not.
func (p *Provider) adopt(ctx context.Context, ids []string, alive func(c *ssh.Client, id string) (bool, error)) []string {
	kept := make([]bool, len(ids))
	var wg sync.WaitGroup
	hosts := make(chan struct{}, 8) // hosts asked at once
	for i, id := range ids {
		wg.Add(1)
		hosts <- struct{}{}
		go func() {
			defer func() { <-hosts; wg.Done() }()
			ok, err := p.nodeAlive(ctx, id, alive)
			if errors.Is(err, api.ErrNotFound) {
				return // its target was detached: nothing to ask
			}
			if err != nil {
				p.log.Warn("cannot tell whether a node survived the restart; keeping it", "node", id, "err", err)
			}
			kept[i] = ok || err != nil
		}()
	}
	wg.Wait()
	var out []string
	for i, id := range ids {
		if kept[i] {
			p.mu.Lock()
			p.nodes[id] = true
			p.mu.Unlock()
			out = append(out, id)
		}
	}
	return out
}

func (p *Provider) nodeAlive(ctx context.Context, id string, alive func(c *ssh.Client, id string) (bool, error)) (bool, error) {
	t, err := p.nodeTarget(ctx, id)
	if err != nil {
		return false, err
	}
	c, _, err := sshclient.Dial(ctx, t)
	if err != nil {
		return false, err
	}
	defer c.Close()
	ok, err := alive(c, id)
	if ok && err == nil {
		_, err = sshclient.MustRun(c, fmt.Sprintf("printf '%%s\\n' %s > %s/%s/server-url", sshclient.Quote(p.env.ServerURL), base, id), nil)
	}
	return ok, err
}

// SlurmJob is the slurm provider's settings of a node: how its pilot job
// is submitted.
type SlurmJob struct {
	Env         string `json:"env,omitempty"` // prefix for Slurm commands, e.g. "SLURM_CONF=/etc/x.conf "
	Partition   string `json:"partition,omitempty"`
	Account     string `json:"account,omitempty"`
	QoS         string `json:"qos,omitempty"`
	CPUs        int    `json:"cpus"`
	MemoryMB    int    `json:"memory_mb,omitempty"`
	GPUs        int    `json:"gpus,omitempty"`
	TimeMinutes int    `json:"time_minutes,omitempty"` // 0: the partition's default
	OneRun      bool   `json:"one_run,omitempty"`      // the agent exits after one run (a pilot per run)
}

// NodeConfig implements provider.NodeConfigurer: the pilot job of a node
// from the login node's Slurm settings (partition, account, QoS; the
// low-priority QoS for low-priority nodes) and what the node is for.
func (s Slurm) NodeConfig(ctx context.Context, req provider.NodeRequest) (json.RawMessage, error) {
	rec, _, err := s.env.Target(ctx, req.Workspace, req.Host)
	if err != nil {
		return nil, err
	}
	sp, err := compute.Props[compute.SlurmProperties](rec)
	if err != nil {
		return nil, err
	}
	qos := sp.QoS
	if req.LowPriority && sp.LowPriorityQoS != "" {
		qos = sp.LowPriorityQoS
	}
	return json.Marshal(SlurmJob{Env: compute.SlurmEnv(sp), Partition: sp.Partition, Account: sp.Account, QoS: qos,
		CPUs: int(math.Ceil(max(req.Cores, 1))), MemoryMB: int(req.MemoryGB * 1024), GPUs: req.GPUs,
		TimeMinutes: req.TimeMinutes, OneRun: req.OneRun})
}

// submitPilot submits the node's agent as a Slurm batch job from the login
// node, and leaves beside it the commands to cancel it and ask its state.
func submitPilot(c *ssh.Client, dir, agent, id string, j SlurmJob) error {
	args := []string{"sbatch", "--parsable", "-J", "paddock-" + id, "-N", "1", "-c", strconv.Itoa(max(j.CPUs, 1)),
		"-o", dir + "/slurm.out"}
	for flag, v := range map[string]string{"-p": j.Partition, "-A": j.Account, "-q": j.QoS} {
		if v != "" {
			args = append(args, flag, sshclient.Quote(v))
		}
	}
	if j.MemoryMB > 0 {
		args = append(args, fmt.Sprintf("--mem=%dM", j.MemoryMB))
	}
	if j.GPUs > 0 {
		args = append(args, fmt.Sprintf("--gres=gpu:%d", j.GPUs))
	}
	if j.TimeMinutes > 0 {
		args = append(args, fmt.Sprintf("--time=%d", j.TimeMinutes))
	}
	if j.OneRun {
		agent += " --one-run"
	}
	args = append(args, "--wrap", sshclient.Quote("exec "+agent))
	cmd := fmt.Sprintf(`cd "$HOME" && id=$(env %s%s) && echo "$id" > %s/jobid && echo "env %sscancel $id" > %s/cancel && echo "env %sscontrol show job -o $id" > %s/state`,
		j.Env, strings.Join(args, " "), dir, j.Env, dir, j.Env, dir)
	if _, err := sshclient.MustRun(c, cmd, nil); err != nil {
		return fmt.Errorf("submitting the pilot job of node %s: %w", id, err)
	}
	return nil
}

// JobState implements provider.JobStates: it asks Slurm for a node's pilot
// job, its state (PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT,
// PREEMPTED, NODE_FAIL, ...) and reason.
func (s Slurm) JobState(ctx context.Context, nodeID string) (state, reason string, err error) {
	t, err := s.nodeTarget(ctx, nodeID)
	if err != nil {
		return "", "", err
	}
	c, _, err := sshclient.Dial(ctx, t)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return jobState(c, nodeID)
}

// jobState reads a node's pilot job's state on the login node; both are
// "" for a node whose job was never submitted.
func jobState(c *ssh.Client, nodeID string) (state, reason string, err error) {
	file := base + "/" + nodeID + "/state"
	out, err := sshclient.MustRun(c, "if [ -f "+file+" ]; then sh "+file+"; fi", nil)
	if err != nil {
		return "", "", err
	}
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "JobState="); ok {
			state = v
		}
		if v, ok := strings.CutPrefix(f, "Reason="); ok {
			reason = v
		}
	}
	return state, reason, nil
}
