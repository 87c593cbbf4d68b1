package studio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

// quotaRow is a quota with what is in use under it.
type quotaRow struct {
	api.Quota
	// Ded and Low are the use as a share of the quota, for <meter>; a
	// quota of no limit has none.
	DedLimited, LowLimited bool
}

// userUse is what one user holds now.
type userUse struct {
	User            string
	Running, Queued int
	Cores           float64 // asked for by their running runs, all nodes
	Instances       int     // their running compute instances
	InstanceCores   float64
	InstanceNames   []string
}

// quotasData is the quotas and usage page.
type quotasData struct {
	Quotas []quotaRow
	Users  []userUse
	// Sizes says which family each size is of.
	Sizes []api.Size
}

// quotas serves the quotas and usage page: cores in use per size family
// against its quota, and what each user holds.
func (s *Studio) quotas(w http.ResponseWriter, r *http.Request, q *req) error {
	qs, err := s.Targets.Quotas(r.Context(), q.WS)
	if err != nil {
		return err
	}
	d := quotasData{Sizes: s.Targets.Sizes.All()}
	for _, x := range qs {
		d.Quotas = append(d.Quotas, quotaRow{Quota: x, DedLimited: x.DedicatedCores >= 0, LowLimited: x.LowPriorityCores >= 0})
	}
	if d.Users, err = s.usage(r.Context(), q); err != nil {
		return err
	}
	v := s.view(q, "Quotas and usage", d)
	v.Section = "quotas"
	s.renderView(w, http.StatusOK, "quotas", v)
	return nil
}

// usage is what each user holds now: their active runs and the cores
// those ask for, and their running instances.
func (s *Studio) usage(ctx context.Context, q *req) ([]userUse, error) {
	by := map[string]*userUse{}
	get := func(u string) *userUse {
		if by[u] == nil {
			by[u] = &userUse{User: u}
		}
		return by[u]
	}
	active, err := s.Store.ActiveRuns(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range active {
		if r.Workspace != q.WS {
			continue
		}
		u := get(r.CreatedBy)
		if r.Status == api.RunQueued || r.Status == api.RunProvisioning {
			u.Queued++
			continue
		}
		u.Running++
		u.Cores += r.Resources.Cores * float64(max(r.NodeCount, 1))
	}
	items, err := s.Targets.ListBrief(ctx, q.WS, q.P)
	if err != nil {
		return nil, err
	}
	for _, c := range items {
		var p struct {
			VMSize       string `json:"vm_size"`
			AssignedUser string `json:"assigned_user"`
		}
		var st struct {
			State string `json:"state"`
		}
		json.Unmarshal(c.Properties, &p)
		json.Unmarshal(c.Status, &st)
		if p.AssignedUser == "" || st.State != "Running" {
			continue
		}
		u := get(p.AssignedUser)
		u.Instances++
		u.InstanceNames = append(u.InstanceNames, c.Name)
		if sz, ok := s.Targets.Sizes.Find(p.VMSize); ok {
			u.InstanceCores += float64(sz.Cores)
		}
	}
	out := make([]userUse, 0, len(by))
	for _, u := range by {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// usersData is the users page.
type usersData struct {
	Users []api.User
	Roles []string
	// Added is the user just added, with their token (shown this once).
	Added *api.User
	Name  field
	Role  string
	Error string
}

// usersPage lists the workspace's users and offers to add one.
func (s *Studio) usersPage(w http.ResponseWriter, r *http.Request, q *req) error {
	return s.showUsers(w, r, q, http.StatusOK, usersData{Name: userNameField()})
}

func userNameField() field {
	return field{Name: "name", Label: "Name", Kind: "text", Required: true,
		Help: "lower-case letters, digits, '.', '_' or '-', starting with a letter"}
}

func (s *Studio) showUsers(w http.ResponseWriter, r *http.Request, q *req, status int, d usersData) error {
	us, err := s.Users.List(r.Context(), q.WS)
	if err != nil {
		return err
	}
	d.Users = us
	d.Roles = []string{"Contributor", "Reader", "ComputeOperator", "Owner"}
	v := s.view(q, "Users", d)
	v.Section = "users"
	s.renderView(w, status, "users", v)
	return nil
}

// addUser adds a user with a role and shows their first token once.
func (s *Studio) addUser(w http.ResponseWriter, r *http.Request, q *req) error {
	in := api.UserCreate{Name: strings.TrimSpace(r.PostFormValue("name")), Role: r.PostFormValue("role")}
	q.target = "users/" + in.Name
	u, err := s.Users.Add(r.Context(), q.WS, in)
	var e *api.Error
	if errors.As(err, &e) && (e.Code == api.CodeInvalid || e.Code == api.CodeConflict) {
		d := usersData{Name: userNameField(), Role: in.Role, Error: e.Message}
		d.Name.Value, d.Name.Error = in.Name, e.Message
		if e.Field == "role" {
			d.Name.Error = ""
		}
		s.showUsers(w, r, q, e.Code.HTTPStatus(), d)
		return err
	}
	if err != nil {
		return err
	}
	s.Log.Info("user added", "user", u.Name, "role", u.Role, "by", q.ID.User.Name, "via", "studio")
	return s.showUsers(w, r, q, http.StatusCreated, usersData{Added: &u, Name: userNameField()})
}
