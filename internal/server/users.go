package server

import (
	"net/http"
	"regexp"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

var userName = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

// addUser creates a user and answers with their token, once (admins only).
func (a *API) addUser(w http.ResponseWriter, r *http.Request, who caller) error {
	if who.User == nil || !who.User.Admin {
		return api.Forbidden("only admins can add users")
	}
	var in api.UserCreate
	if err := decode(r, &in); err != nil {
		return err
	}
	if !userName.MatchString(in.Name) {
		return api.Invalid("name", "user name %q must be 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter", in.Name)
	}
	token := NewToken()
	u := store.User{Name: in.Name, Admin: in.Admin, TokenHash: TokenHash(token), CreatedAt: time.Now().UTC()}
	if err := a.store.CreateUser(r.Context(), u); err != nil {
		return err
	}
	a.log.Info("user added", "user", u.Name, "admin", u.Admin, "by", who.name())
	writeJSON(w, http.StatusCreated, api.User{Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt, Token: token})
	return nil
}

// listUsers lists users, without their tokens (admins only).
func (a *API) listUsers(w http.ResponseWriter, r *http.Request, who caller) error {
	if who.User == nil || !who.User.Admin {
		return api.Forbidden("only admins can list users")
	}
	us, err := a.store.Users(r.Context())
	if err != nil {
		return err
	}
	out := api.UserList{Items: make([]api.User, 0, len(us))}
	for _, u := range us {
		out.Items = append(out.Items, api.User{Name: u.Name, Admin: u.Admin, CreatedAt: u.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
