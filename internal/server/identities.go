package server

import (
	"net/http"

	"github.com/paddock-ml/paddock/api"
)

// The workspace, its policy and its managed identities.

func (a *API) getWorkspace(w http.ResponseWriter, r *http.Request, _ caller) error {
	out, err := a.targets.Workspace(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// updateWorkspace changes the workspace's policy (admins only).
func (a *API) updateWorkspace(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.PolicyUpdate
	if err := decode(r, &in); err != nil {
		return err
	}
	out, err := a.targets.SetPolicy(r.Context(), r.PathValue("ws"), who.P, in)
	if err != nil {
		return err
	}
	a.log.Info("workspace policy changed", "workspace", out.Name, "by", who.name(),
		"max_idle_time_before_shutdown", out.Policy.MaxIdleTimeBeforeShutdown, "max_run_duration_seconds", out.Policy.MaxRunDurationSeconds)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listIdentities(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	items, err := a.identities.List(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.IdentityList{Items: items})
	return nil
}

func (a *API) createIdentity(w http.ResponseWriter, r *http.Request, who caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	var in api.IdentityCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	out, err := a.identities.Create(r.Context(), r.PathValue("ws"), who.P, in)
	if err != nil {
		return err
	}
	noteTarget(r, "identities/"+out.Name)
	a.log.Info("identity created", "workspace", r.PathValue("ws"), "identity", out.Name, "secret_keys", out.SecretKeys, "by", who.name())
	w.Header().Set("Location", r.URL.Path+"/"+out.Name)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) getIdentity(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	out, err := a.identities.Get(r.Context(), r.PathValue("ws"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) updateIdentity(w http.ResponseWriter, r *http.Request, who caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	var in api.IdentityUpdate
	if err := decode(r, &in); err != nil {
		return err
	}
	out, err := a.identities.Update(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name"), in)
	if err != nil {
		return err
	}
	a.log.Info("identity changed", "workspace", r.PathValue("ws"), "identity", out.Name, "secret_keys", out.SecretKeys, "by", who.name())
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteIdentity(w http.ResponseWriter, r *http.Request, who caller) error {
	if err := a.checkWS(r); err != nil {
		return err
	}
	if err := a.identities.Delete(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name")); err != nil {
		return err
	}
	a.log.Info("identity deleted", "workspace", r.PathValue("ws"), "identity", r.PathValue("name"), "by", who.name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentIdentity gives a node's agent a credential of one identity of one
// of its attempts, to serve to that run.
func (a *API) agentIdentity(w http.ResponseWriter, r *http.Request, who caller) error {
	ref, _, err := a.attemptOf(r, who) // before reading the body
	if err != nil {
		return err
	}
	var in api.AgentIdentityRequest
	if err := decode(r, &in); err != nil {
		return err
	}
	cred, err := a.identities.Credential(r.Context(), *who.Node, ref.RunID, ref.Attempt, in.Identity)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, cred)
	return nil
}

// identityToken tells a service what the identity token it was given
// (as this request's bearer token) stands for, while it is good.
func (a *API) identityToken(w http.ResponseWriter, r *http.Request, who caller) error {
	info, err := a.identities.TokenInfo(r.Context(), who.IdentityToken)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}
