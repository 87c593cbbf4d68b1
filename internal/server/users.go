package server

import (
	"net/http"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

// addUser creates a user with a role and answers with their token, once.
func (a *API) addUser(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.UserCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	noteTarget(r, "users/"+in.Name)
	u, err := a.users.Add(r.Context(), r.PathValue("ws"), in)
	if err != nil {
		return err
	}
	a.log.Info("user added", "user", u.Name, "role", u.Role, "by", who.name())
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// listUsers lists the workspace's users and roles, without their tokens.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, _ caller) error {
	users, err := a.users.List(r.Context(), r.PathValue("ws"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.UserList{Items: users})
	return nil
}

// setUserRole serves PATCH .../users/{name}.
func (a *API) setUserRole(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.UserUpdate
	if err := decode(r, &in); err != nil {
		return err
	}
	u, err := a.users.SetRole(r.Context(), r.PathValue("ws"), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	a.log.Info("role changed", "user", u.Name, "role", u.Role, "by", who.name())
	writeJSON(w, http.StatusOK, u)
	return nil
}

// removeUser serves DELETE .../users/{name}: the user and their tokens go.
func (a *API) removeUser(w http.ResponseWriter, r *http.Request, who caller) error {
	if err := a.users.Remove(r.Context(), r.PathValue("ws"), who.P, r.PathValue("name")); err != nil {
		return err
	}
	a.log.Info("user removed", "user", r.PathValue("name"), "by", who.name())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listTokens serves GET /api/v1/tokens[?all=true].
func (a *API) listTokens(w http.ResponseWriter, r *http.Request, who caller) error {
	ts, err := a.users.Tokens(r.Context(), *who.User, r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.TokenList{Items: ts})
	return nil
}

// createToken serves POST /api/v1/tokens; the answer holds the token, once.
func (a *API) createToken(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.TokenCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	t, err := a.users.CreateToken(r.Context(), *who.User, in)
	if err != nil {
		return err
	}
	noteTarget(r, "tokens/"+t.ID)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// revokeToken serves DELETE /api/v1/tokens/{id} (an id or a name).
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, who caller) error {
	t, err := a.users.Revoke(r.Context(), *who.User, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// rotateToken serves POST /api/v1/tokens/current:rotate: the token of the
// request is replaced; the answer holds the new one, once.
func (a *API) rotateToken(w http.ResponseWriter, r *http.Request, who caller) error {
	if id, action, _ := strings.Cut(r.PathValue("id"), ":"); id != "current" || action != "rotate" {
		return api.NotFound("no API route POST %s; tokens support current:rotate", r.URL.Path)
	}
	t, err := a.users.Rotate(r.Context(), *who.User)
	if err != nil {
		return err
	}
	noteTarget(r, "tokens/"+who.User.Token.ID+" → "+t.ID)
	writeJSON(w, http.StatusOK, t)
	return nil
}

// createStudioLink serves POST /api/v1/studio/links: a one-time sign-in
// link to the studio for the caller, shown once.
func (a *API) createStudioLink(w http.ResponseWriter, r *http.Request, who caller) error {
	code, expires, err := a.users.CreateSigninLink(r.Context(), *who.User)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.StudioLink{Path: "/signin?code=" + code, Code: code, ExpiresAt: expires})
	return nil
}
