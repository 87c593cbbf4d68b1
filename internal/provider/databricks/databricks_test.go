package databricks

import (
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/databricks"
)

// How a Databricks run's end becomes its attempt's.
func TestOutcome(t *testing.T) {
	t.Parallel()
	run := func(lc, result, msg string) databricks.Run {
		return databricks.Run{RunID: 7, State: databricks.RunState{LifeCycleState: lc, ResultState: result, StateMessage: msg}}
	}
	for _, tc := range []struct {
		name     string
		run      databricks.Run
		canceled bool
		status   api.RunStatus
		reason   string
		exit     int // -1: none
		err      string
	}{
		{"success", run("TERMINATED", "SUCCESS", ""), false, api.RunCompleted, "", 0, ""},
		{"failed", run("TERMINATED", "FAILED", "Workload failed"), false, api.RunFailed, "NonZeroExit", 1, "Databricks run 7 ended TERMINATED FAILED: Workload failed (ValueError: x)"},
		{"cancelled by paddock", run("TERMINATED", "CANCELED", "Run cancelled."), true, api.RunCanceled, "Canceled", -1, "CANCELED"},
		{"cancelled elsewhere", run("TERMINATED", "CANCELED", "Run cancelled."), false, api.RunFailed, "CanceledInDatabricks", -1, "cancelled outside Paddock"},
		{"timed out", run("TERMINATED", "TIMEDOUT", ""), false, api.RunCanceled, "MaxRunDurationExceeded", -1, "TIMEDOUT"},
		{"internal error", run("INTERNAL_ERROR", "", "the cluster could not start"), false, api.RunFailed, "DatabricksNotTerminated", -1, "INTERNAL_ERROR: the cluster could not start"},
	} {
		taskErr := ""
		if tc.name == "failed" {
			taskErr = "ValueError: x"
		}
		rep := outcome(tc.run, attemptState{Canceled: tc.canceled}, taskErr)
		exit := -1
		if rep.ExitCode != nil {
			exit = *rep.ExitCode
		}
		if rep.Status != tc.status || rep.Reason != tc.reason || exit != tc.exit || !strings.Contains(rep.Error, tc.err) {
			t.Errorf("%s: %+v (exit %d)", tc.name, rep, exit)
		}
	}
}

// Output lines are numbered on and split to the protocol's line limit.
func TestLogLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", api.MaxLogLineBytes+10)
	lines := logLines(5, "stdout", "a\n"+long+"\nb\n")
	if len(lines) != 4 || lines[0].N != 5 || lines[3].N != 8 || lines[3].Text != "b" || len(lines[1].Text) != api.MaxLogLineBytes || lines[2].Text != "xxxxxxxxxx" {
		t.Errorf("lines: %d, first %+v", len(lines), lines[0])
	}
	if logLines(1, "stdout", "\n") != nil {
		t.Error("an empty output made lines")
	}
	if tok := idempotencyToken("default", "run-1", 2); len(tok) > 64 || tok == idempotencyToken("default", "run-1", 3) {
		t.Errorf("idempotency token %q", tok)
	}
}
