package cli

import (
	"fmt"
	"io"
	"net/http"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Add and list users (admins)"}
	var admin bool
	add := &cobra.Command{
		Use:   "add NAME [--admin]",
		Short: "Add a user and print their token (shown once; keep it safe)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var u api.User
			if err := c.Do(cmd.Context(), http.MethodPost, "/api/v1/users", api.UserCreate{Name: args[0], Admin: admin}, &u); err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g.output, u, func(w io.Writer) { fmt.Fprintln(w, u.Token) })
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "make the user an admin")
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var l api.UserList
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/users", nil, &l); err != nil {
				return err
			}
			return emit(cmd.OutOrStdout(), g.output, l.Items, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tADMIN\tCREATED")
				for _, u := range l.Items {
					fmt.Fprintf(w, "%s\t%v\t%s\n", u.Name, u.Admin, age(u.CreatedAt))
				}
			})
		},
	}
	cmd.AddCommand(add, list)
	return cmd
}
