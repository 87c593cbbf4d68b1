package studio

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/token"
	"github.com/paddock-ml/paddock/internal/users"
)

// Cookies the studio sets.
const (
	// sessionCookie holds the studio session token (pds_…).
	sessionCookie = "paddock_session"
	// signinCookie holds the sign-in form's CSRF value, before there is a
	// session (double submit).
	signinCookie = "paddock_signin"
)

// session is the signed-in user of a request, from the session cookie.
func (s *Studio) session(r *http.Request) (*req, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || !strings.HasPrefix(c.Value, token.SessionPrefix) {
		return nil, api.Unauthenticated("sign in first")
	}
	id, err := s.Users.Authenticate(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(id.Token.Name, users.SessionTokenName) {
		return nil, api.Unauthenticated("sign in first")
	}
	return &req{ID: id, session: c.Value, CSRF: csrfToken(c.Value)}, nil
}

// csrfToken is the CSRF token of a session: a MAC of the session token,
// which only the server and the browser holding the (HttpOnly) cookie can
// know. It needs no state, so every server sharing the database accepts
// it.
func csrfToken(session string) string {
	key := sha256.Sum256([]byte(session))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("paddock studio csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses a form post that is not from the studio's own page:
// a cross-site Origin, or a missing or wrong CSRF token.
func (s *Studio) checkCSRF(r *http.Request, q *req) error {
	if err := sameOrigin(r); err != nil {
		return err
	}
	got := r.PostFormValue("csrf")
	if subtle.ConstantTimeCompare([]byte(got), []byte(q.CSRF)) != 1 {
		return api.Forbidden("this form is out of date or did not come from the studio (CSRF check); reload the page and try again")
	}
	return nil
}

// sameOrigin refuses a request whose Origin (browsers send it with every
// POST) is another site.
func sameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || !strings.EqualFold(u.Host, r.Host) {
		return api.Forbidden("a form of another site (%s) cannot post to the studio", o)
	}
	return nil
}

// signinData is the sign-in page.
type signinData struct {
	Code  string // a sign-in link's code, to confirm
	Next  string
	Form  string // the sign-in form's CSRF value
	Error string
}

// signinPage shows the sign-in form, or, for a sign-in link, a button that
// redeems it: a GET never uses the code up, so a link previewer cannot.
func (s *Studio) signinPage(w http.ResponseWriter, r *http.Request) {
	d := signinData{Code: r.URL.Query().Get("code"), Next: safeNext(r.URL.Query().Get("next"), r.URL.Query().Get("ws"))}
	d.Form = s.signinForm(w, r)
	s.render(w, r, http.StatusOK, "signin", nil, "Sign in", d)
}

// signinForm returns the sign-in form's CSRF value, setting its cookie if
// the browser has none.
func (s *Studio) signinForm(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(signinCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: v, Path: "/signin", HttpOnly: true, Secure: s.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return v
}

// signin redeems a sign-in link's code or checks a user token, and starts
// a session.
func (s *Studio) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	d := signinData{Code: r.PostFormValue("code"), Next: safeNext(r.PostFormValue("next"), "")}
	fail := func(status int, msg string, err error) {
		d.Error = msg
		d.Form = s.signinForm(w, r)
		s.render(w, r, status, "signin", nil, "Sign in", d)
		e := api.AsError(err)
		s.record(r, nil, "studio.signin", "studio", status, &api.Error{Code: api.CodeUnauthenticated, Message: e.Message})
	}
	c, err := r.Cookie(signinCookie)
	if err := sameOrigin(r); err != nil {
		fail(http.StatusForbidden, err.Error(), err)
		return
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("form"))) != 1 {
		err := api.Forbidden("the sign-in form is out of date (CSRF check); try again")
		fail(http.StatusForbidden, err.Message, err)
		return
	}
	var session string
	var id users.Identity
	switch tok := strings.TrimSpace(r.PostFormValue("token")); {
	case d.Code != "":
		session, id, err = s.Users.Redeem(r.Context(), d.Code)
	case strings.HasPrefix(tok, token.LinkPrefix):
		session, id, err = s.Users.Redeem(r.Context(), tok)
	case strings.HasPrefix(tok, token.UserPrefix):
		if id, err = s.Users.Authenticate(r.Context(), tok); err == nil {
			session, id, err = s.Users.StartSession(r.Context(), id)
		}
	case tok == "":
		err = api.Invalid("token", "paste a token (pdk_…), or run `paddock studio` for a sign-in link")
	default:
		err = api.Invalid("token", "that is not a user token: user tokens start with pdk_ (`paddock token create`)")
	}
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, api.ErrInvalid) {
			status = http.StatusBadRequest
		} else if !errors.Is(err, api.ErrUnauthenticated) {
			s.Log.Error("studio sign-in failed", "err", err)
			err = api.Unavailable("signing in failed on the server; try again")
			status = http.StatusServiceUnavailable
		}
		fail(status, api.AsError(err).Message, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session, Path: "/", HttpOnly: true, Secure: s.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(users.SessionLife.Seconds())})
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Path: "/signin", MaxAge: -1})
	s.record(r, &req{ID: id}, "studio.signin", "studio", http.StatusSeeOther, nil)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// signout ends the session.
func (s *Studio) signout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	q, err := s.session(r)
	if err == nil {
		err = s.checkCSRF(r, q)
	}
	if err == nil {
		err = s.Users.EndSession(r.Context(), q.ID)
		s.record(r, q, "studio.signout", "studio", http.StatusSeeOther, err)
	}
	if err != nil && !errors.Is(err, api.ErrUnauthenticated) {
		s.fail(w, r, q, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// safeNext is where to go after signing in: a path of this studio only
// (never another site), else the workspace's compute page.
func safeNext(next, ws string) string {
	if strings.HasPrefix(next, "/ws/") && !strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	if ws == "" || strings.ContainsAny(ws, "/?#\\") {
		ws = "default"
	}
	return "/ws/" + url.PathEscape(ws) + "/computes"
}

// remoteHost is the caller's address, for the audit log.
func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func urlEscape(s string) string { return url.QueryEscape(s) }
