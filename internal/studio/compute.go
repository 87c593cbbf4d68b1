package studio

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/store"
)

// row is one target as the compute list shows it.
type row struct {
	Name, Type, CreatedBy string
	State                 api.ProvisioningState
	// Run is a started-and-stopped target's own state (an instance's
	// Running, Stopped); Size its vm_size; Range a cluster's
	// min_nodes–max_nodes.
	Run, Size, Range string
	Nodes            counts
	HasNodes         bool
	Errors           int
}

// summary is what pages need of a target's status.
type summary struct {
	State  string `json:"state"`
	Errors []any  `json:"errors"`
	Error  string `json:"error"`
}

func rowOf(c api.Compute, cs map[string]counts) row {
	// Only what the row shows (errors counted, not read): decoding is
	// most of a long list's time.
	var p struct {
		VMSize   string `json:"vm_size"`
		MinNodes *int   `json:"min_nodes"`
		MaxNodes *int   `json:"max_nodes"`
	}
	var st struct {
		State  string     `json:"state"`
		Errors []struct{} `json:"errors"`
		Error  string     `json:"error"`
	}
	json.Unmarshal(c.Properties, &p)
	json.Unmarshal(c.Status, &st)
	r := row{Name: c.Name, Type: c.Type, CreatedBy: c.CreatedBy, State: c.ProvisioningState, Run: st.State, Size: p.VMSize,
		Errors: len(c.ProvisioningErrors) + len(st.Errors)}
	if st.Error != "" {
		r.Errors++
	}
	if p.MaxNodes != nil {
		r.Range = fmt.Sprintf("%d–%d", deref(p.MinNodes), *p.MaxNodes)
	}
	r.Nodes, r.HasNodes = cs[strings.ToLower(c.Name)], compute.HasNodes(c.Type)
	return r
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// computesData is the compute list.
type computesData struct {
	// Body is the table's rows (rowsHTML).
	Body template.HTML
	// Kinds are the kinds of target a user may create or attach, for
	// the page's buttons.
	Created, Attached []string
}

// rows reads the compute list: every target the user may see, with its
// live node counts.
func (s *Studio) rows(ctx context.Context, q *req) ([]row, error) {
	items, err := s.Targets.ListBrief(ctx, q.WS, q.P)
	if err != nil {
		return nil, err
	}
	cs, err := s.hub.countsByTarget(ctx, q.WS)
	if err != nil {
		return nil, err
	}
	rows := make([]row, len(items))
	for i, c := range items {
		rows[i] = rowOf(c, cs)
	}
	return rows, nil
}

// computes serves the compute list.
func (s *Studio) computes(w http.ResponseWriter, r *http.Request, q *req) error {
	rows, err := s.rows(r.Context(), q)
	if err != nil {
		return err
	}
	d := computesData{Body: rowsHTML(rows, q.WS), Created: formKinds(compute.Created), Attached: formKinds(compute.Attached)}
	v := s.view(q, "Compute", d)
	v.Section, v.Live = "computes", q.path("events", "computes")
	s.renderView(w, http.StatusOK, "computes", v)
	return nil
}

// rowsHTML writes the compute list's rows. They are written here, not by
// the page's template: a thousand rows through html/template took 30 ms,
// more than half of the page's time (BENCHMARKS.md).
func rowsHTML(rows []row, ws string) template.HTML {
	var b strings.Builder
	for _, r := range rows {
		r.write(&b, ws)
	}
	return template.HTML(b.String())
}

// write writes the row's <tr>, its text escaped.
func (r row) write(b *strings.Builder, ws string) {
	e := template.HTMLEscapeString
	name := e(r.Name)
	fmt.Fprintf(b, `<tr id="c-%s"><th scope="row"><a href="/ws/%s/computes/%s">%s</a></th><td>%s</td><td>`,
		name, e(url.PathEscape(ws)), e(url.PathEscape(r.Name)), name, e(r.Type))
	badge := func(s string) { fmt.Fprintf(b, `<span class="badge s-%s">%s</span>`, e(s), e(s)) }
	badge(string(r.State))
	if r.Run != "" {
		b.WriteString(" ")
		badge(r.Run)
	}
	if r.Errors > 0 {
		fmt.Fprintf(b, ` <span class="warn" title="see the target's page">%s</span>`, plural(r.Errors, "problem"))
	}
	fmt.Fprintf(b, `</td><td>%s</td>`, e(cmp.Or(r.Size, "-")))
	if r.HasNodes {
		fmt.Fprintf(b, `<td class="num" data-k="total">%d`, r.Nodes.Total())
		if r.Range != "" {
			fmt.Fprintf(b, ` <span class="dim">of %s</span>`, e(r.Range))
		}
		fmt.Fprintf(b, `</td><td class="num">%d</td><td class="num">%d</td><td class="num">%d</td><td class="num">%d</td>`,
			r.Nodes.Idle, r.Nodes.Running, r.Nodes.Preparing, r.Nodes.Leaving)
	} else {
		b.WriteString(strings.Repeat(`<td class="num dim">-</td>`, 5))
	}
	fmt.Fprintf(b, "<td>%s</td></tr>\n", e(r.CreatedBy))
}

// html is the row alone, for a live page to replace.
func (r row) html(ws string) string {
	var b strings.Builder
	r.write(&b, ws)
	return b.String()
}

// nodeRow is one node on a target's page.
type nodeRow struct {
	store.Node
	Shown string // the state as the list counts it
}

// computeData is a target's page.
type computeData struct {
	C      api.Compute
	Props  []kv
	Status []kv
	// Problems are provisioning errors and the status' errors, in words.
	Problems []string
	Nodes    []nodeRow
	Counts   counts
	HasNodes bool
	Chart    chart
	Events   []event
	// Waiting says why queued runs wait, when some do.
	Waiting string
	Queued  int
	// What the user may do to it (the server checks again).
	MayOperate, MayDelete, MayUpdate, MayPreempt bool
	Operations                                   []opt
	// RunState is a started-and-stopped target's own state.
	RunState      string
	Update        []field
	UpdateError   string
	Notice        string
	Owners        []string
	Created, Kind string
}

// kv is a property or status field as text.
type kv struct{ Key, Value string }

// event is a change of a target's node count, for its timeline.
type event struct {
	At       string
	From, To int
	What     string
}

// computeView reads what a target's page shows.
func (s *Studio) computeView(r *http.Request, q *req, name string) (computeData, error) {
	c, err := s.Targets.GetCompute(r.Context(), q.WS, q.P, name)
	if err != nil {
		return computeData{}, err
	}
	rec := store.Compute{Workspace: q.WS, Name: c.Name, Type: c.Type, Properties: c.Properties, CreatedBy: c.CreatedBy}
	owners := ownersOf(rec)
	d := computeData{C: c, Props: kvs(c.Properties), Status: kvs(c.Status), HasNodes: compute.HasNodes(c.Type), Owners: owners,
		MayOperate: compute.CanStartStop(rec) && q.P.Check(authz.OperateCompute, "", owners...) == nil,
		MayDelete:  q.P.Check(authz.DeleteCompute, "", c.CreatedBy) == nil && !builtIn(c.Type),
		MayUpdate:  q.P.Check(authz.WriteCompute, "", c.CreatedBy) == nil,
		MayPreempt: compute.CanPreempt(rec) && q.P.Allow(authz.PreemptNode) == nil,
		Operations: []opt{{"start", "Start"}, {"stop", "Stop"}, {"restart", "Restart"}}}
	for _, e := range c.ProvisioningErrors {
		d.Problems = append(d.Problems, e.Code+": "+e.Message)
	}
	var st summary
	json.Unmarshal(c.Status, &st)
	d.RunState = st.State
	for _, e := range st.Errors {
		if m, ok := e.(map[string]any); ok {
			d.Problems = append(d.Problems, fmt.Sprintf("%v: %v", m["code"], m["message"]))
		} else {
			d.Problems = append(d.Problems, fmt.Sprint(e))
		}
	}
	if st.Error != "" {
		d.Problems = append(d.Problems, st.Error)
	}
	key := store.Key(q.WS, c.Name)
	s.hub.follow(r.Context(), key)
	nodes, err := s.Dispatch.Nodes(r.Context(), q.WS, c.Name)
	if err != nil {
		return computeData{}, err
	}
	for _, n := range nodes {
		var one counts
		one.add(n.State)
		d.Counts.add(n.State)
		shown := n.State
		if n.State == store.NodeStarting {
			shown = "preparing"
		}
		d.Nodes = append(d.Nodes, nodeRow{Node: n, Shown: shown})
	}
	hist := s.hub.history(key)
	d.Chart = nodeChart(hist, s.Clock.Now())
	// Scale events: changes of the node count since the timeline began
	// (at its first sample, when the page was first opened).
	for i := len(hist) - 1; i > 0 && len(d.Events) < 10; i-- {
		from, h := hist[i-1].Total(), hist[i]
		if from == h.Total() {
			continue
		}
		d.Events = append(d.Events, event{At: h.At.UTC().Format("15:04:05"), From: from, To: h.Total(),
			What: fmt.Sprintf("%d idle, %d running, %d preparing, %d leaving", h.Idle, h.Running, h.Preparing, h.Leaving)})
	}
	if n, reason, err := s.Dispatch.QueueHead(r.Context(), q.WS, c.Name); err == nil && n > 0 {
		d.Queued, d.Waiting = n, reason
	}
	if kind, ok := compute.Lookup(c.Type); ok {
		d.Update = updateFields(kind.UpdatableFields(), c.Properties)
	}
	return d, nil
}

// notices say what a form just did, after its redirect.
var notices = map[string]string{
	"created": "Created: it provisions now, and this page follows it.", "updated": "Updated.",
	"start": "Starting.", "stop": "Stopping.", "restart": "Restarting.", "preempted": "The node was preempted; its runs restart on another.",
	"canceled": "Canceled: the run stops now.",
}

// builtIn reports whether targets of a type are built in (not deleted).
func builtIn(typ string) bool {
	k, ok := compute.Lookup(typ)
	return ok && k.Origin() == compute.BuiltIn
}

// ownersOf are who may change a target as its owners.
func ownersOf(rec store.Compute) []string {
	if o := compute.Owner(rec); o != "" && o != rec.CreatedBy {
		return []string{rec.CreatedBy, o}
	}
	return []string{rec.CreatedBy}
}

// kvs flattens a JSON object into sorted key/value text.
func kvs(raw json.RawMessage) []kv {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	out := make([]kv, 0, len(m))
	for k, v := range m {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case nil:
			s = "-"
		default:
			b, _ := json.Marshal(v)
			s = string(b)
		}
		out = append(out, kv{k, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// compute serves a target's page.
func (s *Studio) compute(w http.ResponseWriter, r *http.Request, q *req) error {
	d, err := s.computeView(r, q, r.PathValue("name"))
	if err != nil {
		return err
	}
	d.Notice = notices[r.URL.Query().Get("done")]
	s.showCompute(w, q, http.StatusOK, d)
	return nil
}

func (s *Studio) showCompute(w http.ResponseWriter, q *req, status int, d computeData) {
	v := s.view(q, d.C.Name, d)
	v.Section, v.Live = "computes", q.path("computes", d.C.Name, "events")
	s.renderView(w, status, "compute", v)
}

// updateCompute applies the update form: the fields given change.
func (s *Studio) updateCompute(w http.ResponseWriter, r *http.Request, q *req) error {
	name := r.PathValue("name")
	cur, err := s.Targets.VisibleCompute(r.Context(), q.WS, q.P, name)
	if err != nil {
		return err
	}
	kind, ok := compute.Lookup(cur.Type)
	if !ok {
		return api.Invalid("name", "the %s target %q has nothing that can be updated", cur.Type, name)
	}
	fields := updateFields(kind.UpdatableFields(), cur.Properties)
	props, err := formProps(r, fields, true)
	if err == nil {
		_, err = s.Targets.UpdateCompute(r.Context(), q.WS, q.P, name, api.ComputeUpdate{Properties: props})
	}
	var e *api.Error
	if errors.As(err, &e) && e.Code == api.CodeInvalid {
		d, verr := s.computeView(r, q, name)
		if verr != nil {
			return verr
		}
		d.Update = fillFields(d.Update, r, e)
		d.UpdateError = e.Message
		s.showCompute(w, q, http.StatusBadRequest, d)
		return err
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, q.path("computes", cur.Name)+"?done=updated", http.StatusSeeOther)
	return nil
}

// operate starts, stops or restarts an instance.
func (s *Studio) operate(action string) handler {
	return func(w http.ResponseWriter, r *http.Request, q *req) error {
		c, err := s.Targets.InstanceAction(r.Context(), q.WS, q.P, r.PathValue("name"), action)
		if err != nil {
			return err
		}
		http.Redirect(w, r, q.path("computes", c.Name)+"?done="+action, http.StatusSeeOther)
		return nil
	}
}

// confirmData is the delete confirmation page.
type confirmData struct {
	Name       string
	ActiveRuns int
}

// confirmDelete asks before deleting a target.
func (s *Studio) confirmDelete(w http.ResponseWriter, r *http.Request, q *req) error {
	c, err := s.Targets.VisibleCompute(r.Context(), q.WS, q.P, r.PathValue("name"))
	if err != nil {
		return err
	}
	if err := q.P.Check(authz.DeleteCompute, "compute target "+c.Name, c.CreatedBy); err != nil {
		return err
	}
	active, err := s.Dispatch.ActiveRuns(r.Context(), q.WS, c.Name)
	if err != nil {
		return err
	}
	v := s.view(q, "Delete "+c.Name, confirmData{Name: c.Name, ActiveRuns: len(active)})
	v.Section = "computes"
	s.renderView(w, http.StatusOK, "delete", v)
	return nil
}

// deleteCompute deletes a target (cancelling its runs when the form said
// so).
func (s *Studio) deleteCompute(w http.ResponseWriter, r *http.Request, q *req) error {
	name := r.PathValue("name")
	if _, err := s.Targets.VisibleCompute(r.Context(), q.WS, q.P, name); err != nil {
		return err
	}
	if !strings.EqualFold(strings.TrimSpace(r.PostFormValue("confirm")), name) {
		return api.Invalid("confirm", "type the target's name, %s, to delete it", name)
	}
	if _, err := s.Targets.DeleteCompute(r.Context(), q.WS, q.P, name, r.PostFormValue("force") == "on"); err != nil {
		return err
	}
	http.Redirect(w, r, q.path("computes"), http.StatusSeeOther)
	return nil
}

// preempt injects a preemption of a node.
func (s *Studio) preempt(w http.ResponseWriter, r *http.Request, q *req) error {
	name := r.PathValue("name")
	c, err := s.Targets.VisibleCompute(r.Context(), q.WS, q.P, name)
	if err != nil {
		return err
	}
	if err := s.Nodes.Preempt(r.Context(), q.WS, c.Name, r.PathValue("node")); err != nil {
		return err
	}
	http.Redirect(w, r, q.path("computes", c.Name)+"?done=preempted", http.StatusSeeOther)
	return nil
}

// field is one input of a form.
type field struct {
	Name  string // the property, and the input's name
	Label string
	Kind  string // text, number, password, textarea, json (a textarea of JSON), select, checkbox, list, tags, size
	Opts  []opt
	Help  string
	Value string
	Error string
	// Required marks what the kind needs (the server says so too).
	Required bool
}

// opt is a choice of a select.
type opt struct{ Value, Label string }

// opts are choices whose labels are their values ("" reads "default").
func opts(vs ...string) []opt {
	out := make([]opt, len(vs))
	for i, v := range vs {
		out[i] = opt{v, v}
		if v == "" {
			out[i].Label = "(default)"
		}
	}
	return out
}

// fillFields puts a posted form's values back into its fields, and the
// error beside the field it names.
func fillFields(fs []field, r *http.Request, e *api.Error) []field {
	out := append([]field(nil), fs...)
	for i := range out {
		if out[i].Kind != "password" {
			out[i].Value = r.PostFormValue(out[i].Name)
		}
		if e != nil && fieldOf(e.Field) == out[i].Name {
			out[i].Error = e.Message
		}
	}
	return out
}

// fieldOf is the form field an error's field names (a list's element, a
// map's key: the list, the map).
func fieldOf(f string) string {
	if i := strings.IndexAny(f, ".["); i > 0 {
		return f[:i]
	}
	return f
}

// formProps turns a posted form into properties JSON: numbers as numbers
// (text that is not one is passed on as text, for the kind to refuse
// naming the field), lists split at commas, tags as k=v, empty inputs
// left out (or, updating, left unchanged).
func formProps(r *http.Request, fs []field, update bool) (json.RawMessage, error) {
	props := map[string]any{}
	for _, f := range fs {
		v := strings.TrimSpace(r.PostFormValue(f.Name))
		if f.Kind == "password" || f.Kind == "textarea" || f.Kind == "json" {
			v = r.PostFormValue(f.Name)
			if strings.TrimSpace(v) == "" {
				v = ""
			}
		}
		switch {
		case f.Kind == "checkbox":
			if v == "on" {
				props[f.Name] = true
			} else if !update {
				props[f.Name] = false
			}
		case v == "":
		case f.Kind == "number":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				props[f.Name] = n
			} else if x, err := strconv.ParseFloat(v, 64); err == nil {
				props[f.Name] = x
			} else {
				props[f.Name] = v
			}
		case f.Kind == "json" && json.Valid([]byte(v)):
			props[f.Name] = json.RawMessage(v)
		case f.Kind == "list":
			var items []string
			for _, it := range strings.Split(v, ",") {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
			props[f.Name] = items
		case f.Kind == "tags":
			tags := map[string]string{}
			for _, it := range strings.Split(v, ",") {
				if it = strings.TrimSpace(it); it == "" {
					continue
				}
				k, val, ok := strings.Cut(it, "=")
				if !ok {
					return nil, api.Invalid(f.Name, "tags are key=value pairs separated by commas, not %q", it)
				}
				tags[strings.TrimSpace(k)] = strings.TrimSpace(val)
			}
			props[f.Name] = tags
		default:
			props[f.Name] = v
		}
	}
	return json.Marshal(props)
}
