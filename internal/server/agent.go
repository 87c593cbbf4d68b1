package server

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/version"
)

func (a *API) agentHello(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.AgentHello
	if err := decode(r, &in); err != nil {
		return err
	}
	n, err := a.dispatch.Hello(r.Context(), who.Node.ID, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AgentNode{NodeID: n.ID, Compute: n.Compute})
	return nil
}

// maxPollWait bounds how long a poll is held; agents poll again at once.
const maxPollWait = 30 * time.Second

func (a *API) agentPoll(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.AgentPoll
	if err := decode(r, &in); err != nil {
		return err
	}
	wait := time.Duration(min(max(int64(in.WaitMS), 0), maxPollWait.Milliseconds())) * time.Millisecond // no overflow
	started := time.Now()
	work, wake, err := a.dispatch.Poll(r.Context(), who.Node.ID, in.Active, in.SSHSessions)
	a.pollTime.Observe(time.Since(started).Seconds())
	if err != nil {
		return err
	}
	if empty(work) && wait > 0 {
		timer := a.clock.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C():
		case <-r.Context().Done():
			timer.Stop()
			return nil
		}
		timer.Stop()
		if work, _, err = a.dispatch.Poll(r.Context(), who.Node.ID, in.Active, in.SSHSessions); err != nil {
			return err
		}
	}
	if a.servers != nil {
		work.Servers = a.servers()
	}
	writeJSON(w, http.StatusOK, work)
	return nil
}

func empty(w api.AgentWork) bool {
	return len(w.Assignments) == 0 && len(w.Cancel) == 0 && len(w.Stale) == 0
}

// agentSnapshot sends a source snapshot to the agent of a node that runs a
// run made from it, and to no other: a node token is not a key to every
// workspace's sources. Others get 404, as if it did not exist.
func (a *API) agentSnapshot(w http.ResponseWriter, r *http.Request, who caller) error {
	digest := r.PathValue("digest")
	if !artifact.ValidDigest(digest) {
		return api.Invalid("digest", "not a snapshot digest")
	}
	if !a.dispatch.NodeHasSource(r.Context(), who.Node.ID, digest) {
		return api.NotFound("snapshot %s is not the source of a run on this node", digest)
	}
	f, err := os.Open(a.art.SnapshotPath(digest))
	if err != nil {
		return api.NotFound("snapshot %s not found", digest)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/gzip")
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// agentBinary serves this server's own paddock binary, for a node that
// fetches its agent from the server (a Kubernetes pod's init container).
// Range requests are supported.
func (a *API) agentBinary(w http.ResponseWriter, r *http.Request, _ caller) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	f, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Paddock-Version", version.Version)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// attemptOf reads the {id}/{n} path of an agent report and checks that
// the attempt is current and on the caller's node.
func (a *API) attemptOf(r *http.Request, who caller) (api.AttemptRef, store.Run, error) {
	ref, err := attemptRef(r)
	if err != nil {
		return ref, store.Run{}, err
	}
	run, err := a.store.GetRun(r.Context(), who.Node.Workspace, ref.RunID)
	if err != nil {
		return ref, run, err
	}
	if run.Attempt != ref.Attempt || run.Rank(who.Node.ID) < 0 {
		return ref, run, api.Conflict("attempt %d of run %s is no longer current", ref.Attempt, ref.RunID)
	}
	return ref, run, nil
}

// attemptRef is the attempt a request's path names.
func attemptRef(r *http.Request) (api.AttemptRef, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	ref := api.AttemptRef{RunID: r.PathValue("id"), Attempt: n}
	if err != nil {
		return ref, api.Invalid("attempt", "attempt must be a number")
	}
	return ref, nil
}

// agentStatus takes an attempt's status report. The dispatcher checks, in
// memory, that the attempt is current and on the calling node (two reports
// per run made the store read here a tenth of the server's CPU while
// placing); the small report body is read first under its route's limit.
func (a *API) agentStatus(w http.ResponseWriter, r *http.Request, who caller) error {
	ref, err := attemptRef(r)
	if err != nil {
		return err
	}
	var in api.AttemptReport
	if err := decode(r, &in); err != nil {
		return err
	}
	if err := a.dispatch.Report(r.Context(), who.Node.ID, ref, in); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) agentLogs(w http.ResponseWriter, r *http.Request, who caller) error {
	ref, run, err := a.attemptOf(r, who) // before reading the body
	if err != nil {
		return err
	}
	lines, err := logBatch(r.Body)
	if err != nil {
		return err
	}
	ack, err := a.runs.AppendLogs(r.Context(), run, ref.Attempt, run.Rank(who.Node.ID), lines)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.LogAckBody{Ack: ack})
	return nil
}

func (a *API) agentOutputs(w http.ResponseWriter, r *http.Request, who caller) error {
	_, run, err := a.attemptOf(r, who)
	if err != nil {
		return err
	}
	files, err := a.art.PutOutputs(run.ID, r.Body)
	if err != nil {
		return err
	}
	if files == nil {
		files = []api.OutputFile{}
	}
	if err := a.dispatch.SetOutputs(r.Context(), run.ID, run.Attempt, files); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, files)
	return nil
}

// agentRestoreOutputs sends the run's stored outputs to the agent of its
// current attempt, to restore an earlier attempt's checkpoints.
func (a *API) agentRestoreOutputs(w http.ResponseWriter, r *http.Request, who caller) error {
	_, run, err := a.attemptOf(r, who)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/gzip")
	if err := a.art.WriteOutputs(run.ID, w); err != nil {
		a.log.Error("writing outputs for a restore", "run", run.ID, "err", err)
	}
	return nil
}

// logBatch decodes and checks an agent's log batch (api.AgentLogs): at most
// api.MaxLogBatchLines lines, each numbered from 1, on stdout or stderr,
// with at most api.MaxLogLineBytes of text.
func logBatch(body io.Reader) ([]store.LogLine, error) {
	var in api.AgentLogs
	if err := decodeBody(body, &in); err != nil {
		return nil, err
	}
	if len(in.Lines) > api.MaxLogBatchLines {
		return nil, api.Invalid("lines", "a log batch has at most %d lines, not %d", api.MaxLogBatchLines, len(in.Lines))
	}
	lines := make([]store.LogLine, len(in.Lines))
	for i, l := range in.Lines {
		switch {
		case l.N < 1:
			return nil, api.Invalid("lines.n", "line %d: n must be at least 1, not %d", i, l.N)
		case l.Stream != "stdout" && l.Stream != "stderr":
			return nil, api.Invalid("lines.stream", "line %d: stream must be stdout or stderr, not %q", i, l.Stream)
		case len(l.Text) > api.MaxLogLineBytes:
			return nil, api.Invalid("lines.text", "line %d: text must be at most %d bytes; split longer lines", i, api.MaxLogLineBytes)
		}
		lines[i] = store.LogLine{ASeq: l.N, Stream: l.Stream, Time: time.Unix(0, l.TimeNS).UTC(), Text: l.Text}
	}
	return lines, nil
}
