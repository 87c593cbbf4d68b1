package databricks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/databricks"
	"github.com/paddock-ml/paddock/internal/snapshot"
)

// outputLimits bound what an attempt brings back from DBFS.
var outputLimits = snapshot.Limits{MaxBytes: 1 << 30, MaxFiles: 100000}

// target is the databricks target an attempt runs on.
type target struct {
	ws    string
	props compute.DatabricksProperties
	c     *databricks.Client
}

func (a *agent) target(ctx context.Context) (target, error) {
	a.mu.Lock()
	ws, name := a.st.Workspace, a.st.Target
	a.mu.Unlock()
	rec, secrets, err := a.p.env.Target(ctx, ws, name)
	if err != nil {
		return target{}, err
	}
	props, c, err := compute.DatabricksTarget(rec.Properties, secrets)
	return target{ws: ws, props: props, c: c}, err
}

// execute runs an attempt to its end and reports how it ended; it returns
// false when the server is stopping and the attempt must be resumed after
// the restart.
func (a *agent) execute(ctx context.Context, at *attempt) bool {
	log := a.log.With("run", at.ref.RunID, "attempt", at.ref.Attempt)
	t, err := a.target(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		a.report(ctx, at, api.AttemptReport{Status: api.RunFailed, Reason: "TargetUnavailable", Error: "the databricks target could not be read: " + err.Error()})
		return true
	}
	s, known := a.attemptState(at.ref)
	if !known {
		select {
		case <-at.stopped:
			a.endStopped(ctx, at)
			return true
		default:
		}
		id, err := a.submit(ctx, at, t)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			log.Warn("submitting to Databricks failed", "err", err)
			a.report(ctx, at, api.AttemptReport{Status: api.RunFailed, Reason: "SubmitFailed", Error: "submitting the run to Databricks failed: " + err.Error()})
			return true
		}
		s = attemptState{Attempt: at.ref.Attempt, RunID: id}
		if err := a.keep(at.ref, s); err != nil {
			log.Error("recording the Databricks run; a restart now would lose it", "databricks_run", id, "err", err)
		}
		log.Info("submitted to Databricks", "databricks_run", id)
	}
	run, ok := a.follow(ctx, at, t, &s)
	if !ok {
		return false
	}
	base := runDir(t.ws, at.ref.RunID, at.ref.Attempt)
	if _, silent := at.stopReason(); !silent {
		rep := a.finish(ctx, at, t, run, s)
		if ctx.Err() != nil || !a.report(ctx, at, rep) && ctx.Err() != nil {
			return false
		}
		log.Info("attempt ended", "status", rep.Status, "databricks_run", s.RunID, "result", run.State.ResultState)
	}
	if err := t.c.Delete(ctx, base, true); err != nil {
		log.Warn("removing the run's files from DBFS", "path", base, "err", err)
	}
	return true
}

// endStopped reports an attempt stopped before it was submitted.
func (a *agent) endStopped(ctx context.Context, at *attempt) {
	if why, silent := at.stopReason(); !silent {
		a.report(ctx, at, api.AttemptReport{Status: api.RunCanceled, Reason: "Canceled", Error: why})
	}
}

// report posts an attempt's status until the server has it; it reports
// whether the attempt is still current.
func (a *agent) report(ctx context.Context, at *attempt, rep api.AttemptReport) bool {
	return retry(ctx, func() error { return a.client.Report(ctx, at.ref, rep) }) == nil
}

// ship sends log lines, a batch at a time.
func (a *agent) ship(ctx context.Context, at *attempt, lines []api.AgentLogLine) error {
	for len(lines) > 0 {
		n := api.LogBatchLen(lines)
		if err := retry(ctx, func() error { _, err := a.client.Logs(ctx, at.ref, lines[:n]); return err }); err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

// submit uploads the attempt's source and entry script to DBFS and submits
// the run; the idempotency token makes a submit repeated after a crash
// return the same Databricks run.
func (a *agent) submit(ctx context.Context, at *attempt, t target) (int64, error) {
	as := at.as
	if as == nil || len(as.Command) == 0 {
		return 0, errors.New("the attempt's assignment is not known")
	}
	base := runDir(t.ws, as.RunID, as.Attempt)
	work, err := os.MkdirTemp(a.p.dir, "work-*")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "src")
	if err := os.Mkdir(src, 0o700); err != nil {
		return 0, err
	}
	if as.Source != "" {
		if err := a.fetchSource(ctx, as.Source, work, src); err != nil {
			return 0, fmt.Errorf("fetching the source: %w", err)
		}
	}
	if as.RestoreOutputs {
		if err := a.restoreOutputs(ctx, at, filepath.Join(src, "outputs")); err != nil {
			return 0, fmt.Errorf("restoring the previous attempt's outputs: %w", err)
		}
	}
	if err := upload(ctx, t.c, src, base+"/src"); err != nil {
		return 0, fmt.Errorf("uploading the source to %s: %w", base, err)
	}
	if err := t.c.Mkdirs(ctx, base+"/src/outputs"); err != nil {
		return 0, err
	}
	if err := t.c.Put(ctx, base+"/paddock_entry.py", entryScript); err != nil {
		return 0, err
	}
	task := databricks.Task{TaskKey: "paddock", SparkPythonTask: &databricks.SparkPythonTask{
		PythonFile: base + "/paddock_entry.py",
		Parameters: append([]string{fuse(base + "/src")}, as.Command...),
	}}
	if t.props.ClusterID != "" {
		task.ExistingClusterID = t.props.ClusterID
	} else {
		task.NewCluster = t.props.NewCluster
	}
	return t.c.Submit(ctx, databricks.SubmitRun{
		RunName:          fmt.Sprintf("paddock %s/%s attempt %d", t.ws, as.RunID, as.Attempt),
		IdempotencyToken: idempotencyToken(t.ws, as.RunID, as.Attempt),
		TimeoutSeconds:   as.MaxRunDurationSeconds,
		Tasks:            []databricks.Task{task},
	})
}

// fetchSource downloads the snapshot with this digest, checks it, and
// unpacks it into dir.
func (a *agent) fetchSource(ctx context.Context, digest, work, dir string) error {
	body, err := a.client.GetSnapshot(ctx, digest)
	if err != nil {
		return err
	}
	defer body.Close()
	file := filepath.Join(work, "source.tar.gz")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(f, body); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if got, _, err := snapshot.Digest(f); err != nil || got != digest {
		return fmt.Errorf("the snapshot downloaded has digest %s, not %s (%v)", got, digest, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = snapshot.Extract(f, dir, snapshot.DefaultLimits)
	return err
}

func (a *agent) restoreOutputs(ctx context.Context, at *attempt, dir string) error {
	body, err := a.client.GetOutputs(ctx, at.ref)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = snapshot.Extract(body, dir, outputLimits)
	return err
}

// upload copies the regular files under dir to the DBFS directory to.
func upload(ctx context.Context, c *databricks.Client, dir, to string) error {
	if err := c.Mkdirs(ctx, to); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return c.Put(ctx, to+"/"+filepath.ToSlash(rel), data)
	})
}

// download copies the DBFS directory from (recursively) into dir.
func download(ctx context.Context, c *databricks.Client, from, dir string, budget *int64) error {
	files, err := c.List(ctx, from)
	if databricks.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range files {
		name := path.Base(f.Path)
		if name == "." || name == ".." || name == "/" || strings.ContainsRune(name, os.PathSeparator) {
			continue
		}
		local := filepath.Join(dir, name)
		if f.IsDir {
			if err := os.MkdirAll(local, 0o700); err != nil {
				return err
			}
			if err := download(ctx, c, from+"/"+name, local, budget); err != nil {
				return err
			}
			continue
		}
		if *budget -= f.FileSize; *budget < 0 {
			return fmt.Errorf("the outputs are larger than %d MiB", outputLimits.MaxBytes>>20)
		}
		data, err := c.Read(ctx, from+"/"+name, f.FileSize)
		if err != nil {
			return err
		}
		if err := os.WriteFile(local, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// follow polls the attempt's Databricks run until it ends, reporting
// Running once it runs and cancelling it when the attempt is stopped. It
// returns false when the server is stopping.
func (a *agent) follow(ctx context.Context, at *attempt, t target, s *attemptState) (databricks.Run, bool) {
	wait, announced, running := time.Second, false, false
	for {
		r, err := t.c.GetRun(ctx, s.RunID)
		switch {
		case ctx.Err() != nil:
			return r, false
		case err != nil && (databricks.IsNotFound(err) || databricks.IsAuth(err)):
			return databricks.Run{RunID: s.RunID, State: databricks.RunState{LifeCycleState: databricks.InternalError,
				StateMessage: "Paddock cannot read the Databricks run: " + err.Error()}}, true
		case err != nil:
			a.log.Warn("reading the Databricks run; trying again", "databricks_run", s.RunID, "err", err)
		default:
			_, silent := at.stopReason()
			if !announced && !silent {
				announced = a.ship(ctx, at, logLines(1, "stderr", fmt.Sprintf("[paddock] Databricks run %d: %s", s.RunID, r.RunPageURL))) == nil
			}
			if r.State.Ended() {
				return r, true
			}
			if r.State.LifeCycleState == databricks.Running && !running && !silent {
				running = true
				if !a.report(ctx, at, api.AttemptReport{Status: api.RunRunning}) && ctx.Err() == nil {
					at.stop("stale", true)
				}
			}
		}
		stop := at.stopped
		select {
		case <-at.stopped:
			stop = nil
			if s.Canceled {
				break
			}
			if err := t.c.Cancel(ctx, s.RunID); err != nil {
				a.log.Warn("cancelling the Databricks run; trying again", "databricks_run", s.RunID, "err", err)
				break
			}
			s.Canceled, wait = true, 250*time.Millisecond
			a.keep(at.ref, *s)
		default:
		}
		if !sleep(ctx, stop, wait) {
			return r, false
		}
		wait = min(wait*3/2, 5*time.Second)
	}
}

// finish ships the run's output as its log, brings its outputs back and
// says how the attempt ended.
func (a *agent) finish(ctx context.Context, at *attempt, t target, r databricks.Run, s attemptState) api.AttemptReport {
	taskRun := r.RunID
	if len(r.Tasks) > 0 {
		taskRun = r.Tasks[0].RunID
	}
	var lines []api.AgentLogLine
	out, err := t.c.GetOutput(ctx, taskRun)
	if err != nil {
		lines = logLines(2, "stderr", "[paddock] the run's output could not be read from Databricks: "+err.Error())
	} else {
		if out.LogsTruncated {
			lines = append(lines, logLines(2, "stderr", "[paddock] Databricks kept only the end of this output (runs/get-output gives at most 5 MB)")...)
		}
		lines = append(lines, logLines(int64(len(lines))+2, "stdout", out.Logs)...)
		if out.ErrorTrace != "" {
			lines = append(lines, logLines(int64(len(lines))+2, "stderr", out.ErrorTrace)...)
		} else if out.Error != "" {
			lines = append(lines, logLines(int64(len(lines))+2, "stderr", out.Error)...)
		}
	}
	if err := a.ship(ctx, at, lines); err != nil {
		a.log.Warn("shipping the run's log", "err", err)
	}
	rep := outcome(r, s, out.Error)
	if why, _ := at.stopReason(); rep.Status == api.RunCanceled && why != "" {
		rep.Error = why
	}
	if files, err := a.outputs(ctx, at, t); err != nil {
		if rep.Error == "" {
			rep.Error = "bringing the outputs back from DBFS failed: " + err.Error()
		}
		if rep.Status == api.RunCompleted {
			rep.Status, rep.Reason, rep.ExitCode = api.RunFailed, "OutputUploadFailed", nil
		}
	} else {
		rep.Outputs = files
	}
	return rep
}

// outcome maps a Databricks run's end to the attempt's.
func outcome(r databricks.Run, s attemptState, taskError string) api.AttemptReport {
	zero, one := 0, 1
	msg := fmt.Sprintf("Databricks run %d ended %s", r.RunID, r.State.LifeCycleState)
	if r.State.ResultState != "" {
		msg += " " + r.State.ResultState
	}
	if r.State.StateMessage != "" {
		msg += ": " + r.State.StateMessage
	}
	if taskError != "" {
		msg += " (" + taskError + ")"
	}
	switch {
	case r.State.LifeCycleState != databricks.Terminated:
		return api.AttemptReport{Status: api.RunFailed, Reason: "DatabricksNotTerminated", Error: msg}
	case r.State.ResultState == databricks.Success:
		return api.AttemptReport{Status: api.RunCompleted, ExitCode: &zero}
	case r.State.ResultState == databricks.Canceled && s.Canceled:
		return api.AttemptReport{Status: api.RunCanceled, Reason: "Canceled", Error: msg}
	case r.State.ResultState == databricks.Canceled:
		return api.AttemptReport{Status: api.RunFailed, Reason: "CanceledInDatabricks", Error: msg + " (cancelled outside Paddock)"}
	case r.State.ResultState == databricks.TimedOut:
		return api.AttemptReport{Status: api.RunCanceled, Reason: "MaxRunDurationExceeded", Error: msg}
	}
	return api.AttemptReport{Status: api.RunFailed, ExitCode: &one, Reason: "NonZeroExit", Error: msg}
}

// outputs brings the run's src/outputs back from DBFS and stores them as
// the run's outputs.
func (a *agent) outputs(ctx context.Context, at *attempt, t target) ([]api.OutputFile, error) {
	work, err := os.MkdirTemp(a.p.dir, "work-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	budget := outputLimits.MaxBytes
	if err := download(ctx, t.c, runDir(t.ws, at.ref.RunID, at.ref.Attempt)+"/src/outputs", work, &budget); err != nil {
		return nil, err
	}
	if ents, _ := os.ReadDir(work); len(ents) == 0 {
		return nil, nil
	}
	a.report(ctx, at, api.AttemptReport{Status: api.RunFinalizing})
	var buf bytes.Buffer
	if _, err := snapshot.Create(work, &buf, outputLimits); err != nil {
		return nil, err
	}
	var files []api.OutputFile
	err = retry(ctx, func() error {
		var err error
		files, err = a.client.PutOutputs(ctx, at.ref, bytesReader(buf.Bytes()))
		return err
	})
	return files, err
}
