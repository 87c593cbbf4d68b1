package server

import (
	"net/http"
	"strconv"
	"testing"
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
