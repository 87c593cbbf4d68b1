package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/paddock-ml/paddock/internal/backoff"
)

// HasSnapshot reports whether the server already stores a snapshot.
func (c *Client) HasSnapshot(ctx context.Context, digest string) (bool, error) {
	err := c.Do(ctx, http.MethodHead, c.wsPath("snapshots", digest), nil, nil)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// UploadSnapshot uploads a tar.gz source snapshot.
func (c *Client) UploadSnapshot(ctx context.Context, data io.Reader) (SnapshotRef, error) {
	var out SnapshotRef
	err := c.Do(ctx, http.MethodPut, c.wsPath("snapshots"), Raw{ContentType: "application/gzip", Data: data}, &out)
	return out, err
}

// SubmitRun queues a run. A non-empty idempotency key makes retries safe:
// the server returns the first run submitted with it.
func (c *Client) SubmitRun(ctx context.Context, in RunSubmit, idempotencyKey string) (*Run, error) {
	if idempotencyKey != "" {
		ctx = WithHeader(ctx, "Idempotency-Key", idempotencyKey)
	}
	return call[Run](ctx, c, http.MethodPost, c.wsPath("runs"), in)
}

// GetRun returns a run.
func (c *Client) GetRun(ctx context.Context, id string) (*Run, error) {
	return call[Run](ctx, c, http.MethodGet, c.wsPath("runs", id), nil)
}

// WatchRun returns the run as soon as its status is not `from` (or after
// the server's wait limit, unchanged).
func (c *Client) WatchRun(ctx context.Context, id string, from RunStatus) (*Run, error) {
	return c.watchRun(ctx, id, url.Values{"watch": {string(from)}})
}

// WatchRunReason returns the run as soon as its status is not `from` or
// its status_reason is not `reason` (or after the server's wait limit,
// unchanged).
func (c *Client) WatchRunReason(ctx context.Context, id string, from RunStatus, reason string) (*Run, error) {
	return c.watchRun(ctx, id, url.Values{"watch": {string(from)}, "watch_reason": {reason}})
}

func (c *Client) watchRun(ctx context.Context, id string, q url.Values) (*Run, error) {
	q.Set("timeout_ms", "25000")
	return call[Run](ctx, c, http.MethodGet, c.wsPath("runs", id)+"?"+q.Encode(), nil)
}

// WaitRun follows a run until it ends and returns the final run. With a
// progress func it calls it with the run first and at each change of its
// status or status_reason (why a queued run waits).
func (c *Client) WaitRun(ctx context.Context, id string, progress func(*Run)) (*Run, error) {
	r, err := c.GetRun(ctx, id)
	for err == nil {
		if progress != nil {
			progress(r)
		}
		if r.Status.Terminal() {
			return r, nil
		}
		prev, why := r.Status, r.StatusReason
		for err == nil && r.Status == prev && (progress == nil || r.StatusReason == why) {
			if progress != nil {
				r, err = c.WatchRunReason(ctx, id, prev, why)
			} else {
				r, err = c.WatchRun(ctx, id, prev)
			}
		}
	}
	return nil, err
}

// ListRuns lists runs, newest first, optionally of one compute target.
func (c *Client) ListRuns(ctx context.Context, compute string, limit int) ([]Run, error) {
	q := url.Values{}
	if compute != "" {
		q.Set("compute", compute)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l RunList
	err := c.Do(ctx, http.MethodGet, c.wsPath("runs")+"?"+q.Encode(), nil, &l)
	return l.Items, err
}

// CancelRun asks for a run to be stopped.
func (c *Client) CancelRun(ctx context.Context, id string) (*Run, error) {
	return call[Run](ctx, c, http.MethodPost, c.wsPath("runs", id+":cancel"), nil)
}

// Metrics returns every metric value a run logged.
func (c *Client) Metrics(ctx context.Context, id string) ([]Metric, error) {
	var l MetricList
	err := c.Do(ctx, http.MethodGet, c.wsPath("runs", id, "metrics"), nil, &l)
	return l.Items, err
}

// LogMetric posts one metric value for a run.
func (c *Client) LogMetric(ctx context.Context, id, name string, value float64, step int64) error {
	return c.Do(ctx, http.MethodPost, c.wsPath("runs", id, "metrics"), MetricPost{Name: name, Value: &value, Step: &step}, nil)
}

// stream opens a streaming GET and returns its body, from the next server
// when one cannot answer.
func (c *Client) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	all := c.attempts()
	var lastErr error
	for _, at := range all {
		idx, server := at.idx, at.server
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		hc := *c.HTTP
		hc.Timeout = 0 // streams last as long as the run
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = unreachable(server, err)
			continue
		}
		if resp.StatusCode >= 400 {
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			lastErr = responseError(server, resp.StatusCode, data)
			if resp.StatusCode >= 500 {
				continue
			}
			c.answered(idx)
			return nil, lastErr
		}
		c.answered(idx)
		return resp.Body, nil
	}
	if len(all) > 1 {
		c.answered(all[1].idx)
	}
	return nil, lastErr
}

// FollowLogs calls fn for each log line after the cursor `after`; with
// follow it continues until the run has ended and every line was seen,
// reconnecting from the last line if the connection drops.
func (c *Client) FollowLogs(ctx context.Context, id string, after int64, follow bool, fn func(LogLine) error) error {
	reconnect := backoff.New(100*time.Millisecond, 2*time.Second)
	for {
		q := url.Values{"after": {strconv.FormatInt(after, 10)}}
		if follow {
			q.Set("follow", "true")
		}
		body, err := c.stream(ctx, c.wsPath("runs", id, "logs")+"?"+q.Encode())
		if err != nil {
			if e, ok := err.(*Error); ok && e.Code != CodeUnavailable || !follow {
				return err
			}
		} else {
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var l LogLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					body.Close()
					return fmt.Errorf("decoding a log line: %w", err)
				}
				if err := fn(l); err != nil {
					body.Close()
					return err
				}
				after = l.Seq
				reconnect.Reset()
			}
			body.Close()
			if !follow {
				return sc.Err()
			}
			// The stream ends when the run has ended; make sure it has.
			r, err := c.GetRun(ctx, id)
			if err == nil && r.Status.Terminal() {
				return nil
			}
		}
		if !reconnect.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// Outputs returns a run's outputs as a tar.gz stream.
func (c *Client) Outputs(ctx context.Context, id string) (io.ReadCloser, error) {
	return c.stream(ctx, c.wsPath("runs", id, "outputs"))
}
