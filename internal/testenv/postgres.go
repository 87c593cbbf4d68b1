package testenv

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable holding the DSN of the PostgreSQL the
// tests may use (scripts/test.sh sets it after scripts/dev-postgres.sh).
const PostgresEnv = "PADDOCK_TEST_POSTGRES"

// PostgresSkip is why a PostgreSQL test skips, and what runs it.
const PostgresSkip = "no PostgreSQL: as root, `bash scripts/test.sh` starts one (or `bash scripts/dev-postgres.sh start && eval $(bash scripts/dev-postgres.sh env)`)"

// Postgres returns the DSN of an empty schema of its own in the test
// PostgreSQL (the base DSN with search_path set), dropped with everything
// in it when the test ends. Without PADDOCK_TEST_POSTGRES the test skips.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip(PostgresSkip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", PostgresEnv, err)
	}
	defer conn.Close(context.Background())
	schema := "t_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
