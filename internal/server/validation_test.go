package server

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/store"
)

func TestMetricStepsAreBounded(t *testing.T) {
	s := newTestServer(t)
	s.addNode("node-a")
	run := s.placedRun("node-a", "")
	path := "/api/v1/workspaces/default/runs/" + run.ID + "/metrics"
	for _, tc := range []struct {
		step   int64
		status int
	}{
		{1 << 53, http.StatusCreated},
		{-(1 << 53), http.StatusCreated},
		{1<<53 + 1, http.StatusBadRequest},
		{1<<63 - 1, http.StatusBadRequest},
		{-1 << 63, http.StatusBadRequest},
	} {
		body := jsonBody(map[string]any{"name": "loss", "value": 0.5, "step": tc.step})
		rec := s.serve(request("POST", path, s.token, body))
		if tc.status != http.StatusCreated {
			if e := errorOf(t, rec, tc.status); e.Field != "step" {
				t.Errorf("step %d: error %+v, want one naming step", tc.step, e)
			}
		} else if rec.Code != tc.status {
			t.Errorf("step %s: %d %s", strconv.FormatInt(tc.step, 10), rec.Code, rec.Body)
		}
	}
}

// Over HTTP, a NUL byte in a run's command or a metric's name is a 400
// naming the field, and no run is queued.
func TestNULBytesAreRefusedAtSubmit(t *testing.T) {
	s := newTestServer(t)
	for _, tc := range []struct{ body, field string }{
		{`{"compute":"local","command":["python3","train.py\u0000"]}`, "command"},
		{`{"compute":"local","command":["true"],"env":{"A":"\u0000"}}`, "env"},
		{`{"compute":"local","command":["true"],"environment":{"image":"--privileged"}}`, "environment.image"},
	} {
		e := errorOf(t, s.serve(request("POST", "/api/v1/workspaces/default/runs", s.token, strings.NewReader(tc.body))), http.StatusBadRequest)
		if e.Field != tc.field {
			t.Errorf("%s: error %+v, want one naming %s", tc.body, e, tc.field)
		}
	}
	if runs, err := s.st.ListRuns(s.ctx, "default", store.RunFilter{}); err != nil || len(runs) != 0 {
		t.Errorf("runs queued: %d, %v", len(runs), err)
	}
	s.addNode("node-a")
	run := s.placedRun("node-a", "")
	body := `{"name":"lo\u0000ss","value":1}`
	e := errorOf(t, s.serve(request("POST", "/api/v1/workspaces/default/runs/"+run.ID+"/metrics", s.token, strings.NewReader(body))), http.StatusBadRequest)
	if e.Field != "name" {
		t.Errorf("metric name with NUL: %+v", e)
	}
}
