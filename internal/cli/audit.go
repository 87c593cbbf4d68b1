package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the audit log: who did what, when, from where (Owners)",
		Long: `The audit log records every call that changes something, every refused call
and sign-ins (a token's first use, then hourly), with who, what, on what, when,
from which address and the outcome. Entries are append-only and each is hashed
with the one before, so an edited, inserted or removed entry is detected by
` + "`paddock audit verify`" + `. Entries older than ` + "`paddock up --audit-retention-days`" + ` go.`,
	}
	var since, user, action string
	var limit int
	var after int64
	list := &cobra.Command{
		Use:     "list [--since 1h|TIME] [--user NAME] [--action ACTION]",
		Short:   "List audit entries, oldest first",
		Example: "  paddock audit list --since 24h --action compute.\n  paddock audit list --user bob -o json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := api.AuditQuery{User: user, Action: action, Limit: limit, After: after}
			if since != "" {
				t, err := parseSince(since)
				if err != nil {
					return err
				}
				q.Since = t
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.AuditEntry, error) {
				return c.Audit(ctx, q)
			}, auditTable)
		},
	}
	list.Flags().StringVar(&since, "since", "", "entries from this long ago (1h, 7d) or this time (RFC 3339)")
	list.Flags().StringVar(&user, "user", "", "only this user's entries")
	list.Flags().StringVar(&action, "action", "", "only this action (run.cancel), or a family ending in a dot (compute.)")
	list.Flags().IntVar(&limit, "limit", 1000, "at most this many entries")
	list.Flags().Int64Var(&after, "after", 0, "only entries after this number (to page, or to copy new entries elsewhere)")
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain; exit 1 when it was tampered with",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if err := emit(cmd.OutOrStdout(), g.output, res, func(w io.Writer) {
				if res.OK {
					fmt.Fprintf(w, "ok: %d entries (%d to %d), chain intact\n", res.Entries, res.FirstSeq, res.LastSeq)
				}
			}); err != nil {
				return err
			}
			if !res.OK {
				return fmt.Errorf("the audit log was tampered with at entry %d: %s", res.BadSeq, res.Problem)
			}
			return nil
		},
	}
	cmd.AddCommand(list, verify)
	return cmd
}

// parseSince reads --since: a duration ago (90m, 7d) or an RFC 3339 time.
func parseSince(s string) (time.Time, error) {
	if d, err := parseLifetime(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, api.Invalid("since", "--since must be a duration ago (90m, 7d) or an RFC 3339 time (2026-11-30T08:00:00Z), not %q", s)
}

// auditTable lists audit entries, one a line.
func auditTable(w io.Writer, es []api.AuditEntry) {
	fmt.Fprintln(w, "SEQ\tTIME\tUSER\tACTION\tTARGET\tOUTCOME\tSOURCE\tMESSAGE")
	for _, e := range es {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Local().Format("2006-01-02 15:04:05"), orDash(e.User),
			e.Action, orDash(e.Target), e.Outcome, e.Source, e.Message)
	}
}
