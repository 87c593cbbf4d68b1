package server

import (
	"net/http"

	"github.com/paddock-ml/paddock/api"
)

// addUser creates a user and answers with their token, once (admins only).
func (a *API) addUser(w http.ResponseWriter, r *http.Request, who caller) error {
	var in api.UserCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	u, err := a.users.Add(r.Context(), who.User, in)
	if err != nil {
		return err
	}
	a.log.Info("user added", "user", u.Name, "admin", u.Admin, "by", who.name())
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// listUsers lists users, without their tokens (admins only).
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, who caller) error {
	users, err := a.users.List(r.Context(), who.User)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.UserList{Items: users})
	return nil
}
