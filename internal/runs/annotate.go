package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
)

// What a run may be annotated with (documented in docs/runs.md).
const (
	maxTags        = 100
	maxTagKey      = 255
	maxTagValue    = 4096
	maxMetricText  = 64 << 10
	maxRowColumns  = 1000
	maxColumnName  = 255
	maxMetricValue = 1 << 20 // the JSON of a row or a JSON value
)

// checkMetric checks one metric of a post by its kind and puts rows and
// JSON values in compact form.
func (s *Service) checkMetric(run store.Run, m *api.Metric) error {
	numberOnly := func(what string) error {
		if m.Value != 0 {
			return api.Invalid("value", "metric %q: a %s metric has no value; give it in %s", m.Name, kindName(m.Kind), what)
		}
		return nil
	}
	switch m.Kind {
	case api.MetricNumber:
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			return api.Invalid("value", "metric %q: value must be a finite number", m.Name)
		}
		if m.Text != "" || len(m.Data) > 0 {
			return api.Invalid("kind", "metric %q: a number has only a value; give kind string with text, or row or json with data", m.Name)
		}
	case api.MetricString:
		if err := numberOnly("text"); err != nil {
			return err
		}
		if len(m.Data) > 0 {
			return api.Invalid("data", "metric %q: a string metric has text, not data", m.Name)
		}
		if len(m.Text) > maxMetricText || !utf8.ValidString(m.Text) || strings.ContainsRune(m.Text, 0) {
			return api.Invalid("text", "metric %q: text must be UTF-8 without NUL bytes, at most %d bytes", m.Name, maxMetricText)
		}
	case api.MetricRow, api.MetricJSON:
		if err := numberOnly("data"); err != nil {
			return err
		}
		if m.Text != "" {
			return api.Invalid("text", "metric %q: a %s metric has data, not text", m.Name, m.Kind)
		}
		if len(m.Data) == 0 || !json.Valid(m.Data) || len(m.Data) > maxMetricValue {
			return api.Invalid("data", "metric %q: data must be a JSON value of at most %d bytes", m.Name, maxMetricValue)
		}
		if m.Kind == api.MetricRow {
			if err := checkRow(m.Name, m.Data); err != nil {
				return err
			}
		}
		var b bytes.Buffer
		json.Compact(&b, m.Data)
		m.Data = b.Bytes()
	case api.MetricImage:
		if err := numberOnly("text"); err != nil {
			return err
		}
		if err := artifact.CheckRunFilePath(m.Text); err != nil {
			return api.Invalid("text", "metric %q: text must name the run's file that holds the image: %v", m.Name, err)
		}
		if s.HasFile != nil && !s.HasFile(run.ID, m.Text) {
			return api.Invalid("text", "metric %q: run %s has no file %s; upload the image first (PUT .../runs/%s/files/%s)", m.Name, run.ID, m.Text, run.ID, m.Text)
		}
	default:
		return api.Invalid("kind", "metric %q: kind must be string, row, json or image (or left out for a number), not %q", m.Name, m.Kind)
	}
	return nil
}

func kindName(k string) string {
	if k == "" {
		return "number"
	}
	return k
}

// checkRow checks a table row: an object of at most maxRowColumns columns,
// each a number, string, boolean or null.
func checkRow(name string, data json.RawMessage) error {
	var row map[string]json.RawMessage
	if err := json.Unmarshal(data, &row); err != nil || row == nil {
		return api.Invalid("data", "metric %q: a row is a JSON object of column → value", name)
	}
	if len(row) == 0 || len(row) > maxRowColumns {
		return api.Invalid("data", "metric %q: a row has 1 to %d columns, not %d", name, maxRowColumns, len(row))
	}
	for col, v := range row {
		if col == "" || len(col) > maxColumnName {
			return api.Invalid("data", "metric %q: column names are 1 to %d bytes", name, maxColumnName)
		}
		switch bytes.TrimSpace(v)[0] {
		case '{', '[':
			return api.Invalid("data", "metric %q: column %q holds a list or object; a row's values are numbers, strings, booleans or null (log a JSON value with kind json)", name, col)
		}
	}
	return nil
}

// checkTags checks tags to set on a run that already has have: names of 1
// to maxTagKey bytes without control characters, values of at most
// maxTagValue bytes without NUL, at most maxTags in all.
func checkTags(set map[string]string, have map[string]string) error {
	n := len(have)
	for k, v := range set {
		if k == "" || len(k) > maxTagKey || strings.ContainsFunc(k, unicode.IsControl) || !utf8.ValidString(k) {
			return api.Invalid("tags", "tag name %q must be 1 to %d bytes of UTF-8 without control characters", k, maxTagKey)
		}
		if len(v) > maxTagValue || strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
			return api.Invalid("tags", "the value of tag %q must be UTF-8 without NUL bytes, at most %d bytes", k, maxTagValue)
		}
		if _, ok := have[k]; !ok {
			n++
		}
	}
	if n > maxTags {
		return api.Invalid("tags", "a run has at most %d tags", maxTags)
	}
	return nil
}

// tag sets a new run's tags.
func (s *Service) tag(ctx context.Context, runID string, tags map[string]string) error {
	if len(tags) == 0 {
		return nil
	}
	return s.Store.SetRunTags(ctx, runID, tags, nil)
}

// UpdateRun sets and removes (null) tags of a run; run is the run as its
// caller found it.
func (s *Service) UpdateRun(ctx context.Context, run store.Run, in api.RunUpdate) (api.Run, error) {
	s.init()
	if in.Tags == nil {
		return api.Run{}, api.Invalid("tags", "give tags to set, and those to remove with null")
	}
	have, err := s.Store.RunTags(ctx, run.ID)
	if err != nil {
		return api.Run{}, err
	}
	set := map[string]string{}
	var remove []string
	for k, v := range in.Tags {
		if v == nil {
			remove = append(remove, k)
		} else {
			set[k] = *v
		}
	}
	sort.Strings(remove)
	left := map[string]string{}
	for k, v := range have[run.ID] {
		left[k] = v
	}
	for _, k := range remove {
		delete(left, k)
	}
	if err := checkTags(set, left); err != nil {
		return api.Run{}, err
	}
	if err := s.Store.SetRunTags(ctx, run.ID, set, remove); err != nil {
		return api.Run{}, err
	}
	s.Dispatch.NotifyLogs(run.ID) // wake those watching the run
	return s.view(ctx, run, false)
}

// startInteractive records an interactive run: no compute, no command.
func (s *Service) startInteractive(ctx context.Context, ws, user string, in api.RunSubmit, idemKey string) (api.Run, error) {
	if err := s.Computes.CheckWorkspace(ctx, ws); err != nil {
		return api.Run{}, err
	}
	for field, given := range map[string]bool{
		"compute": in.Compute != "", "compute_spec": in.ComputeSpec != nil, "command": len(in.Command) > 0,
		"source": in.Source != "", "environment": in.Environment != (api.Environment{}), "env": len(in.Env) > 0,
		"node_count": in.NodeCount > 1, "process_count_per_node": in.ProcessCountPerNode > 1,
		"distribution": in.Distribution != "" && in.Distribution != "none", "resources": in.Resources != nil,
		"max_run_duration_seconds": in.MaxRunDurationSeconds != 0,
	} {
		if given {
			return api.Run{}, api.Invalid(field, "an interactive run runs nothing, so it takes no %s: its client logs to it and ends it", field)
		}
	}
	exp, err := targets.ExperimentName(in.Experiment)
	if err != nil {
		return api.Run{}, err
	}
	r := store.Run{Workspace: ws, IdempotencyKey: idemKey, Run: api.Run{Experiment: exp, Command: []string{}, NodeCount: 1,
		ProcessCountPerNode: 1, Distribution: "none", CreatedBy: user}}
	saved, err := s.Dispatch.StartInteractive(ctx, r)
	if err != nil {
		return api.Run{}, err
	}
	if err := s.tag(ctx, saved.ID, in.Tags); err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, saved, false)
}

// End ends an interactive run (Completed, or Failed with msg), if by may.
func (s *Service) End(ctx context.Context, ws, id string, by authz.Principal, status api.RunStatus, msg string) (api.Run, error) {
	cur, err := s.Store.GetRun(ctx, ws, id)
	if err != nil {
		return api.Run{}, err
	}
	if err := by.Check(authz.CancelRun, "run "+id, cur.CreatedBy); err != nil {
		return api.Run{}, err
	}
	run, err := s.Dispatch.EndInteractive(ctx, ws, id, status, msg)
	if err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, run, false)
}

// MarkFailed records that a run says it failed (Run.fail, with the run's
// own token): it ends Failed with msg when its command ends, even with
// exit code 0; an interactive run ends at once.
func (s *Service) MarkFailed(ctx context.Context, run store.Run, msg string) (api.Run, error) {
	if len(msg) > maxMetricText || strings.ContainsRune(msg, 0) {
		return api.Run{}, api.Invalid("error", "error must be at most %d bytes without NUL bytes", maxMetricText)
	}
	out, err := s.Dispatch.RequestFail(ctx, run.Workspace, run.ID, msg)
	if err != nil {
		return api.Run{}, err
	}
	return s.view(ctx, out, false)
}
