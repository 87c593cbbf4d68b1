package studio

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/web"
)

// view is what every page's template gets: the layout's data and the
// page's own (Data).
type view struct {
	Title   string
	User    string
	Role    authz.Role
	WS      string
	CSRF    string
	Section string // the nav entry to mark
	// Live is the page's event stream, for the script to follow.
	Live    string
	Version string
	Now     time.Time
	Data    any
}

// Can reports whether the user's role allows an action at all (on some
// record): the page shows the controls for it. The server checks again,
// with ownership, when the control is used.
func (v view) Can(action string) bool {
	return v.Role != "" && authz.ScopeOf(v.Role, authz.Action(action)) != authz.None
}

// CanOn reports whether the user may do an action on a record owned by
// owners.
func (v view) CanOn(action string, owners ...string) bool {
	return authz.Principal{User: v.User, Role: v.Role}.Check(authz.Action(action), "", owners...) == nil
}

// funcs are the templates' helpers.
func (s *Studio) funcs() template.FuncMap {
	return template.FuncMap{
		"ago": func(t any) string {
			switch t := t.(type) {
			case time.Time:
				return ago(s.Clock.Now(), t)
			case *time.Time:
				if t != nil {
					return ago(s.Clock.Now(), *t)
				}
			}
			return "-"
		},
		"when": func(t any) string {
			switch t := t.(type) {
			case time.Time:
				if !t.IsZero() {
					return t.UTC().Format("2006-01-02 15:04:05Z")
				}
			case *time.Time:
				if t != nil {
					return t.UTC().Format("2006-01-02 15:04:05Z")
				}
			}
			return "-"
		},
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"bytes": humanBytes,
		"join":  strings.Join,
		"lower": strings.ToLower,
		"dur": func(a, b *time.Time) string {
			if a == nil {
				return "-"
			}
			end := s.Clock.Now()
			if b != nil {
				end = *b
			}
			return end.Sub(*a).Round(time.Second).String()
		},
		"deref": func(p *int) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		},
		"num": func(f float64) string { return trimFloat(f) },
	}
}

// parse reads every page template with the layout.
func (s *Studio) parse() error {
	s.pages = map[string]*template.Template{}
	names, err := fs.Glob(web.FS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(s.funcs()).ParseFS(web.FS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("studio template %s: %w", n, err)
		}
		s.pages[name] = t
	}
	return nil
}

// render writes a whole page: the layout around page's "content".
func (s *Studio) render(w http.ResponseWriter, r *http.Request, status int, page string, q *req, title string, data any) {
	s.renderView(w, status, page, s.view(q, title, data))
}

// renderView writes a page whose view is made.
func (s *Studio) renderView(w http.ResponseWriter, status int, page string, v view) {
	var b bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&b, "layout", v); err != nil {
		s.Log.Error("rendering a studio page", "page", page, "err", err)
		http.Error(w, "the page could not be rendered; the server's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// view is the layout's data for a page.
func (s *Studio) view(q *req, title string, data any) view {
	v := view{Title: title, Version: assetVersion, Now: s.Clock.Now(), Data: data}
	if q != nil {
		v.User, v.Role, v.WS, v.CSRF = q.ID.User.Name, q.P.Role, q.WS, q.CSRF
	}
	return v
}

// fragment renders one named template of a page (a part a live page
// replaces) with the page's view.
func (s *Studio) fragment(page, name string, v view) (string, error) {
	var b bytes.Buffer
	err := s.pages[page].ExecuteTemplate(&b, name, v)
	return b.String(), err
}

// humanBytes writes a size in the largest unit that keeps it ≥ 1.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// trimFloat writes f without trailing zeros.
func trimFloat(f float64) string {
	s := fmt.Sprintf("%.4g", f)
	return s
}
