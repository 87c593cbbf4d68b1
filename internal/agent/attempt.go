package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/agent/proc"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

// attempt is one attempt of a run on this node.
type attempt struct {
	a   *Agent
	as  api.Assignment
	ref api.AttemptRef

	mu       sync.Mutex
	stopped  chan struct{} // closed by stop
	why      string
	silent   bool   // stale: report nothing more
	fail     string // the reason a stopped attempt failed (not canceled)
	stopOnce sync.Once

	// running is closed once the Running report is through (nil until the
	// process starts); the final report waits for it, so the two arrive
	// in order and the first is never cut off.
	running chan struct{}
	// ended is set once the server has the final report: a poll answered
	// after that calls the attempt stale, which is expected.
	ended atomic.Bool

	warned sync.Map // log warnings already given (checkpoints repeat them)
}

// warnOnce puts a warning in the run's log, once per text.
func (at *attempt) warnOnce(ship *shipper, text string) {
	if _, dup := at.warned.LoadOrStore(text, true); !dup {
		ship.add("stderr", text)
	}
}

func newAttempt(a *Agent, as api.Assignment) *attempt {
	return &attempt{a: a, as: as, ref: api.AttemptRef{RunID: as.RunID, Attempt: as.Attempt}, stopped: make(chan struct{})}
}

// stop asks the attempt to end; silent attempts report nothing more.
func (at *attempt) stop(why string, silent bool) {
	at.stopOnce.Do(func() {
		at.mu.Lock()
		at.why, at.silent = why, silent
		at.mu.Unlock()
		close(at.stopped)
	})
}

// abort stops the attempt because it cannot go on; it fails with reason.
func (at *attempt) abort(reason, why string) {
	at.mu.Lock()
	if at.fail == "" {
		at.fail = reason
	}
	at.mu.Unlock()
	at.stop(why, false)
}

// stoppedOutcome is how a stopped attempt ended: failed when it was
// aborted, else canceled.
func (at *attempt) stoppedOutcome(why string, code *int) outcome {
	at.mu.Lock()
	reason := at.fail
	at.mu.Unlock()
	if reason != "" {
		return outcome{status: api.RunFailed, exit: code, reason: reason, err: why}
	}
	return outcome{status: api.RunCanceled, exit: code, reason: "Canceled", err: why}
}

func (at *attempt) stopReason() (string, bool) {
	at.mu.Lock()
	defer at.mu.Unlock()
	return at.why, at.silent
}

// outcome is how an attempt ended.
type outcome struct {
	status api.RunStatus
	exit   *int
	reason string
	err    string
}

func failed(reason, format string, args ...any) outcome {
	return outcome{status: api.RunFailed, reason: reason, err: fmt.Sprintf(format, args...)}
}

// run runs the attempt to its end and reports it. Reports use their own
// context so an agent that is stopping still tells the server how its runs
// ended.
func (at *attempt) run(agentCtx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(agentCtx))
	defer cancel()
	go func() {
		select {
		case <-agentCtx.Done():
			// Give reports a little time after the agent is told to stop.
			time.Sleep(15 * time.Second)
			cancel()
		case <-ctx.Done():
		}
	}()
	log := at.a.log.With("run", at.ref.RunID, "attempt", at.ref.Attempt)
	dir := filepath.Join(at.a.cfg.WorkDir, "runs", at.name())
	os.RemoveAll(dir)
	ship := newShipper(at.a, at.ref, at.as.LogAck)
	ship.onFull = func(err error) {
		log.Warn("the server cannot store this run's log; stopping the run", "err", err)
		at.abort("LogStorageFull", "the server could not store the run's log ("+err.Error()+"); the run was stopped")
	}
	go ship.run(ctx)

	out := at.execute(ctx, dir, ship)
	if _, silent := at.stopReason(); silent {
		ship.close()
		ship.abandon()
		os.RemoveAll(dir)
		return
	}
	var files []api.OutputFile
	var err error
	if at.as.NodeRank == 0 { // in a multi-node run, rank 0's outputs are the run's
		// Before the log closes: what the upload leaves out is said there.
		files, err = at.uploadOutputs(ctx, filepath.Join(dir, "outputs"), true, ship)
	}
	ship.close()
	if !ship.wait(ctx) {
		log.Warn("some log lines could not be delivered")
	}
	if ship.storageFull() && out.status == api.RunCompleted {
		// It ended before the agent could stop it, but its log is lost.
		out.status, out.reason = api.RunFailed, "LogStorageFull"
		out.err = "the server could not store the run's log: its disk is full"
	}
	rep := api.AttemptReport{Status: out.status, ExitCode: out.exit, Reason: out.reason, Error: out.err}
	if err != nil {
		log.Warn("uploading outputs failed", "err", err)
		if rep.Error == "" {
			rep.Error = "uploading outputs failed: " + err.Error()
		}
		if rep.Status == api.RunCompleted {
			rep.Status, rep.Reason = api.RunFailed, "OutputUploadFailed"
		}
	}
	rep.Outputs = files
	if at.running != nil {
		select {
		case <-at.running:
		case <-ctx.Done():
		}
	}
	if at.a.report(ctx, at.ref, rep) {
		at.ended.Store(true)
		log.Info("attempt ended", "status", rep.Status, "exit_code", derefInt(out.exit), "reason", rep.Reason)
	}
	os.RemoveAll(dir)
}

func derefInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// execute prepares and runs the command; it returns how it ended.
func (at *attempt) execute(ctx context.Context, dir string, ship *shipper) outcome {
	as := at.as
	// With the server's own CA, the run is given it to reach PADDOCK_API_URL.
	caFile := at.a.runCA()
	if caFile != "" {
		env := make(map[string]string, len(as.Env)+1)
		maps.Copy(env, as.Env)
		env[RunCAEnv] = caFile
		as.Env = env
	}
	if err := os.MkdirAll(filepath.Join(dir, "outputs"), 0o755); err != nil {
		return failed("PreparationFailed", "creating the working directory: %v", err)
	}
	if as.Source != "" {
		if err := at.fetchSource(ctx, as.Source, dir); err != nil {
			return failed("PreparationFailed", "fetching the source snapshot: %v", err)
		}
	}
	if as.RestoreOutputs {
		if err := at.restoreOutputs(ctx, filepath.Join(dir, "outputs")); err != nil {
			return failed("PreparationFailed", "restoring the outputs of the previous attempt: %v", err)
		}
	}
	sb, tmp, err := at.sandbox(dir)
	if err != nil {
		return failed("PreparationFailed", "preparing the run's user and file system: %v", err)
	}
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if len(as.Identities) > 0 {
		ids, err := at.a.identityEndpoint()
		if err != nil {
			return failed("PreparationFailed", "%v", err)
		}
		url, token, release := ids.register(at)
		defer release() // the endpoint refuses the attempt once it has ended
		vars := make(map[string]string, len(as.Env)+2)
		for k, v := range as.Env {
			vars[k] = v
		}
		vars["PADDOCK_IDENTITY_ENDPOINT"], vars["PADDOCK_IDENTITY_TOKEN"] = url, token
		as.Env = vars
	}
	env := runEnv(as.Env)
	if _, own := as.Env["PATH"]; !own {
		env = at.a.iso.reachablePath(env, sb)
	}
	if slow := as.Environment.Requirements != "" || as.Environment.Image != ""; slow {
		if !at.a.report(ctx, at.ref, api.AttemptReport{Status: api.RunPreparing}) {
			return outcome{}
		}
	}
	prep, err := at.a.prepareEnvironment(ctx, as, dir, env, as.Command, ship, sb)
	var noImage errImage
	switch {
	case errors.As(err, &noImage):
		return failed("ImageUnavailable", "%v", err)
	case err != nil:
		return failed("EnvironmentFailed", "%v", err)
	}
	if why, _ := at.stopReason(); why != "" {
		return at.stoppedOutcome(why, nil)
	}
	spec := proc.Spec{
		Name: at.name(), Path: prep.cmd[0], Args: prep.cmd[1:], Dir: dir, Env: prep.env,
		Stdout: ship.writer("stdout"), Stderr: ship.writer("stderr"),
		Cores: as.Resources.Cores, MemoryBytes: int64(as.Resources.MemoryGB * (1 << 30)),
	}
	if !prep.unsandboxed {
		sb.withBinds(slices.Concat(prep.binds, runCABind(caFile))...).apply(&spec, at.a.iso.mode)
	}
	p, err := proc.Start(spec)
	if err != nil {
		code := 127
		return outcome{status: api.RunFailed, exit: &code, reason: "StartFailed", err: fmt.Sprintf("cannot start %q: %v", prep.cmd[0], err)}
	}
	return at.supervise(ctx, dir, ship, p, prep)
}

// supervise watches the started process to its end: it reports Running,
// uploads checkpoints, and stops the tree (and what the command started
// outside it) when the attempt is stopped or runs past its limit. When
// the main process exits, whatever it left running is killed.
func (at *attempt) supervise(ctx context.Context, dir string, ship *shipper, p *proc.Process, prep prepared) outcome {
	as := at.as
	stop := func(grace time.Duration) error {
		if prep.stop != nil {
			prep.stop(grace)
		}
		return p.Stop(grace)
	}
	defer func() {
		// The tree goes with its main process: daemons it left are killed.
		if err := stop(0); err != nil {
			at.a.log.Warn("stopping what the run left running", "run", at.ref.RunID, "err", err)
		}
		if err := p.Cleanup(); err != nil {
			at.a.log.Warn("cleaning up after the run", "run", at.ref.RunID, "err", err)
		}
	}()
	waited := make(chan int, 1)
	go func() {
		code, _ := p.Wait()
		waited <- code
	}()
	// Running is reported after the process started, so started_at is true.
	at.running = make(chan struct{})
	go func() {
		defer close(at.running)
		if !at.a.report(ctx, at.ref, api.AttemptReport{Status: api.RunRunning}) {
			at.stop("stale", true)
		}
	}()
	stopCheckpoints := at.checkpoints(ctx, filepath.Join(dir, "outputs"), ship)
	defer stopCheckpoints()
	var limit <-chan time.Time
	if as.MaxRunDurationSeconds > 0 {
		t := time.NewTimer(time.Duration(as.MaxRunDurationSeconds) * time.Second)
		defer t.Stop()
		limit = t.C
	}
	select {
	case code := <-waited:
		ship.flushWriters()
		if code == 0 {
			return outcome{status: api.RunCompleted, exit: &code}
		}
		msg := fmt.Sprintf("the command exited with code %d", code)
		if p.MemoryLimitHit() {
			msg = fmt.Sprintf("the command was killed for using more than its memory limit (%g GiB; exit code %d): ask for more with --memory-gb", as.Resources.MemoryGB, code)
		}
		return outcome{status: api.RunFailed, exit: &code, reason: "NonZeroExit", err: msg}
	case <-at.stopped:
		why, _ := at.stopReason()
		stop(at.a.cfg.KillGrace)
		code := <-waited
		ship.flushWriters()
		return at.stoppedOutcome(why, &code)
	case <-limit:
		stop(at.a.cfg.KillGrace)
		code := <-waited
		ship.flushWriters()
		return outcome{status: api.RunCanceled, exit: &code, reason: "MaxRunDurationExceeded",
			err: fmt.Sprintf("the run exceeded max_run_duration_seconds (%d s) and was stopped", as.MaxRunDurationSeconds)}
	}
}

// sandbox prepares the user, home and file system view of the attempt's
// processes: its directory (given to its user) and a private /tmp, which
// it returns so that it is removed at the end ("" without isolation).
func (at *attempt) sandbox(dir string) (sandbox, string, error) {
	iso := at.a.iso
	if iso.mode == isolateNone {
		home := at.a.cfg.Home
		return sandbox{home: home}, "", nil
	}
	home := ""
	if at.a.cfg.Home != "" && (at.a.cfg.Owner == "" || at.as.User == at.a.cfg.Owner) {
		home = at.a.cfg.Home
	}
	tmp := filepath.Join(at.a.cfg.WorkDir, "tmp", at.name())
	sb, err := iso.sandbox(at.as.User, home, proc.Bind{Path: dir}, proc.Bind{Path: "/tmp", From: tmp})
	if err != nil {
		return sb, "", err
	}
	if err := iso.own(dir, sb.user); err != nil {
		return sb, "", err
	}
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		return sb, "", err
	}
	if err := os.Chmod(tmp, 0o1777); err != nil { // as /tmp is, whatever the umask
		return sb, tmp, err
	}
	return sb, tmp, nil
}

// runEnv is the run's environment: this process's, less the agent's own
// settings, plus the run's.
func runEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PADDOCK_") {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = setEnv(env, k, extra[k])
	}
	return env
}

func setEnv(env []string, k, v string) []string {
	prefix := k + "="
	for i, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			env[i] = prefix + v
			return env
		}
	}
	return append(env, prefix+v)
}

func getEnv(env []string, k string) string {
	prefix := k + "="
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return kv[len(prefix):]
		}
	}
	return ""
}

// fetchSource unpacks the run's source snapshot into dir, downloading it
// once per digest.
func (at *attempt) fetchSource(ctx context.Context, digest, dir string) error {
	cache := filepath.Join(at.a.cfg.WorkDir, "snapshots", digest+".tar.gz")
	if _, err := os.Stat(cache); err != nil {
		if err := at.a.download(ctx, digest, cache); err != nil {
			return err
		}
	}
	f, err := os.Open(cache)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = snapshot.Extract(f, dir, snapshot.DefaultLimits)
	return err
}

// download fetches the snapshot with this digest into file, checking its
// sha256.
func (a *Agent) download(ctx context.Context, digest, file string) error {
	body, err := a.uploads.Load().GetSnapshot(ctx, digest)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(file), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, body); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		tmp.Close()
		return err
	}
	got, _, err := snapshot.Digest(tmp)
	tmp.Close()
	if err != nil {
		return err
	}
	if got != digest {
		return fmt.Errorf("downloaded snapshot has digest %s, want %s", got, digest)
	}
	return os.Rename(tmp.Name(), file)
}

// uploadOutputs sends ./outputs when it holds anything. The final upload
// reports Finalizing first; checkpoints (final false) go while the run runs.
func (at *attempt) uploadOutputs(ctx context.Context, dir string, final bool, ship *shipper) ([]api.OutputFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil, nil
	}
	if final && !at.a.report(ctx, at.ref, api.AttemptReport{Status: api.RunFinalizing}) {
		return nil, errors.New("the attempt is no longer current")
	}
	var buf bytes.Buffer
	info, err := snapshot.Create(dir, &buf, snapshot.Limits{MaxBytes: 1 << 30, MaxFiles: 100000})
	if err != nil {
		return nil, err
	}
	for _, sk := range info.Skipped { // a bad symlink costs itself, not the rest
		at.warnOnce(ship, "[paddock] outputs: "+sk.String())
	}
	retry := serverBackoff()
	for {
		files, err := at.a.uploads.Load().PutOutputs(ctx, at.ref, bytes.NewReader(buf.Bytes()))
		if err == nil || errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrTooLarge) ||
			errors.Is(err, api.ErrInsufficientStorage) || ctx.Err() != nil {
			return files, err
		}
		if !at.a.retryAfter(ctx, retry) {
			return nil, ctx.Err()
		}
	}
}

// checkpoints uploads ./outputs whenever it changed, every
// CheckpointInterval while the run runs, so a preempted attempt's
// checkpoints are there for the next one. It returns a function that stops
// it and waits for an upload in progress.
func (at *attempt) checkpoints(ctx context.Context, dir string, ship *shipper) func() {
	every := at.a.cfg.CheckpointInterval
	if every <= 0 || at.as.NodeRank != 0 {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sig := treeSignature(dir)
			if sig == "" || sig == last {
				continue
			}
			if _, err := at.uploadOutputs(ctx, dir, false, ship); err != nil {
				at.a.log.Warn("uploading a checkpoint failed", "run", at.ref.RunID, "err", err)
				continue
			}
			last = sig
		}
	}()
	return func() { close(stop); <-done }
}

// treeSignature summarises a tree's files (names, sizes, mtimes) so a
// change is noticed without reading them; "" for an empty tree.
func treeSignature(dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			fmt.Fprintf(&b, "%s|%d|%d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// restoreOutputs puts the run's stored outputs (the previous attempt's
// checkpoints) into ./outputs.
func (at *attempt) restoreOutputs(ctx context.Context, dir string) error {
	body, err := at.a.uploads.Load().GetOutputs(ctx, at.ref)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = snapshot.Extract(body, dir, snapshot.Limits{MaxBytes: 1 << 30, MaxFiles: 100000})
	return err
}

// name names the attempt's directory and its cgroup.
func (at *attempt) name() string { return attemptName(at.as) }

// attemptName names an attempt's directory, cgroup and container. It holds
// the rank: the nodes of a multi-node run may share a host (local
// provider), and their cgroups must not collide.
func attemptName(as api.Assignment) string {
	return fmt.Sprintf("%s-%d-r%d", as.RunID, as.Attempt, as.NodeRank)
}
