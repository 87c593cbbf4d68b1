package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clientconfig"
	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list, revoke and rotate your bearer tokens",
		Long: `Bearer tokens are how the CLI, the SDK and scripts sign in. A user may have
several, each with a name (laptop, ci), an optional expiry, and the time it was
last used. The server keeps only their hashes: a token is shown once, when made.
A revoked or expired token is refused within a second.`,
	}
	var expires string
	create := &cobra.Command{
		Use:     "create NAME [--expires 30d]",
		Short:   "Make a token and print it (shown once; keep it safe)",
		Example: "  paddock token create ci --expires 30d",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := api.TokenCreate{Name: args[0]}
			if expires != "" {
				d, err := parseLifetime(expires)
				if err != nil {
					return err
				}
				in.ExpiresInSeconds = int64(d / time.Second)
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Token, error) {
				return c.CreateToken(ctx, in)
			}, func(w io.Writer, t *api.Token) { fmt.Fprintln(w, t.Token) })
		},
	}
	create.Flags().StringVar(&expires, "expires", "", "expire after this long, e.g. 30d, 12h (default: never)")
	var all bool
	list := &cobra.Command{
		Use:   "list [--all]",
		Short: "List your tokens (never their secrets)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Token, error) {
				return c.ListTokens(ctx, all)
			}, tokenTable)
		},
	}
	list.Flags().BoolVar(&all, "all", false, "every user's tokens (the server's admin only)")
	revoke := &cobra.Command{
		Use:   "revoke ID|NAME",
		Short: "Revoke a token: it stops working within a second",
		Args:  exactArgs("ID|NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Token, error) {
				return c.RevokeToken(ctx, args[0])
			}, func(w io.Writer, t *api.Token) { fmt.Fprintf(w, "revoked %s (%s)\n", t.ID, t.Name) })
		},
	}
	cmd.AddCommand(create, list, revoke, rotateCmd(g))
	return cmd
}

// rotateCmd replaces the token the CLI signs in with by a new one, and
// writes the new one to the CLI config when it came from there.
func rotateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rotate-admin",
		Aliases: []string{"rotate"},
		Short:   "Replace the token you sign in with (the admin's, after `paddock up`) and update the CLI config",
		Long: `Replace the token this CLI signs in with by a new one of the same name and
lifetime; the old one stops working. When the token came from the CLI config,
the config is rewritten with the new one; rotating the admin's bootstrap token
also rewrites admin.token in the server's data dir. When the token came from
--token or PADDOCK_TOKEN, the new one is printed instead.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.RotateToken(cmd.Context())
			if err != nil {
				return err
			}
			cfg, path, err := clientconfig.Load()
			if err != nil {
				return err
			}
			if g.token == "" && os.Getenv("PADDOCK_TOKEN") == "" && cfg.Token != "" {
				cfg.Token = t.Token
				if _, err := clientconfig.Save(cfg); err != nil {
					fmt.Fprintln(cmd.OutOrStdout(), t.Token)
					return fmt.Errorf("the token was rotated (the new one is printed above) but the CLI config %s could not be written: %w", path, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "rotated %s; the CLI config %s holds the new token\n", t.Name, path)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "rotated %s; the old token no longer works\n", t.Name)
			return nil
		},
	}
}

// parseLifetime reads a token lifetime: a Go duration (12h, 90m) or whole
// days (30d).
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= time.Second {
		return d, nil
	}
	return 0, api.Invalid("expires", "--expires must be a number of days (30d, at most 3650d) or a duration such as 12h, not %q", s)
}

// tokenTable lists tokens, one a line.
func tokenTable(w io.Writer, ts []api.Token) {
	fmt.Fprintln(w, "ID\tNAME\tUSER\tCREATED\tEXPIRES\tLAST USED\tSTATE")
	for _, t := range ts {
		state := "live"
		switch {
		case t.RevokedAt != nil:
			state = "revoked"
		case t.ExpiresAt != nil && !time.Now().Before(*t.ExpiresAt):
			state = "expired"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.User, age(t.CreatedAt),
			orDash(when(t.ExpiresAt)), orDash(ago(t.LastUsedAt)), state)
	}
}

// when is a time as a date, or "".
func when(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04")
}

// ago is how long ago a time was, or "".
func ago(t *time.Time) string {
	if t == nil {
		return ""
	}
	return age(*t) + " ago"
}
