package server

import (
	"net/http"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

// listNodes serves a target's nodes, live from the dispatcher.
func (a *API) listNodes(w http.ResponseWriter, r *http.Request, who caller) error {
	ws, name := r.PathValue("ws"), r.PathValue("name")
	rec, err := a.targets.VisibleCompute(r.Context(), ws, who.P, name)
	if err != nil {
		return err
	}
	nodes, err := a.dispatch.Nodes(r.Context(), ws, rec.Name)
	if err != nil {
		return err
	}
	out := api.NodeList{Items: make([]api.Node, 0, len(nodes))}
	for _, n := range nodes {
		gpus := make([]api.GPUInfo, len(n.GPUs))
		for i, g := range n.GPUs {
			gpus[i] = api.GPUInfo{Index: g.Index, Name: g.Name, UUID: g.UUID, MemoryMB: g.MemoryMB}
		}
		out.Items = append(out.Items, api.Node{ID: n.ID, Compute: rec.Name, State: n.State, Reason: n.Reason,
			Hostname: n.Hostname, Address: n.Address, Cores: n.Cores, MemoryGB: n.MemoryGB, GPUs: gpus,
			Version: n.Version, CreatedAt: n.CreatedAt, LastSeen: n.LastSeen})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nodeAction serves POST .../nodes/{node}:preempt (Owners, Compute Operators).
func (a *API) nodeAction(w http.ResponseWriter, r *http.Request, who caller) error {
	id, action, ok := strings.Cut(r.PathValue("node"), ":")
	if !ok || action != "preempt" {
		return api.NotFound("no API route POST %s; nodes support :preempt", r.URL.Path)
	}
	if err := a.nodes.Preempt(r.Context(), r.PathValue("ws"), r.PathValue("name"), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) listQuotas(w http.ResponseWriter, r *http.Request, _ caller) error {
	qs, err := a.targets.Quotas(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.QuotaList{Items: qs})
	return nil
}

// setQuota serves PUT .../quotas (Owners).
func (a *API) setQuota(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.QuotaSet
	if err := decode(r, &in); err != nil {
		return err
	}
	q, err := a.targets.SetQuota(r.Context(), r.PathValue("ws"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, q)
	return nil
}

// computeAction serves POST .../computes/{name}:start|stop|restart.
func (a *API) computeAction(w http.ResponseWriter, r *http.Request, who caller) error {
	name, action, ok := strings.Cut(r.PathValue("name"), ":")
	if !ok {
		return api.NotFound("no API route POST %s; compute targets support :start, :stop and :restart", r.URL.Path)
	}
	out, err := a.targets.InstanceAction(r.Context(), r.PathValue("ws"), who.P, name, action)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}
