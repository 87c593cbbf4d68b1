package studio

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
	"github.com/paddock-ml/paddock/internal/users"
)

// fixture is the studio over a real SQLite store, dispatcher, targets,
// runs and users services, served in-process, with the admin signed in.
// The browser tests (e2e/studio_test.go) drive the real binary; these
// check what a browser cannot show, and time the pages.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	studio  *Studio
	st      *sqlite.Store
	targets *targets.Service
	cookie  *http.Cookie
	csrf    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := t.Context()
	st, box, sizes := testenv.Store(t), testenv.Box(t), testenv.Sizes(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	disp := dispatch.New(st, box, log, nil, dispatch.Options{APIURL: "http://paddock.test"})
	if err := disp.Load(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Go(t, disp.Run)
	ts := &targets.Service{Store: st, Box: box, Sizes: sizes, ActiveRuns: disp.ActiveRuns, CancelRun: disp.CancelRun, Nodes: disp.Nodes}
	if err := ts.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		t.Fatal(err)
	}
	admin := testenv.Admin(t, st)
	art, err := artifact.New(filepath.Join(t.TempDir(), "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	us := &users.Service{Store: st}
	rs := &runs.Service{Store: st, Dispatch: disp, Computes: ts, HasSource: art.HasSnapshot, Log: log}
	s, err := New(Deps{Targets: ts, Runs: rs, Users: us, Store: st, Dispatch: disp, Artifacts: art, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Go(t, s.Run)
	id, err := us.Authenticate(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	session, _, err := us.StartSession(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, studio: s, st: st, targets: ts,
		cookie: &http.Cookie{Name: sessionCookie, Value: session}, csrf: csrfToken(session)}
}

// get serves a GET of the signed-in admin.
func (f *fixture) get(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(f.cookie)
	rec := httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	return rec
}

// post serves a form post of the signed-in admin, from origin ("" sends
// none).
func (f *fixture) post(path, origin string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	req.AddCookie(f.cookie)
	rec := httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	return rec
}

// A page without a session sends the browser to sign in, and comes back
// after; a form post without one is refused.
func TestSignInFirst(t *testing.T) {
	f := newFixture(t)
	req := httptest.NewRequest(http.MethodGet, "/ws/default/runs?status=Running", nil)
	rec := httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || loc != "/signin?next="+url.QueryEscape("/ws/default/runs?status=Running") {
		t.Errorf("no session: %d to %q", rec.Code, loc)
	}
	req = httptest.NewRequest(http.MethodPost, "/ws/default/computes", strings.NewReader("type=cluster&name=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("a post without a session: %d", rec.Code)
	}
	// A user token is not a session: the API's tokens stay in the API.
	req = httptest.NewRequest(http.MethodGet, "/ws/default/computes", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: testenv.Admin(t, f.st)})
	rec = httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Errorf("a user token as the session cookie: %d", rec.Code)
	}
}

// Every form post needs the session's CSRF token and, when the browser
// names one, the studio's own origin; a refused post makes nothing.
func TestFormsNeedCSRF(t *testing.T) {
	f := newFixture(t)
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "type": {"cluster"}, "name": {"cpu"}, "vm_size": {"STANDARD_D2_V2"}, "max_nodes": {"2"}}
	}
	for _, c := range []struct {
		name, csrf, origin string
	}{
		{"no token", "", ""},
		{"a wrong token", "x" + f.csrf[1:], ""},
		{"another site", f.csrf, "https://evil.example"},
		{"an opaque origin", f.csrf, "null"},
	} {
		if rec := f.post("/ws/default/computes", c.origin, form(c.csrf)); rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, rec.Code)
		}
	}
	if _, err := f.st.GetCompute(f.ctx, "default", "cpu"); err == nil {
		t.Fatal("a refused post created the target")
	}
	rec := f.post("/ws/default/computes", "http://example.com", form(f.csrf))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ws/default/computes/cpu?done=created" {
		t.Fatalf("the studio's own post: %d %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
}

// The create form answers the API's validation beside the field it
// names, with the form as it was filled, and makes nothing.
func TestCreateFormFieldError(t *testing.T) {
	f := newFixture(t)
	rec := f.post("/ws/default/computes", "", url.Values{"csrf": {f.csrf}, "type": {"cluster"}, "name": {"cpu"},
		"vm_size": {"STANDARD_D2_V2"}, "min_nodes": {"3"}, "max_nodes": {"2"}})
	body := rec.Body.String()
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("min > max: %d", rec.Code)
	}
	for _, want := range []string{
		`<p class="error" id="e-min_nodes">min_nodes (3) must not be more than max_nodes (2)</p>`,
		`id="f-min_nodes" name="min_nodes" type="text" inputmode="numeric" value="3"`,
		`aria-invalid="true" aria-errormessage="e-min_nodes"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if _, err := f.st.GetCompute(f.ctx, "default", "cpu"); err == nil {
		t.Error("a refused form created the target")
	}
}

// Pages are server-rendered and whole without JavaScript: the compute
// list names every target, and every page is served with a policy that
// allows no inline script.
func TestPagesRender(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/ws/default/computes", "/ws/default/computes/local", "/ws/default/runs",
		"/ws/default/quotas", "/ws/default/users", "/ws/default/create/cluster", "/ws/default/create/slurm"} {
		rec := f.get(path)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d\n%s", path, rec.Code, rec.Body)
			continue
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Errorf("%s has an inline script", path)
		}
	}
	if rec := f.get("/ws/default/runs/nope"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "Not found") {
		t.Errorf("a run that is not there: %d", rec.Code)
	}
	if rec := f.get("/ws/default/runs?status=Bogus"); rec.Code != http.StatusBadRequest ||
		!strings.Contains(rec.Body.String(), "status must be one of the run statuses") {
		t.Errorf("a bad status filter: %d", rec.Code)
	}
}
