package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/cli"
	"github.com/paddock-ml/paddock/internal/daemon"
	"github.com/paddock-ml/paddock/internal/store/postgres"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/store/storecopy"
	"github.com/spf13/cobra"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Move a workspace's store (SQLite to PostgreSQL)"}
	cmd.AddCommand(newStoreCopyCmd())
	withoutClientFlags(cmd)
	return cmd
}

func newStoreCopyCmd() *cobra.Command {
	var from, to string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "copy --from sqlite:DATA_DIR --to postgres://...",
		Short: "Copy a workspace's store into an empty PostgreSQL database, and verify the copy",
		Long: `Copy everything a server's SQLite store holds (workspaces, targets, runs
with their logs and metrics, nodes, users, tokens, roles, quotas and the
audit log) into an empty PostgreSQL database, in one transaction, then
check that every table has as many rows in the copy and that the audit
log's hash chain holds. A database that holds anything is refused.

Stop the server first. The data dir's files (the secret key, the admin
token, the artifacts) are not in the store: start the servers of the
PostgreSQL store on that data dir (or a copy of it), with
paddock up --store postgres://... --data-dir DATA_DIR.`,
		Example: `  paddock store copy --from sqlite:$HOME/.paddock --to postgres://paddock:secret@db.example.com/paddock`,
		Args:    cli.NoArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, ok := strings.CutPrefix(from, "sqlite:")
			if !ok || dir == "" {
				return api.Invalid("from", "--from must be sqlite:DATA_DIR (the data dir of the server whose store to copy), not %q", from)
			}
			if !postgres.IsDSN(to) {
				return api.Invalid("to", "--to must be a postgres:// URL, not %q", to)
			}
			db := filepath.Join(dir, "paddock.db")
			if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
				db, dir = dir, filepath.Dir(dir)
			}
			if _, err := os.Stat(db); err != nil {
				return api.NotFound("no SQLite store at %s", db)
			}
			if err := daemon.DataDirInUse(dir); err != nil {
				return err
			}
			ctx := cmd.Context()
			src, err := sqlite.Open(ctx, db)
			if err != nil {
				return fmt.Errorf("opening %s: %w", db, err)
			}
			defer src.Close()
			dst, err := postgres.Open(ctx, to, postgres.Options{})
			if err != nil {
				return err
			}
			defer dst.Close()
			res, err := storecopy.Copy(ctx, src, dst, nil)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TABLE\tROWS\tCOPIED\tTIME")
			for _, c := range res.Tables {
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", c.Table, c.Source, c.Copied, c.Duration)
			}
			w.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d rows in %s; every table's count matches; the audit log verifies (%d entries)\n",
				res.Rows, res.Duration, res.AuditEntries)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the store to copy: sqlite:DATA_DIR (required)")
	f.StringVar(&to, "to", "", "the empty PostgreSQL database to copy into: postgres://user:password@host/db (required)")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}
