// Package pgschema gives a test or a benchmark a PostgreSQL schema of its
// own in a shared database, so that many stores (one per test, one per
// benchmark server) share one PostgreSQL without seeing each other.
package pgschema

import (
	"context"
	"crypto/rand"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// New makes an empty schema of its own in the database base names
// and returns base with its search_path set to it (a store opened on it
// keeps every table, lock and notification channel there), and drop,
// which removes the schema and everything in it. Tests and benchmarks use
// it to share one PostgreSQL.
func New(ctx context.Context, base string) (dsn string, drop func(context.Context) error, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema := "t_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		return "", nil, err
	}
	drop = func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`)
		return err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}
