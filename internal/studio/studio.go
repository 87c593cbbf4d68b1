// Package studio is Paddock's web UI: server-rendered pages (html/template
// over the embedded web/ files) for compute targets, runs, quotas and
// users, served by the same binary on the same port as the API. Every page
// reads without JavaScript; a small script makes the live parts live over
// Server-Sent Events fed by the server's own watch machinery (the
// dispatcher's run watches, the notifier's target topics).
//
// The studio calls the services the API handlers call (targets, runs,
// users) with the signed-in user's principal, after the same authorization
// check (internal/authz) a route of the API makes, and records what it
// changes in the audit log under the API's action names; so a user sees and
// does in the studio exactly what the API lets them.
//
// Sign-in: a user token typed into the sign-in form, or a one-time link
// from `paddock studio`, becomes a studio session (users.StartSession,
// users.Redeem) held in an HttpOnly, SameSite=Strict cookie (Secure over
// TLS). Every form carries a CSRF token derived from the session, and
// every page is served with a Content-Security-Policy without inline
// scripts or styles.
package studio

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/dispatch"
	"github.com/paddock-ml/paddock/internal/notify"
	"github.com/paddock-ml/paddock/internal/runs"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/users"
	"github.com/paddock-ml/paddock/internal/version"
	"github.com/paddock-ml/paddock/web"
)

// Preempter injects a preemption of a target's node (the node controller).
type Preempter interface {
	Preempt(ctx context.Context, ws, name, nodeID string) error
}

// Deps are the services the studio serves from: the ones the API uses.
type Deps struct {
	Targets   *targets.Service
	Runs      *runs.Service
	Users     *users.Service
	Store     store.Store
	Dispatch  *dispatch.Dispatcher
	Artifacts *artifact.Store
	Nodes     Preempter
	// Audit records what users change and what they were refused (nil:
	// nothing is recorded).
	Audit audit.Recorder
	// Notifier carries target changes (nodes, states) to live pages.
	Notifier *notify.Notifier
	Log      *slog.Logger
	Clock    clock.Clock
	// Secure marks the session cookie Secure: the server serves HTTPS.
	Secure bool
}

// Studio serves the web UI. Run must be running for live node counts.
type Studio struct {
	Deps
	mux   *http.ServeMux
	pages map[string]*template.Template
	hub   *hub
	// logTail is how many lines a run page shows at first, logPage how
	// many more each scroll up loads.
	logTail, logPage int
}

// New builds the studio and subscribes it to target changes.
func New(d Deps) (*Studio, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.Clock = clock.Or(d.Clock)
	s := &Studio{Deps: d, mux: http.NewServeMux(), logTail: 200, logPage: 500}
	if err := s.parse(); err != nil {
		return nil, err
	}
	s.hub = newHub(d.Dispatch, d.Clock)
	s.hub.watch(d.Notifier)
	s.routes()
	return s, nil
}

// Run samples targets' node counts for live pages and timelines until ctx
// ends.
func (s *Studio) Run(ctx context.Context) { s.hub.run(ctx) }

// routes registers every page. Each workspace page names the action it
// performs, as the API's routes do, and is refused before it runs unless
// the user's role allows it.
func (s *Studio) routes() {
	static, _ := fs.Sub(web.FS, "static")
	files := http.FileServerFS(static)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})))
	s.mux.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("GET /signin", s.signinPage)
	s.mux.HandleFunc("POST /signin", s.signin)
	s.mux.HandleFunc("POST /signout", s.signout)

	s.page("GET /ws/{ws}/{$}", authz.ReadCompute, "", func(w http.ResponseWriter, r *http.Request, q *req) error {
		http.Redirect(w, r, q.path("computes"), http.StatusSeeOther)
		return nil
	})
	s.page("GET /ws/{ws}/computes", authz.ReadCompute, "", s.computes)
	// Compute names are letters, digits and '-': what is not a name
	// lives beside computes/, never under it.
	s.page("GET /ws/{ws}/events/computes", authz.ReadCompute, "", s.computesEvents)
	s.page("GET /ws/{ws}/create/{type}", authz.WriteCompute, "", s.newCompute)
	s.page("POST /ws/{ws}/computes", authz.WriteCompute, "compute.create", s.createCompute)
	s.page("GET /ws/{ws}/computes/{name}", authz.ReadCompute, "", s.compute)
	s.page("GET /ws/{ws}/computes/{name}/events", authz.ReadCompute, "", s.computeEvents)
	s.page("POST /ws/{ws}/computes/{name}/update", authz.WriteCompute, "compute.update", s.updateCompute)
	s.page("POST /ws/{ws}/computes/{name}/start", authz.OperateCompute, "compute.start", s.operate("start"))
	s.page("POST /ws/{ws}/computes/{name}/stop", authz.OperateCompute, "compute.stop", s.operate("stop"))
	s.page("POST /ws/{ws}/computes/{name}/restart", authz.OperateCompute, "compute.restart", s.operate("restart"))
	s.page("GET /ws/{ws}/computes/{name}/delete", authz.DeleteCompute, "", s.confirmDelete)
	s.page("POST /ws/{ws}/computes/{name}/delete", authz.DeleteCompute, "compute.delete", s.deleteCompute)
	s.page("POST /ws/{ws}/computes/{name}/nodes/{node}/preempt", authz.PreemptNode, "node.preempt", s.preempt)
	s.page("GET /ws/{ws}/runs", authz.ReadRun, "", s.runsPage)
	s.page("GET /ws/{ws}/runs/{id}", authz.ReadRun, "", s.run)
	s.page("GET /ws/{ws}/runs/{id}/log", authz.ReadRun, "", s.runLog)
	s.page("GET /ws/{ws}/runs/{id}/events", authz.ReadRun, "", s.runEvents)
	s.page("GET /ws/{ws}/runs/{id}/outputs/{path...}", authz.ReadRun, "", s.output)
	s.page("GET /ws/{ws}/runs/{id}/outputs.tar.gz", authz.ReadRun, "", s.outputs)
	s.page("POST /ws/{ws}/runs/{id}/cancel", authz.CancelRun, "run.cancel", s.cancelRun)
	s.page("GET /ws/{ws}/quotas", authz.ReadCompute, "", s.quotas)
	s.page("GET /ws/{ws}/users", authz.ReadUsers, "", s.usersPage)
	s.page("POST /ws/{ws}/users", authz.WriteUsers, "user.add", s.addUser)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, api.NotFound("there is no page at %s", r.URL.Path))
	})
}

// ServeHTTP serves a studio page with the headers every page has.
func (s *Studio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// A sign-in link carries its code in the query: never pass it to
	// another site. (Not no-referrer: with it, browsers send "Origin: null"
	// on form posts, which the CSRF check cannot tell from a foreign site.)
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if r.ContentLength != 0 {
		// A form is small: it has formBodyTimeout to arrive, as the
		// API's JSON bodies have.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(formBodyTimeout))
	}
	s.mux.ServeHTTP(w, r)
}

// formBodyTimeout is how long a form post may take to send its body once
// its headers are in.
const formBodyTimeout = 30 * time.Second

// req is one request of a signed-in user in a workspace.
type req struct {
	ID   users.Identity
	P    authz.Principal
	WS   string
	CSRF string
	// session is the studio session token (for CSRF).
	session string
	// target names what a page made, for its audit entry (the path
	// names the rest).
	target string
}

// path is a path under the workspace's pages.
func (q *req) path(parts ...string) string {
	return "/ws/" + q.WS + "/" + strings.Join(parts, "/")
}

// handler is a studio page: it writes the page, or returns an error that
// fail shows (a form's field errors are rendered by the page itself).
type handler func(w http.ResponseWriter, r *http.Request, q *req) error

// page registers a workspace page that performs action; a POST also
// needs a valid CSRF token and is recorded in the audit log as audited
// (the API's name for what it does).
func (s *Studio) page(pattern string, action authz.Action, audited string, h handler) {
	post := strings.HasPrefix(pattern, "POST ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		q, err := s.session(r)
		if err != nil {
			if !post && r.Header.Get("Accept") != "text/event-stream" && errors.Is(err, api.ErrUnauthenticated) {
				http.Redirect(w, r, "/signin?next="+urlEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, nil, err)
			return
		}
		q.WS = r.PathValue("ws")
		if q.P, err = s.Users.Principal(r.Context(), q.ID, q.WS); err == nil {
			err = q.P.Allow(action)
		}
		if err == nil && post {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			err = s.checkCSRF(r, q)
		}
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		if err == nil {
			err = h(rec, r, q)
		}
		if err != nil && !rec.wrote {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return
			}
			s.fail(rec, r, q, err)
		}
		denied := errors.Is(err, api.ErrForbidden)
		switch {
		case post:
			name := audited
			if name == "" {
				name = string(action)
			}
			s.record(r, q, name, q.targetOf(r), rec.code, err)
		case denied:
			s.record(r, q, string(action), q.targetOf(r), rec.code, err)
		}
	})
}

// statusWriter remembers the status a page answered.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	s.code, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush lets live pages stream.
func (s *statusWriter) Flush() {
	s.wrote = true
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// home sends a signed-in user to the default workspace's compute page.
func (s *Studio) home(w http.ResponseWriter, r *http.Request) {
	if _, err := s.session(r); err != nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ws/"+targets.DefaultName+"/computes", http.StatusSeeOther)
}

// errorPage is what fail shows.
type errorPage struct {
	Status  int
	Title   string
	Message string
}

// fail shows an error as a page with its HTTP status: the message is the
// one the API would answer, written for the user. Internal errors are
// logged and shown without their cause.
func (s *Studio) fail(w http.ResponseWriter, r *http.Request, q *req, err error) {
	e := api.AsError(err)
	status := e.Code.HTTPStatus()
	if e.Code == api.CodeInternal {
		s.Log.Error("studio request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &api.Error{Code: api.CodeInternal, Message: "something went wrong on the server; its log says what"}
	}
	if q == nil && e.Code == api.CodeUnauthenticated && r.Method == http.MethodGet {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	title := map[api.Code]string{api.CodeNotFound: "Not found", api.CodeForbidden: "Not allowed",
		api.CodeUnauthenticated: "Not signed in", api.CodeConflict: "Not now", api.CodeInvalid: "Not valid"}[e.Code]
	if title == "" {
		title = "Something went wrong"
	}
	s.render(w, r, status, "error", q, title, errorPage{Status: status, Title: title, Message: e.Message})
}

// record appends a studio call to the audit log as the API would record
// the same call: who, what, to what, from where, and how it ended.
func (s *Studio) record(r *http.Request, q *req, action, target string, status int, err error) {
	if s.Audit == nil {
		return
	}
	e := store.AuditEntry{Action: action, Target: target, Status: status, Workspace: r.PathValue("ws"), Source: remoteHost(r)}
	if q != nil {
		e.User, e.TokenID = q.ID.User.Name, q.ID.Token.ID
	}
	switch {
	case err == nil && status < 400:
		e.Outcome = audit.OK
	case errors.Is(err, api.ErrForbidden) || errors.Is(err, api.ErrUnauthenticated):
		e.Outcome = audit.Denied
	default:
		e.Outcome = audit.Failed
	}
	if err != nil {
		e.Message = api.AsError(err).Message
	}
	if err := s.Audit.Record(context.WithoutCancel(r.Context()), e); err != nil {
		s.Log.Error("writing the audit log", "action", e.Action, "user", e.User, "err", err)
	}
}

// targetOf names what a page acted on, as the API's audit entries do.
func (q *req) targetOf(r *http.Request) string {
	switch {
	case q.target != "":
		return q.target
	case r.PathValue("node") != "":
		return "computes/" + r.PathValue("name") + "/nodes/" + r.PathValue("node")
	case r.PathValue("name") != "":
		return "computes/" + r.PathValue("name")
	case r.PathValue("id") != "":
		return "runs/" + r.PathValue("id")
	}
	_, p, _ := strings.Cut(r.URL.Path, "/ws/"+r.PathValue("ws")+"/")
	return p
}

// version is the binary's version, for static file URLs (a new binary,
// new files).
var assetVersion = strings.NewReplacer(" ", "-", "+", "-").Replace(version.Version)

// ago writes how long ago t was, briefly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
