package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

const rolesHelp = "Owner, Contributor, Reader or ComputeOperator"

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add users, give them roles, list and remove them (Owners)",
		Long: `Users of the workspace and their roles:

  Owner            everything, users and quotas included
  Contributor      create and use compute and runs; change, delete or cancel only what they created
  ComputeOperator  manage every compute target; no runs
  Reader           read compute targets and runs

A compute instance is used only by its assigned user; Owners may stop or delete it.`,
	}
	var role string
	add := &cobra.Command{
		Use:   "add NAME [--role ROLE]",
		Short: "Add a user and print their token (shown once; keep it safe)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.User, error) {
				return c.CreateUser(ctx, api.UserCreate{Name: args[0], Role: role})
			}, func(w io.Writer, u *api.User) { fmt.Fprintln(w, u.Token) })
		},
	}
	add.Flags().StringVar(&role, "role", "Contributor", "the user's role in the workspace: "+rolesHelp)
	setRole := &cobra.Command{
		Use:   "set-role NAME ROLE",
		Short: "Change a user's role in the workspace",
		Args:  exactArgs("NAME", "ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.User, error) {
				return c.SetUserRole(ctx, args[0], args[1])
			}, func(w io.Writer, u *api.User) { fmt.Fprintf(w, "%s is now %s\n", u.Name, u.Role) })
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user; their tokens stop working at once",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed %s\n", args[0])
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the workspace's users and their roles",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.User, error) {
				return c.ListUsers(ctx)
			}, func(w io.Writer, users []api.User) {
				fmt.Fprintln(w, "NAME\tROLE\tCREATED")
				for _, u := range users {
					role := u.Role
					if u.Admin {
						role += " (admin)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", u.Name, role, age(u.CreatedAt))
				}
			})
		},
	}
	cmd.AddCommand(add, setRole, remove, list)
	return cmd
}
