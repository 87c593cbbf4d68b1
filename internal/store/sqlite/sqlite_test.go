package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsApplyOnceAndSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureWorkspace(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v, err := s.SchemaVersion(t.Context())
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations))
	}
	if ok, _ := s.WorkspaceExists(t.Context(), "default"); !ok {
		t.Fatal("data lost across reopen")
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES(999, 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(t.Context(), path); err == nil {
		t.Fatal("opened a database from a newer paddock")
	}
}

// A database from before teams keeps its users: each user's one token
// becomes a named token, the admin stays admin, the others become
// Contributors of every workspace.
func TestTeamsMigrationKeepsUsersAndTokens(t *testing.T) {
	s := migrated(t, "CREATE TABLE tokens",
		`INSERT INTO workspaces(name, created_at) VALUES('default', '2026-01-01T00:00:00Z')`,
		`INSERT INTO users(name, admin, token_hash, created_at) VALUES('admin', 1, 'aaaaaaaaaaaaaaaa', '2026-01-01T00:00:00Z')`,
		`INSERT INTO users(name, admin, token_hash, created_at) VALUES('bob', 0, 'bbbbbbbbbbbbbbbb', '2026-01-02T00:00:00Z')`)
	bob, err := s.TokenByHash(t.Context(), "bbbbbbbbbbbbbbbb")
	if err != nil || bob.User != "bob" || bob.Name != "default" || !bob.RevokedAt.IsZero() {
		t.Fatalf("bob's token = %+v, %v", bob, err)
	}
	if admin, err := s.TokenByHash(t.Context(), "aaaaaaaaaaaaaaaa"); err != nil || admin.Name != "admin" {
		t.Fatalf("admin's token = %+v, %v", admin, err)
	}
	if u, err := s.UserByName(t.Context(), "admin"); err != nil || !u.Admin {
		t.Fatalf("admin = %+v, %v", u, err)
	}
	if r, err := s.RoleOf(t.Context(), "default", "bob"); err != nil || r != "Contributor" {
		t.Fatalf("bob's role = %q, %v", r, err)
	}
	if _, err := s.RoleOf(t.Context(), "default", "admin"); err == nil {
		t.Fatal("the admin got a role row; admins are Owner everywhere without one")
	}
}

// Every table of the schema is in store.Tables with the same columns, so
// `paddock store copy` misses nothing.
func TestTablesListEveryColumn(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.QueryContext(t.Context(), `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := storetest.Columns{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		have.Add(table, col)
	}
	storetest.CheckTables(t, "SQLite", have)
}

// A database from before the studio keeps its runs findable by
// experiment: the new column is filled from each run's JSON.
func TestRunFiltersMigrationFillsExperiment(t *testing.T) {
	s := migrated(t, "ADD COLUMN experiment",
		`INSERT INTO workspaces(name, created_at) VALUES('default', '2026-01-01T00:00:00Z')`,
		`INSERT INTO runs(id, workspace, compute, seq, status, created_by, created_at, data) VALUES
			('run-a', 'default', 'local', 1, 'Completed', 'ana', '2026-01-01T00:00:00Z', '{"id":"run-a","experiment":"mnist","compute":"local","status":"Completed"}'),
			('run-b', 'default', 'local', 2, 'Completed', 'ana', '2026-01-01T00:00:01Z', '{"id":"run-b","compute":"local","status":"Completed"}')`)
	rs, err := s.ListRuns(t.Context(), "default", store.RunFilter{Experiment: "mnist"})
	if err != nil || len(rs) != 1 || rs[0].ID != "run-a" {
		t.Fatalf("runs of experiment mnist after the migration: %+v, %v", rs, err)
	}
	if rs, err := s.ListRuns(t.Context(), "default", store.RunFilter{Experiment: ""}); err != nil || len(rs) != 2 {
		t.Fatalf("every run: %d, %v", len(rs), err)
	}
}

// migrated makes a database at the schema from before the migration that
// contains marker, stores data there (stmts), and opens it again with
// every migration: the migration under test runs on data stored before
// it. The store is closed at the end of the test.
func migrated(t *testing.T, marker string, stmts ...string) *Store {
	t.Helper()
	i := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, marker) })
	if i < 0 {
		t.Fatalf("no migration contains %q", marker)
	}
	all := migrations
	migrations = all[:i]
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(t.Context(), path)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := s.w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
