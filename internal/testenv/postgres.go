package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/store/pgschema"
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
	dsn, drop, err := pgschema.New(ctx, base)
	if err != nil {
		t.Fatalf("making a schema in %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := drop(ctx); err != nil {
			t.Errorf("dropping the test's schema: %v", err)
		}
	})
	return dsn
}
