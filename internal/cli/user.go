package cli

import (
	"context"
	"fmt"
	"io"

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
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.User, error) {
				return c.CreateUser(ctx, api.UserCreate{Name: args[0], Admin: admin})
			}, func(w io.Writer, u *api.User) { fmt.Fprintln(w, u.Token) })
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "make the user an admin")
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.User, error) {
				return c.ListUsers(ctx)
			}, func(w io.Writer, users []api.User) {
				fmt.Fprintln(w, "NAME\tADMIN\tCREATED")
				for _, u := range users {
					fmt.Fprintf(w, "%s\t%v\t%s\n", u.Name, u.Admin, age(u.CreatedAt))
				}
			})
		},
	}
	cmd.AddCommand(add, list)
	return cmd
}
