package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

func TestDecodeIsStrict(t *testing.T) {
	cases := []struct {
		body  string
		field string // "" when the body is accepted
	}{
		{`{"name":"a","role":"Reader"}`, ""},
		{"{\"name\":\"a\"}\n\t ", ""},
		{`{"name":"a"}{"name":"b"}`, "body"},
		{`{"name":"a"} {"role":"Reader"}`, "body"},
		{`{"name":"a"}garbage`, "body"},
		{`{"name":"a"}]`, "body"},
		{`{"name":"a"} 1`, "body"},
		{`{"name":"a","nmae":"b"}`, "nmae"},
		{``, "body"},
		{`{"name":`, "body"},
	}
	for _, tc := range cases {
		var in api.UserCreate
		err := decode(httptest.NewRequest("POST", "/", strings.NewReader(tc.body)), &in)
		var e *api.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.field != "" && (!errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != tc.field):
			t.Errorf("%q: error %v, want Invalid on %s", tc.body, err, tc.field)
		}
	}
}

// Over HTTP, trailing data is a 400 naming the body, and nothing is made.
func TestTrailingDataAfterABodyIsRefused(t *testing.T) {
	s := newTestServer(t)
	body := `{"name":"gpu-cluster","type":"cluster","properties":{"vm_size":"STANDARD_NC6","max_nodes":2}}{"name":"x"}`
	e := errorOf(t, s.serve(request("POST", "/api/v1/workspaces/default/computes", s.token, strings.NewReader(body))), http.StatusBadRequest)
	if e.Field != "body" || !strings.Contains(e.Message, "nothing after it") {
		t.Errorf("error = %+v", e)
	}
	if rec := s.serve(request("GET", "/api/v1/workspaces/default/computes/gpu-cluster", s.token, nil)); rec.Code != http.StatusNotFound {
		t.Errorf("the target was made anyway: %d %s", rec.Code, rec.Body)
	}
}
