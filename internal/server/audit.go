package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/store"
)

// auditNames name the mutating routes' actions in the audit log; a route
// that changes something and is missing here fails TestEveryMutationIsAudited.
var auditNames = map[string]string{
	"POST /api/v1/workspaces/{ws}/computes":                     "compute.create",
	"PATCH /api/v1/workspaces/{ws}/computes/{name}":             "compute.update",
	"DELETE /api/v1/workspaces/{ws}/computes/{name}":            "compute.delete",
	"POST /api/v1/workspaces/{ws}/computes/{name}":              "compute.", // + start, stop, restart
	"POST /api/v1/workspaces/{ws}/computes/{name}/nodes/{node}": "node.preempt",
	"PUT /api/v1/workspaces/{ws}/quotas":                        "quota.set",
	"PUT /api/v1/workspaces/{ws}/snapshots":                     "snapshot.upload",
	"POST /api/v1/workspaces/{ws}/runs":                         "run.submit",
	"POST /api/v1/workspaces/{ws}/runs/{id}":                    "run.", // + cancel, complete, fail
	"PATCH /api/v1/workspaces/{ws}/runs/{id}":                   "run.tag",
	"POST /api/v1/workspaces/{ws}/environments":                 "environment.register",
	"POST /api/v1/workspaces/{ws}/users":                        "user.add",
	"PATCH /api/v1/workspaces/{ws}/users/{name}":                "user.set-role",
	"DELETE /api/v1/workspaces/{ws}/users/{name}":               "user.remove",
	"POST /api/v1/tokens":                                       "token.create",
	"DELETE /api/v1/tokens/{id}":                                "token.revoke",
	"PATCH /api/v1/workspaces/{ws}":                             "workspace.set-policy",
	"POST /api/v1/workspaces/{ws}/identities":                   "identity.create",
	"PATCH /api/v1/workspaces/{ws}/identities/{name}":           "identity.update",
	"DELETE /api/v1/workspaces/{ws}/identities/{name}":          "identity.delete",
	"POST /api/v1/tokens/{id}":                                  "token.rotate",
	"POST /api/v1/studio/links":                                 "studio.link",
}

// notAudited are mutating routes left out of the audit log, and why.
var notAudited = map[string]string{
	"POST /api/v1/workspaces/{ws}/runs/{id}/metrics":        "data, not control: a training loop posts metrics many times a second",
	"PUT /api/v1/workspaces/{ws}/runs/{id}/files/{path...}": "data, not control: a training loop uploads images and files as it goes",
}

// signinEvery is how often a token's successful use is recorded as a
// sign-in: its first use after the server starts, then hourly.
const signinEvery = time.Hour

// auditState is the API's audit bookkeeping.
type auditState struct {
	mu      sync.Mutex
	signins map[string]time.Time // token id → last sign-in recorded
}

// auditNote carries what a handler knows about the record it acted on
// (a created target's name, a new run's id) to the audit entry.
type auditNote struct{ target string }

type auditNoteKey struct{}

// noteTarget tells the audit entry of r what it was done to.
func noteTarget(r *http.Request, target string) {
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		n.target = target
	}
}

// withNote gives r a note for its handler to fill.
func withNote(r *http.Request) (*http.Request, *auditNote) {
	n := &auditNote{}
	return r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, n)), n
}

// audited records a call in the audit log when it should be: every
// mutating user call, every refused call, and sign-ins.
func (a *API) audited(r *http.Request, rt route, who caller, note *auditNote, status int, err error) {
	if a.audit == nil {
		return
	}
	mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
	denied := status == http.StatusUnauthorized || status == http.StatusForbidden
	name, named := auditNames[rt.pattern]
	switch {
	case denied:
	case !rt.acc.users || who.User == nil || !mutating:
		if who.User != nil && a.signin(who.User.Token.ID) {
			a.record(r, store.AuditEntry{Action: "auth.signin", Outcome: audit.OK, Status: status}, who)
		}
		return
	case !named:
		return // notAudited
	}
	if !named {
		name = string(rt.action)
		if status == http.StatusUnauthorized || name == "" {
			name = "auth.signin"
		}
	}
	if strings.HasSuffix(name, ".") { // compute.start, run.cancel, …
		_, act, _ := strings.Cut(r.PathValue("name")+r.PathValue("id"), ":")
		name += act
	}
	e := store.AuditEntry{Action: name, Status: status, Target: targetOf(r, note)}
	switch {
	case err == nil:
		e.Outcome = audit.OK
	case denied:
		e.Outcome = audit.Denied
	default:
		e.Outcome = audit.Failed
	}
	if err != nil {
		e.Message = api.AsError(err).Message
	}
	a.record(r, e, who)
}

// record fills in who and where, and appends e.
func (a *API) record(r *http.Request, e store.AuditEntry, who caller) {
	e.Workspace = r.PathValue("ws")
	e.Source, _, _ = net.SplitHostPort(r.RemoteAddr)
	if e.Source == "" {
		e.Source = r.RemoteAddr
	}
	switch {
	case who.User != nil:
		e.User, e.TokenID = who.User.User.Name, who.User.Token.ID
	case who.Node != nil:
		e.User = "node:" + who.Node.ID
	case who.RunID != "":
		e.User = "run:" + who.RunID
	}
	if err := a.audit.Record(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("writing the audit log", "action", e.Action, "user", e.User, "err", err)
	}
}

// signin reports whether a token's use should be recorded as a sign-in now.
func (a *API) signin(tokenID string) bool {
	now := a.clock.Now()
	a.auditState.mu.Lock()
	defer a.auditState.mu.Unlock()
	if last, ok := a.auditState.signins[tokenID]; ok && now.Sub(last) < signinEvery {
		return false
	}
	if a.auditState.signins == nil {
		a.auditState.signins = map[string]time.Time{}
	}
	a.auditState.signins[tokenID] = now
	return true
}

// targetOf names what a call acted on, from its path (and the handler's
// note for what it made).
func targetOf(r *http.Request, note *auditNote) string {
	if note != nil && note.target != "" {
		return note.target
	}
	strip := func(v string) string { s, _, _ := strings.Cut(v, ":"); return s }
	path := r.Pattern
	switch {
	case r.PathValue("node") != "":
		return "computes/" + r.PathValue("name") + "/nodes/" + strip(r.PathValue("node"))
	case strings.Contains(path, "/computes/"):
		return "computes/" + strip(r.PathValue("name"))
	case strings.Contains(path, "/runs/"):
		return "runs/" + strip(r.PathValue("id"))
	case strings.Contains(path, "/users/"):
		return "users/" + r.PathValue("name")
	case strings.Contains(path, "/identities/"):
		return "identities/" + r.PathValue("name")
	case strings.HasSuffix(path, "/workspaces/{ws}"):
		return "policy"
	case strings.Contains(path, "/tokens/"):
		return "tokens/" + r.PathValue("id")
	}
	if _, p, ok := strings.Cut(path, "{ws}/"); ok {
		return p
	}
	return strings.TrimPrefix(path[strings.Index(path, " ")+1:], "/api/v1/")
}

// listAudit serves GET .../audit: entries of the workspace (and those of
// none, e.g. tokens), oldest first, filtered by since, user, action.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := r.URL.Query()
	f := store.AuditFilter{Workspace: r.PathValue("ws"), User: q.Get("user"), Action: q.Get("action"), Limit: 1000}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return api.Invalid("since", "since must be an RFC 3339 time, e.g. 2026-11-30T08:00:00Z, not %q", s)
		}
		f.Since = t
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return api.Invalid("after", "after must be an entry number, not %q", s)
		}
		f.AfterSeq = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return api.Invalid("limit", "limit must be 1 to 10000, not %q", s)
		}
		f.Limit = n
	}
	es, err := a.store.AuditEntries(r.Context(), f)
	if err != nil {
		return err
	}
	out := api.AuditList{Items: make([]api.AuditEntry, len(es))}
	for i, e := range es {
		out.Items[i] = api.AuditEntry{Seq: e.Seq, At: e.At, Workspace: e.Workspace, User: e.User, TokenID: e.TokenID,
			Action: e.Action, Target: e.Target, Source: e.Source, Outcome: e.Outcome, Status: e.Status, Message: e.Message, Hash: e.Hash}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// verifyAudit serves GET .../audit/verify: the whole chain checked.
func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, _ caller) error {
	res, err := audit.Verify(r.Context(), a.store)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
