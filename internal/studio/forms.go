package studio

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
)

// The create and attach forms, one per kind the studio offers, like the
// CLI's flag tables: each input is named after the property it sets, so
// an error naming a property is shown beside its input. Validation is the
// server's own (targets.CreateCompute), with its messages.

var commonFields = []field{
	{Name: "description", Label: "Description", Kind: "text"},
	{Name: "tags", Label: "Tags", Kind: "tags", Help: "key=value pairs, separated by commas"},
}

func sshFields(host, login string) []field {
	return []field{
		{Name: "address", Label: "Address", Kind: "text", Help: host, Required: true},
		{Name: "ssh_port", Label: "SSH port", Kind: "number", Help: "default 22"},
		{Name: "username", Label: "Username", Kind: "text", Help: login, Required: true},
		{Name: "password", Label: "Password", Kind: "password", Help: "write-only: never shown again"},
		{Name: "private_key", Label: "Private key", Kind: "textarea", Help: "OpenSSH private key, instead of a password; write-only"},
		{Name: "private_key_passphrase", Label: "Key passphrase", Kind: "password", Help: "when the key has one"},
	}
}

// createForms are the forms by kind; title and whether it attaches.
var createForms = map[string]struct {
	Title  string
	Fields []field
}{
	"cluster": {"Create a cluster", slices.Concat([]field{
		{Name: "vm_size", Label: "VM size", Kind: "size", Required: true, Help: "the size of every node"},
		{Name: "min_nodes", Label: "Min nodes", Kind: "number", Help: "nodes kept even when idle (default 0)"},
		{Name: "max_nodes", Label: "Max nodes", Kind: "number", Required: true, Help: "the most nodes it grows to"},
		{Name: "idle_seconds_before_scaledown", Label: "Idle seconds before scale-down", Kind: "number", Help: "default 1800"},
		{Name: "vm_priority", Label: "VM priority", Kind: "select", Opts: opts("", "dedicated", "lowpriority"), Help: "low priority nodes may be preempted"},
		{Name: "provider", Label: "Provider", Kind: "text", Help: "where nodes come from: local (default), ssh, slurm"},
		{Name: "from", Label: "From", Kind: "text", Help: "the attached target an ssh or slurm provider takes nodes from"},
	}, commonFields)},
	"instance": {"Create a compute instance", slices.Concat([]field{
		{Name: "vm_size", Label: "VM size", Kind: "size", Required: true},
		{Name: "assigned_user", Label: "Assigned user", Kind: "text", Help: "who it belongs to (default: you)"},
		{Name: "max_concurrent_runs", Label: "Max concurrent runs", Kind: "number", Help: "the rest queue (default: the size's cores)"},
		{Name: "idle_time_before_shutdown", Label: "Idle time before shutdown", Kind: "text", Help: "e.g. 30m (default: never)"},
		{Name: "ssh_public_access", Label: "SSH access", Kind: "checkbox", Help: "serve SSH for the assigned user"},
		{Name: "admin_user_ssh_key", Label: "SSH public key", Kind: "textarea", Help: "the OpenSSH public key allowed to log in"},
	}, commonFields)},
	"remote": {"Attach a remote machine", slices.Concat(sshFields("host name or IP address of the machine", "user to log in as"), commonFields)},
	"slurm": {"Attach a Slurm cluster", slices.Concat(sshFields("the login node's host name or IP address", "user to log in and submit jobs as"), []field{
		{Name: "partition", Label: "Partition", Kind: "text", Help: "default: the cluster's default"},
		{Name: "account", Label: "Account", Kind: "text"},
		{Name: "qos", Label: "QoS", Kind: "text"},
		{Name: "lowpriority_qos", Label: "Low-priority QoS", Kind: "text"},
	}, commonFields)},
	"databricks": {"Attach a Databricks workspace", slices.Concat([]field{
		{Name: "workspace_url", Label: "Workspace URL", Kind: "text", Required: true, Help: "https://adb-….azuredatabricks.net"},
		{Name: "access_token", Label: "Access token", Kind: "password", Required: true, Help: "a personal access token; write-only: never shown again"},
		{Name: "cluster_id", Label: "Cluster id", Kind: "text", Help: "the all-purpose cluster runs go to"},
		{Name: "new_cluster", Label: "New cluster spec", Kind: "json", Help: "instead of a cluster id: a Clusters API spec (JSON) of a job cluster made for each run"},
		{Name: "max_concurrent_runs", Label: "Max concurrent runs", Kind: "number", Help: "runs in flight in Databricks at once (default 10)"},
	}, commonFields)},
}

// updatable are the fields a target's update form may show, of those its
// kind can update (identities are changed with the CLI).
var updatable = []field{
	{Name: "min_nodes", Label: "Min nodes", Kind: "number"},
	{Name: "max_nodes", Label: "Max nodes", Kind: "number"},
	{Name: "idle_seconds_before_scaledown", Label: "Idle seconds before scale-down", Kind: "number"},
	{Name: "max_concurrent_runs", Label: "Max concurrent runs", Kind: "number"},
	{Name: "idle_time_before_shutdown", Label: "Idle time before shutdown", Kind: "text", Help: "e.g. 30m; 0 never"},
	{Name: "description", Label: "Description", Kind: "text"},
}

// updateFields are the update form's inputs for a kind, with the current
// values.
func updateFields(can []string, props json.RawMessage) []field {
	var cur map[string]any
	json.Unmarshal(props, &cur)
	var out []field
	for _, f := range updatable {
		if slices.Contains(can, f.Name) {
			if v, ok := cur[f.Name]; ok && v != nil {
				b, _ := json.Marshal(v)
				f.Value = strings.Trim(string(b), `"`)
			}
			out = append(out, f)
		}
	}
	return out
}

// formKinds are the kinds of an origin that have a form here.
func formKinds(o compute.Origin) []string {
	var out []string
	for _, t := range compute.Types(o) {
		if _, ok := createForms[t]; ok {
			out = append(out, t)
		}
	}
	return out
}

// formData is a create or attach form.
type formData struct {
	Type, Title string
	Name        field
	Fields      []field
	Error       string
}

// newCompute shows the create (or attach) form of a kind.
func (s *Studio) newCompute(w http.ResponseWriter, r *http.Request, q *req) error {
	typ := r.PathValue("type")
	f, ok := createForms[typ]
	if !ok {
		return api.NotFound("the studio has no form for %q targets; use the CLI (`paddock compute attach --help`)", typ)
	}
	d := formData{Type: typ, Title: f.Title, Name: nameField(), Fields: withSizes(f.Fields, s.Targets.Sizes.All())}
	s.showForm(w, q, http.StatusOK, d)
	return nil
}

// withSizes makes a form's size inputs choices of the catalog.
func withSizes(fs []field, sizes []api.Size) []field {
	out := append([]field(nil), fs...)
	for i := range out {
		if out[i].Kind != "size" {
			continue
		}
		out[i].Kind, out[i].Opts = "select", []opt{{"", "choose a size"}}
		for _, sz := range sizes {
			label := fmt.Sprintf("%s — %d cores, %s GiB", sz.Name, sz.Cores, trimFloat(sz.MemoryGB))
			if sz.GPUs > 0 {
				label += fmt.Sprintf(", %d GPU", sz.GPUs)
			}
			out[i].Opts = append(out[i].Opts, opt{sz.Name, label})
		}
	}
	return out
}

func nameField() field {
	return field{Name: "name", Label: "Name", Kind: "text", Required: true,
		Help: "3 to 24 letters, digits and -, starting with a letter"}
}

func (s *Studio) showForm(w http.ResponseWriter, q *req, status int, d formData) {
	v := s.view(q, d.Title, d)
	v.Section = "computes"
	s.renderView(w, status, "form", v)
}

// createCompute creates or attaches a target from its form; an error of
// the server's validation is shown beside the field it names, the form
// kept as it was filled (secrets excepted).
func (s *Studio) createCompute(w http.ResponseWriter, r *http.Request, q *req) error {
	typ := r.PostFormValue("type")
	f, ok := createForms[typ]
	if !ok {
		return api.Invalid("type", "the studio has no form for %q targets", typ)
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	q.target = "computes/" + name
	props, err := formProps(r, f.Fields, false)
	if err == nil {
		_, err = s.Targets.CreateCompute(r.Context(), q.WS, q.ID.User.Name, api.ComputeCreate{Name: name, Type: typ, Properties: props})
	}
	var e *api.Error
	if errors.As(err, &e) && (e.Code == api.CodeInvalid || e.Code == api.CodeConflict) {
		d := formData{Type: typ, Title: f.Title, Name: nameField(), Fields: fillFields(withSizes(f.Fields, s.Targets.Sizes.All()), r, e), Error: e.Message}
		d.Name.Value = name
		if e.Field == "name" || e.Code == api.CodeConflict {
			d.Name.Error = e.Message
		}
		s.showForm(w, q, e.Code.HTTPStatus(), d)
		return err
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, q.path("computes", name)+"?done=created", http.StatusSeeOther)
	return nil
}
