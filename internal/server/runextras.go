package server

import (
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/artifact"
	"github.com/paddock-ml/paddock/internal/authz"
	"github.com/paddock-ml/paddock/internal/store"
)

// annotatedRun reads the run a user or the run itself annotates (tags,
// files), before any body is read: a user needs run.metrics on it, a run
// token was checked to be its own.
func (a *API) annotatedRun(r *http.Request, who caller) (store.Run, error) {
	run, err := a.store.GetRun(r.Context(), r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return run, err
	}
	if who.User != nil {
		if err := who.P.Check(authz.WriteMetrics, "run "+run.ID, run.CreatedBy); err != nil {
			return run, err
		}
	}
	return run, nil
}

// updateRun sets and removes a run's tags (PATCH .../runs/{id}).
func (a *API) updateRun(w http.ResponseWriter, r *http.Request, who caller) error {
	run, err := a.annotatedRun(r, who)
	if err != nil {
		return err
	}
	var in api.RunUpdate
	if err := decode(r, &in); err != nil {
		return err
	}
	out, err := a.runs.UpdateRun(r.Context(), run, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putRunFile stores a file a run or its user uploads (upload_file,
// log_image) at {path}.
func (a *API) putRunFile(w http.ResponseWriter, r *http.Request, who caller) error {
	run, err := a.annotatedRun(r, who)
	if err != nil {
		return err
	}
	if err := artifact.CheckRunFilePath(r.PathValue("path")); err != nil {
		return err
	}
	f, err := a.art.PutRunFile(run.ID, r.PathValue("path"), r.Body)
	if err != nil {
		return err
	}
	a.dispatch.NotifyLogs(run.ID)
	writeJSON(w, http.StatusCreated, f)
	return nil
}

// listRunFiles lists a run's files: its outputs and what was uploaded.
func (a *API) listRunFiles(w http.ResponseWriter, r *http.Request, _ caller) error {
	run, err := a.store.GetRun(r.Context(), r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	files, err := a.art.RunFiles(run.ID)
	if err != nil {
		return err
	}
	if files == nil {
		files = []api.RunFile{}
	}
	writeJSON(w, http.StatusOK, api.RunFileList{Items: files})
	return nil
}

// getRunFile sends one of a run's files.
func (a *API) getRunFile(w http.ResponseWriter, r *http.Request, _ caller) error {
	run, err := a.store.GetRun(r.Context(), r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	f, size, mod, err := a.art.OpenRunFile(run.ID, r.PathValue("path"))
	if err != nil {
		return err
	}
	defer f.Close()
	ctype := mime.TypeByExtension(path.Ext(r.PathValue("path")))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", mod, f)
	return nil
}

// runAction serves POST .../runs/{id}:cancel, :complete and :fail. A run's
// own token may only mark it failed (Run.fail from inside it).
func (a *API) runAction(w http.ResponseWriter, r *http.Request, who caller) error {
	id, action, ok := strings.Cut(r.PathValue("id"), ":")
	ws := r.PathValue("ws")
	if !ok || action != "cancel" && action != "complete" && action != "fail" {
		return api.NotFound("no API route POST %s; runs support :cancel, :complete and :fail", r.URL.Path)
	}
	var in api.RunEnd
	if action == "fail" && r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return err
		}
	}
	var out api.Run
	var err error
	switch {
	case who.User == nil && action != "fail":
		return api.Forbidden("a run token can mark its own run failed (:fail), not %s it", action)
	case who.User == nil:
		var run store.Run
		if run, err = a.store.GetRun(r.Context(), ws, id); err == nil {
			out, err = a.runs.MarkFailed(r.Context(), run, in.Error)
		}
	case action == "cancel":
		out, err = a.runs.Cancel(r.Context(), ws, id, who.P)
	case action == "complete":
		out, err = a.runs.End(r.Context(), ws, id, who.P, api.RunCompleted, "")
	default:
		out, err = a.runs.End(r.Context(), ws, id, who.P, api.RunFailed, in.Error)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// listEnvironments lists the latest version of each registered environment.
func (a *API) listEnvironments(w http.ResponseWriter, r *http.Request, _ caller) error {
	items, err := a.envs.List(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.EnvironmentList{Items: items})
	return nil
}

// registerEnvironment registers an environment: 201 with a new version, or
// 200 with the latest when it holds the same.
func (a *API) registerEnvironment(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.EnvironmentRegister
	if err := decode(r, &in); err != nil {
		return err
	}
	noteTarget(r, "environments/"+in.Name)
	out, created, err := a.envs.Register(r.Context(), r.PathValue("ws"), who.name(), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", r.URL.Path+"/"+out.Name+"?version="+strconv.Itoa(out.Version))
	}
	writeJSON(w, status, out)
	return nil
}

// getEnvironment returns a registered environment: the latest version, or
// ?version=N.
func (a *API) getEnvironment(w http.ResponseWriter, r *http.Request, _ caller) error {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return api.Invalid("version", "version must be a positive number, not %q", v)
		}
		version = n
	}
	out, err := a.envs.Get(r.Context(), r.PathValue("ws"), r.PathValue("name"), version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
