// Package sshprov is the ssh node provider: a node is a `paddock agent`
// that the server installs on a host over SSH (it ships its own binary; the
// host needs no internet) and starts under the remote user. The agent
// connects back to the server, so the host must reach the server's URL.
// Deleting the node stops the agent and removes everything that was
// installed, leaving the host as it was.
package sshprov

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/paddock-ml/paddock/internal/provider"
	"github.com/paddock-ml/paddock/internal/sshx"
	"golang.org/x/crypto/ssh"
)

// Provider installs and runs agents over SSH.
type Provider struct {
	name string
	log  *slog.Logger
	// Lookup returns how to reach a node's host (from the target it belongs
	// to), for deletes after a restart.
	Lookup func(ctx context.Context, nodeID string) (sshx.Target, error)

	binOnce sync.Once
	bin     []byte
	binSum  string
	binErr  error

	mu    sync.Mutex
	nodes map[string]bool
}

var _ provider.Provider = (*Provider)(nil)

// New returns the provider under a name: "ssh" starts agents directly,
// "slurm" as Slurm pilot jobs (the NodeSpec says which).
func New(name string, log *slog.Logger, lookup func(ctx context.Context, nodeID string) (sshx.Target, error)) *Provider {
	return &Provider{name: name, log: log, Lookup: lookup, nodes: map[string]bool{}}
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
// host (once per version), writes the node's token and starts the agent.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) error {
	if spec.SSH == nil {
		return fmt.Errorf("ssh provider: node %s has no host", spec.ID)
	}
	bin, sum, err := p.binary()
	if err != nil {
		return err
	}
	c, _, err := sshx.Dial(ctx, *spec.SSH)
	if err != nil {
		return err
	}
	defer c.Close()
	dir := base + "/" + spec.ID
	have, _ := sshx.MustRun(c, "cat "+base+"/paddock.sha256 2>/dev/null || true", nil)
	if strings.TrimSpace(have) != sum {
		if _, err := sshx.MustRun(c, "mkdir -p "+base+" && cat > "+base+"/paddock.tmp && chmod 755 "+base+"/paddock.tmp && mv "+base+"/paddock.tmp "+base+"/paddock && echo "+sum+" > "+base+"/paddock.sha256",
			bytes.NewReader(bin)); err != nil {
			return fmt.Errorf("installing the agent on %s: %w", spec.SSH.Address, err)
		}
	}
	setup := fmt.Sprintf("umask 077 && mkdir -p %[1]s/work && cat > %[1]s/token && printf '%%s\\n' %[2]s > %[1]s/server-url", dir, sshx.Quote(spec.ServerURL))
	if _, err := sshx.MustRun(c, setup, strings.NewReader(spec.Token+"\n")); err != nil {
		return fmt.Errorf("preparing node %s on %s: %w", spec.ID, spec.SSH.Address, err)
	}
	// Runs see none of Paddock's files on the host (other nodes' tokens
	// included).
	agent := fmt.Sprintf(`%[1]s/paddock agent --server-file %[2]s/server-url --token-file %[2]s/token --work-dir %[2]s/work --pid-file %[2]s/agent.pid --hide %[1]s --cores %[3]s --memory-gb %[4]s`,
		base, dir, strconv.FormatFloat(spec.Cores, 'f', -1, 64), strconv.FormatFloat(spec.MemoryGB, 'f', -1, 64))
	if spec.Slurm != nil {
		if err := submitPilot(c, dir, agent, spec); err != nil {
			return err
		}
	} else {
		// The agent is detached from the SSH session entirely: a new
		// session (setsid), and the subshell that starts it has its own
		// stdin, stdout and stderr redirected too. A login shell such as
		// bash runs `a && b &` in a subshell that waits for b; were that
		// subshell left holding the session's output, sshd would keep the
		// channel open as long as the agent runs and this call would never
		// return.
		start := fmt.Sprintf(`(cd "$HOME" && exec setsid nohup %s --address %s) > %s/agent.log 2>&1 < /dev/null &`, agent, sshx.Quote(spec.SSH.Address), dir)
		if _, err := sshx.MustRun(c, start, nil); err != nil {
			return fmt.Errorf("starting the agent on %s: %w", spec.SSH.Address, err)
		}
	}
	p.mu.Lock()
	p.nodes[spec.ID] = true
	p.mu.Unlock()
	p.log.Info("ssh node started", "node", spec.ID, "host", spec.SSH.Address)
	return nil
}

// Delete implements provider.Provider: the agent is stopped (SIGTERM, then
// SIGKILL) and the node's files removed; the last node on a host removes
// the installed binary too.
func (p *Provider) Delete(ctx context.Context, id string) error {
	t, err := p.Lookup(ctx, id)
	if err != nil {
		return err
	}
	c, _, err := sshx.Dial(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close()
	dir := base + "/" + id
	// A pilot job is cancelled first (scancel stops its agent).
	if _, err := sshx.MustRun(c, "if [ -f "+dir+"/cancel ]; then sh "+dir+"/cancel; fi; true", nil); err != nil {
		return fmt.Errorf("cancelling the Slurm job of node %s: %w", id, err)
	}
	stop := fmt.Sprintf(`pid=$(cat %[1]s/agent.pid 2>/dev/null); if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null; fi; rm -rf %[1]s; rmdir %[2]s 2>/dev/null || { ls -d %[2]s/*/ >/dev/null 2>&1 || rm -rf %[2]s; }; true`, dir, base)
	if _, err := sshx.MustRun(c, stop, nil); err != nil {
		return fmt.Errorf("removing node %s from %s: %w", id, t.Address, err)
	}
	p.mu.Lock()
	delete(p.nodes, id)
	p.mu.Unlock()
	return nil
}

// List implements provider.Provider: the nodes this server started. After
// a restart it knows none, so known nodes are replaced; their old agents
// find their tokens refused and exit.
func (p *Provider) List(context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.nodes {
		out = append(out, id)
	}
	return out, nil
}

// submitPilot submits the node's agent as a Slurm batch job from the login
// node, and leaves beside it the commands to cancel it and ask its state.
func submitPilot(c *ssh.Client, dir, agent string, spec provider.NodeSpec) error {
	j := spec.Slurm
	args := []string{"sbatch", "--parsable", "-J", "paddock-" + spec.ID, "-N", "1", "-c", strconv.Itoa(max(j.CPUs, 1)),
		"-o", dir + "/slurm.out"}
	for flag, v := range map[string]string{"-p": j.Partition, "-A": j.Account, "-q": j.QoS} {
		if v != "" {
			args = append(args, flag, sshx.Quote(v))
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
	args = append(args, "--wrap", sshx.Quote("exec "+agent))
	cmd := fmt.Sprintf(`cd "$HOME" && id=$(env %s%s) && echo "$id" > %s/jobid && echo "env %sscancel $id" > %s/cancel && echo "env %sscontrol show job -o $id" > %s/state`,
		j.Env, strings.Join(args, " "), dir, j.Env, dir, j.Env, dir)
	if _, err := sshx.MustRun(c, cmd, nil); err != nil {
		return fmt.Errorf("submitting the pilot job of node %s: %w", spec.ID, err)
	}
	return nil
}

// JobState asks Slurm for a node's pilot job: its state (PENDING, RUNNING,
// COMPLETED, CANCELLED, TIMEOUT, PREEMPTED, NODE_FAIL, ...) and reason.
func (p *Provider) JobState(ctx context.Context, nodeID string) (state, reason string, err error) {
	t, err := p.Lookup(ctx, nodeID)
	if err != nil {
		return "", "", err
	}
	c, _, err := sshx.Dial(ctx, t)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	out, err := sshx.MustRun(c, "sh "+base+"/"+nodeID+"/state", nil)
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
