package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// AgentClient is the node agent's side of the agent protocol: one typed
// call per route of /api/v1/agent, authenticated with a node token. The
// agent retries what fails; these calls send once and say what the server
// answered.
//
// Every attempt's goroutines share one AgentClient: change none of its
// fields once it is in use. To point an agent at a new server URL, copy
// the value, set Server on the copy and swap it in whole.
type AgentClient struct {
	Client
}

// NewAgentClient returns a client for a node agent holding the node token
// token. Its HTTP client has the timeouts of NewClient; a caller that
// wants others (long polls, uploads) sets HTTP before the first call.
func NewAgentClient(server, token string, opts ...Option) *AgentClient {
	return &AgentClient{Client: *NewClient(server, token, "", opts...)}
}

// attemptPath is the path of one of an attempt's routes (status, logs,
// outputs).
func attemptPath(ref AttemptRef, what string) string {
	return "/api/v1/agent/runs/" + url.PathEscape(ref.RunID) + "/attempts/" + strconv.Itoa(ref.Attempt) + "/" + what
}

// Hello registers the agent's node, or registers it again after the
// server restarted or forgot it, and returns the node's id and target.
// The server answers ErrUnauthenticated when it does not take the node
// token, ErrNotFound when it does not know the node, and ErrConflict when
// the node is being removed.
func (c *AgentClient) Hello(ctx context.Context, h AgentHello) (AgentNode, error) {
	var node AgentNode
	err := c.Do(ctx, http.MethodPost, "/api/v1/agent/hello", h, &node)
	return node, err
}

// Poll tells the server what the agent runs and returns its work:
// assignments, cancels and attempts that are stale. The server holds the
// request up to p.WaitMS (at most 30 s) while there is nothing to do. It
// answers ErrNotFound when it does not know the node and ErrConflict when
// the node has not said Hello since the server restarted or lost it: the
// agent then says Hello again.
func (c *AgentClient) Poll(ctx context.Context, p AgentPoll) (AgentWork, error) {
	var work AgentWork
	err := c.Do(ctx, http.MethodPost, "/api/v1/agent/poll", p, &work)
	return work, err
}

// Report posts an attempt's new status (the server answers 204). It
// answers ErrConflict when the attempt is no longer current (stale) and
// ErrNotFound when its run is gone: the agent stops such an attempt and
// reports nothing more for it.
func (c *AgentClient) Report(ctx context.Context, ref AttemptRef, r AttemptReport) error {
	return c.Do(ctx, http.MethodPost, attemptPath(ref, "status"), r, nil)
}

// Logs sends a batch of an attempt's log lines, at most LogBatchLen of
// them, and returns the number of the last line the server has stored
// (the ack): the agent resends what comes after it. The server answers
// ErrConflict or ErrNotFound for a stale attempt, ErrTooLarge for a batch
// over the limits and ErrInsufficientStorage when its disk is full.
func (c *AgentClient) Logs(ctx context.Context, ref AttemptRef, lines []AgentLogLine) (int64, error) {
	var ack LogAckBody
	err := c.Do(ctx, http.MethodPost, attemptPath(ref, "logs"), AgentLogs{Lines: lines}, &ack)
	return ack.Ack, err
}

// PutOutputs uploads an attempt's ./outputs, a tar.gz, as the run's
// outputs and returns the files the server stored. The server answers
// ErrConflict or ErrNotFound for a stale attempt, ErrInvalid for an
// archive it refuses, ErrTooLarge for one over its limit and
// ErrInsufficientStorage when its disk is full.
func (c *AgentClient) PutOutputs(ctx context.Context, ref AttemptRef, tarGz io.Reader) ([]OutputFile, error) {
	var files []OutputFile
	err := c.Do(ctx, http.MethodPut, attemptPath(ref, "outputs"), Raw{ContentType: "application/gzip", Data: tarGz}, &files)
	return files, err
}

// GetOutputs returns the run's stored outputs as a tar.gz stream, for its
// current attempt to restore an earlier attempt's checkpoints; the caller
// closes it. The server answers ErrConflict or ErrNotFound for a stale
// attempt.
func (c *AgentClient) GetOutputs(ctx context.Context, ref AttemptRef) (io.ReadCloser, error) {
	return c.stream(ctx, attemptPath(ref, "outputs"))
}

// GetSnapshot returns the source snapshot with this digest as a tar.gz
// stream; the caller closes it and checks the digest. The server answers
// ErrNotFound unless the snapshot is the source of a run on this node.
func (c *AgentClient) GetSnapshot(ctx context.Context, digest string) (io.ReadCloser, error) {
	return c.stream(ctx, "/api/v1/agent/snapshots/"+url.PathEscape(digest))
}
