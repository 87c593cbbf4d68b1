package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

func newIdentityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "identity",
		Aliases: []string{"identities"},
		Short:   "Manage the identities clusters give their runs (secrets runs fetch while they run)",
		Long: `An identity is a named set of secrets (KEY=VALUE) that a cluster gives to the
runs it runs: name it with 'compute create cluster --identity-type UserAssigned
--identity-id NAME' (or 'compute update'). A run reads the credential from
$PADDOCK_IDENTITY_ENDPOINT with $PADDOCK_IDENTITY_TOKEN while it runs.
Secret values are write-only: never shown, never logged.`,
	}
	var secrets []string
	var description string
	create := &cobra.Command{
		Use:   "create NAME --secret KEY=@FILE ...",
		Short: "Create an identity holding secrets",
		Example: `  paddock identity create blob-reader --secret AWS_ACCESS_KEY_ID=@key-id.txt --secret AWS_SECRET_ACCESS_KEY=@secret.txt
  paddock compute create cluster cpu --vm-size STANDARD_D2_V2 --max-nodes 2 --identity-type UserAssigned --identity-id blob-reader`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vals, err := secretFlags(secrets)
			if err != nil {
				return err
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Identity, error) {
				return c.CreateIdentity(ctx, api.IdentityCreate{Name: args[0], Description: description, Secrets: vals})
			}, identityTable)
		},
	}
	create.Flags().StringArrayVar(&secrets, "secret", nil, "a secret KEY=@FILE (the file's content, a final newline dropped) or KEY=VALUE (repeatable)")
	create.Flags().StringVar(&description, "description", "", "what the identity is for")

	var set, remove []string
	var newDescription string
	update := &cobra.Command{
		Use:     "update NAME [--secret KEY=@FILE ...] [--remove-secret KEY ...] [--description T]",
		Short:   "Rotate, add or remove an identity's secrets (its creator and Owners)",
		Example: "  paddock identity update blob-reader --secret AWS_SECRET_ACCESS_KEY=@new-secret.txt",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vals, err := secretFlags(set)
			if err != nil {
				return err
			}
			in := api.IdentityUpdate{Secrets: vals, RemoveSecrets: remove}
			if cmd.Flags().Changed("description") {
				in.Description = &newDescription
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Identity, error) {
				return c.UpdateIdentity(ctx, args[0], in)
			}, identityTable)
		},
	}
	update.Flags().StringArrayVar(&set, "secret", nil, "a secret to set, KEY=@FILE or KEY=VALUE (repeatable)")
	update.Flags().StringArrayVar(&remove, "remove-secret", nil, "a secret's KEY to remove (repeatable)")
	update.Flags().StringVar(&newDescription, "description", "", "a new description")

	list := &cobra.Command{
		Use:   "list",
		Short: "List identities (secrets by key only)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Identity, error) {
				items, err := c.ListIdentities(ctx)
				return nonNil(items), err
			}, func(w io.Writer, items []api.Identity) {
				fmt.Fprintln(w, "NAME\tTYPE\tSECRETS\tUSED BY\tCREATED BY\tAGE")
				for _, id := range items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id.Name, id.Type, orDash(strings.Join(id.SecretKeys, ",")),
						orDash(strings.Join(id.UsedBy, ",")), id.CreatedBy, age(id.CreatedAt))
				}
			})
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an identity: its principal id, its secrets' keys and the targets that use it",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Identity, error) {
				return c.GetIdentity(ctx, args[0])
			}, identityTable)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an identity (refused while a compute target uses it)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteIdentity(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "identity %s: deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, show, update, del)
	return cmd
}

// secretFlags reads --secret KEY=@FILE and KEY=VALUE flags.
func secretFlags(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, api.Invalid("secret", "--secret must be KEY=@FILE or KEY=VALUE, not %q", redactValue(f))
		}
		if _, dup := out[k]; dup {
			return nil, api.Invalid("secret", "--secret %s is given twice", k)
		}
		if path, ok := strings.CutPrefix(v, "@"); ok {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, api.Invalid("secret", "--secret %s: cannot read %s: %v", k, path, unwrapPathErr(err))
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		}
		out[k] = v
	}
	return out, nil
}

// redactValue keeps a malformed flag's secret value out of the error.
func redactValue(f string) string {
	if len(f) > 8 {
		return f[:8] + "…"
	}
	return f
}

// identityTable shows one identity.
func identityTable(w io.Writer, id *api.Identity) {
	fmt.Fprintf(w, "Name:\t%s\n", id.Name)
	fmt.Fprintf(w, "Type:\t%s\n", id.Type)
	fmt.Fprintf(w, "Principal id:\t%s\n", id.PrincipalID)
	if id.Compute != "" {
		fmt.Fprintf(w, "Compute:\t%s\n", id.Compute)
	}
	if id.Description != "" {
		fmt.Fprintf(w, "Description:\t%s\n", id.Description)
	}
	fmt.Fprintf(w, "Secrets:\t%s\n", orDash(strings.Join(id.SecretKeys, ", ")+setNote(id.SecretKeys)))
	fmt.Fprintf(w, "Used by:\t%s\n", orDash(strings.Join(id.UsedBy, ", ")))
	fmt.Fprintf(w, "Created:\t%s by %s\n", id.CreatedAt.Format(time.RFC3339), id.CreatedBy)
}

func setNote(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return " (write-only)"
}

func newWorkspaceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "workspace", Short: "Show the workspace and set its policy (Owners)"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the workspace's policy: the limits every instance and run gets",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Workspace, error) {
				return c.GetWorkspace(ctx)
			}, workspaceTable)
		},
	}
	var idle, dur string
	set := &cobra.Command{
		Use:   "set [--max-instance-idle D] [--max-run-duration D]",
		Short: "Set the workspace's policy (Owners); 0 removes a limit",
		Long: `Set limits users cannot bypass. --max-instance-idle: a compute instance is
stopped once idle this long; one asking for longer is refused, one asking for
none (or made before) gets this. --max-run-duration: a run asking for longer is
refused, one asking for no limit gets this.`,
		Example: "  paddock workspace set --max-instance-idle 2h --max-run-duration 24h\n  paddock workspace set --max-run-duration 0",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var in api.PolicyUpdate
			if cmd.Flags().Changed("max-instance-idle") {
				in.Policy.MaxIdleTimeBeforeShutdown = &idle
			}
			if cmd.Flags().Changed("max-run-duration") {
				d, err := time.ParseDuration(dur)
				if dur == "0" {
					d, err = 0, nil
				}
				if err != nil || d < 0 {
					return api.Invalid("max-run-duration", "--max-run-duration must be a duration such as 24h or 90m (0 removes the limit), not %q", dur)
				}
				secs := int64(d.Round(time.Second) / time.Second)
				if d > 0 && secs == 0 {
					secs = 1
				}
				in.Policy.MaxRunDurationSeconds = &secs
			}
			if in.Policy.MaxIdleTimeBeforeShutdown == nil && in.Policy.MaxRunDurationSeconds == nil {
				return api.Invalid("flags", "give --max-instance-idle, --max-run-duration or both")
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Workspace, error) {
				return c.UpdateWorkspace(ctx, in)
			}, workspaceTable)
		},
	}
	set.Flags().StringVar(&idle, "max-instance-idle", "", "longest a compute instance may stay idle before it is stopped, e.g. 2h (0: no limit)")
	set.Flags().StringVar(&dur, "max-run-duration", "", "longest a run may run, e.g. 24h (0: no limit)")
	cmd.AddCommand(show, set)
	return cmd
}

func workspaceTable(w io.Writer, ws *api.Workspace) {
	fmt.Fprintf(w, "Workspace:\t%s\n", ws.Name)
	idle := "no limit"
	if ws.Policy.MaxIdleTimeBeforeShutdown != "" {
		idle = ws.Policy.MaxIdleTimeBeforeShutdown
	}
	dur := "no limit"
	if ws.Policy.MaxRunDurationSeconds > 0 {
		dur = (time.Duration(ws.Policy.MaxRunDurationSeconds) * time.Second).String()
	}
	fmt.Fprintf(w, "Max instance idle:\t%s\n", idle)
	fmt.Fprintf(w, "Max run duration:\t%s\n", dur)
}
