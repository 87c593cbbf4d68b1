package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/api"
)

// A studio sign-in link is made for the caller and shown once; neither
// its code nor a studio session is a bearer token for the API.
func TestStudioLinkIsNoAPIToken(t *testing.T) {
	s := newTestServer(t)
	rec := s.serve(request(http.MethodPost, "/api/v1/studio/links", s.token, nil))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /api/v1/studio/links: %d %s", rec.Code, rec.Body)
	}
	var link api.StudioLink
	if err := json.Unmarshal(rec.Body.Bytes(), &link); err != nil || !strings.HasPrefix(link.Code, "pdl_") ||
		link.Path != "/signin?code="+link.Code || link.ExpiresAt.IsZero() {
		t.Fatalf("link = %+v, %v", link, err)
	}
	for _, tok := range []string{link.Code, "pds_whatever"} {
		rec := s.serve(request(http.MethodGet, "/api/v1/workspaces/default/computes", tok, nil))
		if e := errorOf(t, rec, http.StatusForbidden); !strings.Contains(e.Message, "only in the studio") {
			t.Errorf("%s…: %s", tok[:4], e.Message)
		}
	}
	errorOf(t, s.serve(request(http.MethodPost, "/api/v1/studio/links", "", nil)), http.StatusUnauthorized)
}
