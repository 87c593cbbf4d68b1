package studio

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
	"github.com/paddock-ml/paddock/internal/token"
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
	disp    *dispatch.Dispatcher
	nodes   *fakePreempter
	admin   string // the admin's user token
	cookie  *http.Cookie
	csrf    string
}

// fakePreempter stands in for the node controller, which preempts a
// node through its provider: it records what it was asked.
type fakePreempter struct{ got []string }

func (f *fakePreempter) Preempt(_ context.Context, ws, name, node string) error {
	f.got = append(f.got, ws+"/"+name+"/"+node)
	return nil
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
	nodes := &fakePreempter{}
	s, err := New(Deps{Targets: ts, Runs: rs, Users: us, Store: st, Dispatch: disp, Artifacts: art, Log: log, Nodes: nodes})
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
	return &fixture{t: t, ctx: ctx, studio: s, st: st, targets: ts, disp: disp, nodes: nodes, admin: admin,
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

// A target's update form changes what it names and answers a refused
// value beside its field; delete asks for the name first.
func TestUpdateAndDelete(t *testing.T) {
	f := newFixture(t)
	if rec := f.post("/ws/default/computes", "", url.Values{"csrf": {f.csrf}, "type": {"cluster"}, "name": {"cpu"},
		"vm_size": {"STANDARD_D2_V2"}, "max_nodes": {"2"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", rec.Code, rec.Body)
	}
	testenv.Provisioned(t, f.st, "default", "cpu") // no provisioning loop here
	rec := f.post("/ws/default/computes/cpu/update", "", url.Values{"csrf": {f.csrf}, "min_nodes": {"3"}, "max_nodes": {"2"}})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `<p class="error" id="e-min_nodes">min_nodes (3) must not be more than max_nodes (2)</p>`) {
		t.Errorf("a refused update: %d\n%s", rec.Code, rec.Body)
	}
	rec = f.post("/ws/default/computes/cpu/update", "", url.Values{"csrf": {f.csrf}, "max_nodes": {"5"}, "description": {"team cpu"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("an update: %d\n%s", rec.Code, rec.Body)
	}
	c, err := f.st.GetCompute(f.ctx, "default", "cpu")
	if err != nil || !strings.Contains(string(c.Properties), `"max_nodes":5`) || !strings.Contains(string(c.Properties), `"description":"team cpu"`) {
		t.Errorf("after the update: %s, %v", c.Properties, err)
	}

	if rec := f.get("/ws/default/computes/cpu/delete"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Type <b>cpu</b> to confirm") {
		t.Errorf("the delete page: %d", rec.Code)
	}
	rec = f.post("/ws/default/computes/cpu/delete", "", url.Values{"csrf": {f.csrf}, "confirm": {"gpu"}})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "type the target&#39;s name, cpu, to delete it") {
		t.Errorf("delete with the wrong name: %d\n%s", rec.Code, rec.Body)
	}
	if _, err := f.st.GetCompute(f.ctx, "default", "cpu"); err != nil {
		t.Fatalf("deleted without its name: %v", err)
	}
	if rec := f.post("/ws/default/computes/cpu/delete", "", url.Values{"csrf": {f.csrf}, "confirm": {"cpu"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", rec.Code, rec.Body)
	}
	// The provisioning loop (not running here) removes it once Deleting.
	if c, err := f.st.GetCompute(f.ctx, "default", "cpu"); err != nil || c.State != api.StateDeleting {
		t.Errorf("after delete: %s, %v", c.State, err)
	}
}

// The runs list pages by keyset: 50 a page, older and newer links that
// keep the filters, every run on exactly one page.
func TestRunsPaging(t *testing.T) {
	f := runsFixture(t, 230)
	older := regexp.MustCompile(`href="(/ws/default/runs\?[^"]*before=\d+[^"]*)" rel="next"`)
	newer := regexp.MustCompile(`href="(/ws/default/runs\?[^"]*after=\d+[^"]*)" rel="prev"`)
	row := regexp.MustCompile(`<a href="/ws/default/runs/(run-\d+)">`)
	seen := map[string]bool{}
	path, pages := "/ws/default/runs?compute=local", 0
	var last string
	for path != "" {
		rec := f.get(strings.ReplaceAll(path, "&amp;", "&"))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		body := rec.Body.String()
		pages++
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Errorf("%s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		if pages > 1 && !newer.MatchString(body) {
			t.Errorf("page %d has no link to newer runs", pages)
		}
		last, path = path, ""
		if m := older.FindStringSubmatch(body); m != nil {
			path = m[1]
			if !strings.Contains(path, "compute=local") {
				t.Errorf("the older link drops the filter: %s", path)
			}
		}
	}
	// 115 of the 230 runs are on local (every other one).
	if pages != 3 || len(seen) != 115 {
		t.Errorf("%d pages, %d runs, want 3 pages of the 115 on local", pages, len(seen))
	}
	// Back from the last page: the page before it again.
	body := f.get(strings.ReplaceAll(last, "&amp;", "&")).Body.String()
	m := newer.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the last page has no newer link")
	}
	if got := len(row.FindAllString(f.get(strings.ReplaceAll(m[1], "&amp;", "&")).Body.String(), -1)); got != 50 {
		t.Errorf("the page before the last has %d runs, want 50", got)
	}
}

// A target's node-count timeline starts when its page is first opened:
// the hub reads no counts for targets nobody follows (the read goes
// through the dispatcher's loop), then records each change.
func TestTimelineFollowsOpenedTargets(t *testing.T) {
	f := newFixture(t)
	if rec := f.post("/ws/default/computes", "", url.Values{"csrf": {f.csrf}, "type": {"cluster"}, "name": {"cpu"},
		"vm_size": {"STANDARD_D2_V2"}, "max_nodes": {"4"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", rec.Code, rec.Body)
	}
	testenv.Provisioned(t, f.st, "default", "cpu")
	key := store.Key("default", "cpu")
	h := f.studio.hub
	addNode := func(id string) {
		t.Helper()
		if err := f.disp.AddNode(f.ctx, store.Node{ID: id, Workspace: "default", Compute: "cpu", TokenHash: token.Hash(token.NewNode()),
			CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		woken := h.wait(key)
		h.changed(key) // as the dispatcher's Demand notice does
		select {
		case <-woken:
		case <-time.After(10 * time.Second):
			t.Fatal("the hub did not wake the target's watchers")
		}
	}
	addNode("cpu-1")
	if hs := h.history(key); len(hs) != 0 {
		t.Fatalf("a target nobody opened has a timeline: %+v", hs)
	}
	if rec := f.get("/ws/default/computes/cpu"); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="node-total">1 node<`) {
		t.Fatalf("the target's page: %d", rec.Code)
	}
	if hs := h.history(key); len(hs) != 1 || hs[0].Total() != 1 {
		t.Fatalf("opening the page took no first sample: %+v", hs)
	}
	addNode("cpu-2")
	hs := h.history(key)
	if len(hs) != 2 || hs[0].Total() != 1 || hs[1].Total() != 2 {
		t.Fatalf("the timeline after a page view and a node: %+v", hs)
	}
	if body := f.get("/ws/default/computes/cpu").Body.String(); !strings.Contains(body, "1 → 2 nodes") || strings.Contains(body, "0 → 1 nodes") {
		t.Errorf("scale events: %s", body[strings.Index(body, `<section id="timeline"`):])
	}
}

// An instance's page stops and starts it; a low-priority cluster's node
// table preempts a node (as `paddock compute preempt` does).
func TestOperateAndPreempt(t *testing.T) {
	f := newFixture(t)
	for _, form := range []url.Values{
		{"type": {"instance"}, "name": {"box"}, "vm_size": {"STANDARD_D2_V2"}},
		{"type": {"cluster"}, "name": {"spot"}, "vm_size": {"STANDARD_D2_V2"}, "max_nodes": {"2"}, "vm_priority": {"lowpriority"}},
	} {
		form.Set("csrf", f.csrf)
		if rec := f.post("/ws/default/computes", "", form); rec.Code != http.StatusSeeOther {
			t.Fatalf("create %s: %d\n%s", form.Get("name"), rec.Code, rec.Body)
		}
		testenv.Provisioned(t, f.st, "default", form.Get("name"))
	}
	body := f.get("/ws/default/computes/box").Body.String()
	for _, op := range []string{"start", "stop", "restart"} {
		if !strings.Contains(body, `action="/ws/default/computes/box/`+op+`"`) {
			t.Errorf("the instance's page has no %s button", op)
		}
	}
	rec := f.post("/ws/default/computes/box/stop", "", url.Values{"csrf": {f.csrf}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ws/default/computes/box?done=stop" {
		t.Fatalf("stop: %d %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	if c, _ := f.st.GetCompute(f.ctx, "default", "box"); !strings.Contains(string(c.Status), `"state":"Stopping"`) {
		t.Errorf("after stop on its page the instance's status is %s", c.Status)
	}
	if strings.Contains(f.get("/ws/default/computes/spot").Body.String(), "/start\"") {
		t.Error("a cluster's page offers start")
	}

	if err := f.disp.AddNode(f.ctx, store.Node{ID: "spot-1", Workspace: "default", Compute: "spot", TokenHash: token.Hash(token.NewNode()),
		CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if body := f.get("/ws/default/computes/spot").Body.String(); !strings.Contains(body, `action="/ws/default/computes/spot/nodes/spot-1/preempt"`) {
		t.Fatal("the low-priority cluster's node has no preempt button")
	}
	rec = f.post("/ws/default/computes/spot/nodes/spot-1/preempt", "", url.Values{"csrf": {f.csrf}})
	if rec.Code != http.StatusSeeOther || len(f.nodes.got) != 1 || f.nodes.got[0] != "default/spot/spot-1" {
		t.Errorf("preempt: %d, the node controller was asked %v", rec.Code, f.nodes.got)
	}
}

// A run's page charts its number metrics and lists the last value of the
// others.
func TestRunPageMetrics(t *testing.T) {
	f := runsFixture(t, 1)
	if err := f.st.AddMetrics(f.ctx, "run-000001", []api.Metric{
		{Name: "loss", Value: 1, Step: 1, Time: time.Now()}, {Name: "loss", Value: 0.5, Step: 2, Time: time.Now()},
		{Name: "phase", Kind: api.MetricString, Text: "<eval>", Step: 2, Time: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	rec := f.get("/ws/default/runs/run-000001")
	body := rec.Body.String()
	for _, want := range []string{`<figcaption><b>loss</b></figcaption><svg class="chart"`, `<th scope="row">phase</th><td>string</td><td class="value">&lt;eval&gt;</td>`} {
		if rec.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("the run's page (%d) lacks %s", rec.Code, want)
		}
	}
}

// Signing in with a token: the form's CSRF cookie must come back with it;
// a wrong token is refused in one sentence; a right one gives an HttpOnly,
// SameSite=Strict session cookie and sends the browser where it was going.
func TestSignInWithToken(t *testing.T) {
	f := newFixture(t)
	rec := httptest.NewRecorder()
	f.studio.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signin?next=/ws/default/runs", nil))
	form := cookieOf(rec, signinCookie)
	if rec.Code != http.StatusOK || form == nil || !form.HttpOnly || form.SameSite != http.SameSiteStrictMode {
		t.Fatalf("the sign-in page: %d, form cookie %+v", rec.Code, form)
	}
	signin := func(tok, formValue string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader(url.Values{"token": {tok}, "form": {formValue}, "next": {"/ws/default/runs"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(form)
		rec := httptest.NewRecorder()
		f.studio.ServeHTTP(rec, req)
		return rec
	}
	if rec := signin(f.admin, "forged"); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "CSRF check") {
		t.Errorf("a sign-in without the form's value: %d", rec.Code)
	}
	if rec := signin("pdk_wrong", form.Value); rec.Code != http.StatusUnauthorized || cookieOf(rec, sessionCookie) != nil {
		t.Errorf("a wrong token: %d %+v", rec.Code, cookieOf(rec, sessionCookie))
	}
	if rec := signin("hello", form.Value); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "user tokens start with pdk_") {
		t.Errorf("not a token: %d", rec.Code)
	}
	rec = signin(f.admin, form.Value)
	session := cookieOf(rec, sessionCookie)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ws/default/runs" || session == nil ||
		!session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Value == f.admin || !strings.HasPrefix(session.Value, "pds_") {
		t.Fatalf("signing in: %d to %q, session cookie %+v", rec.Code, rec.Header().Get("Location"), session)
	}
	// The session is what the studio takes from now on.
	req := httptest.NewRequest(http.MethodGet, "/ws/default/runs", nil)
	req.AddCookie(session)
	rec = httptest.NewRecorder()
	f.studio.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("the new session: %d", rec.Code)
	}
}

// cookieOf is the cookie an answer sets, or nil.
func cookieOf(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// A live page's stream outlasts the server's read timeout (a page stays
// open for hours; the server's is an hour) and sends what changed: here
// a target added after it began.
func TestStreamOutlastsReadTimeout(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewUnstartedServer(f.studio)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequestWithContext(f.ctx, http.MethodGet, srv.URL+"/ws/default/events/computes", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.AddCookie(f.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 10)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			if sc.Text() == "" && ev.Len() > 0 {
				events <- ev.String()
				ev.Reset()
			} else if strings.HasPrefix(sc.Text(), "data: ") || strings.HasPrefix(sc.Text(), "event: ") {
				ev.WriteString(sc.Text() + "\n")
			}
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before %s", what)
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatalf("no event: %s", what)
		}
		return ""
	}
	if ev := next("the first table"); !strings.Contains(ev, `id="c-local"`) {
		t.Fatalf("first event: %s", ev)
	}
	time.Sleep(time.Second) // past the read timeout
	if rec := f.post("/ws/default/computes", "", url.Values{"csrf": {f.csrf}, "type": {"cluster"}, "name": {"late"},
		"vm_size": {"STANDARD_D2_V2"}, "max_nodes": {"2"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("create: %d", rec.Code)
	}
	f.studio.hub.changed(store.Key("default", "late")) // as the notifier's Targets topic does
	if ev := next("the new target"); !strings.Contains(ev, `id="c-late"`) {
		t.Errorf("after a target was added: %s", ev)
	}
}
