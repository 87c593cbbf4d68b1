package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

var _ store.Importer = (*Store)(nil)

// Count implements store.Importer.
func (s *Store) Count(ctx context.Context, t store.Table) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM `+pgx.Identifier{t.Name}.Sanitize()).Scan(&n)
	return n, s.check(err)
}

// Import implements store.Importer: one transaction, each table sent with
// COPY (the bulk protocol), refused unless every table is empty.
func (s *Store) Import(ctx context.Context, tables []store.Table, rows func(t store.Table, emit func(store.Row) error) error) error {
	return s.check(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Nobody else writes while the copy runs.
		if _, err := tx.Exec(ctx, `LOCK TABLE `+tableList(tables)+` IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		for _, t := range tables {
			var any bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM `+pgx.Identifier{t.Name}.Sanitize()+`)`).Scan(&any); err != nil {
				return err
			}
			if any {
				return api.Conflict("the PostgreSQL database already holds a workspace (table %s is not empty); copy into an empty database", t.Name)
			}
		}
		for _, t := range tables {
			if err := copyTable(ctx, tx, t, rows); err != nil {
				return fmt.Errorf("copying %s: %w", t.Name, err)
			}
			if t.Serial != "" {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE((SELECT MAX(%s) FROM %s), 0) + 1, false)`,
					t.Name, t.Serial, pgx.Identifier{t.Serial}.Sanitize(), pgx.Identifier{t.Name}.Sanitize())); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

func tableList(tables []store.Table) string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t.Name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// copyTable streams one table's rows into COPY, from a goroutine that
// produces them.
func copyTable(ctx context.Context, tx pgx.Tx, t store.Table, rows func(t store.Table, emit func(store.Row) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan []any, 1024)
	errc := make(chan error, 1)
	go func() {
		defer close(ch)
		errc <- rows(t, func(r store.Row) error {
			vals := make([]any, len(r))
			for i, c := range t.Columns {
				vals[i] = toPostgres(r[i], c.Type)
			}
			select {
			case ch <- vals:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, names, &chanSource{ch: ch})
	if err != nil {
		cancel()
		for range ch { // let the producer end
		}
		<-errc
		return err
	}
	return <-errc
}

// chanSource is a pgx.CopyFromSource reading rows from a channel.
type chanSource struct {
	ch  chan []any
	cur []any
}

func (c *chanSource) Next() bool {
	var ok bool
	c.cur, ok = <-c.ch
	return ok
}
func (c *chanSource) Values() ([]any, error) { return c.cur, nil }
func (c *chanSource) Err() error             { return nil }

// toPostgres converts a Row's value to what pgx writes for its column.
func toPostgres(v any, typ store.ColType) any {
	switch typ {
	case store.Text:
		if s, ok := v.(string); ok {
			return clean(s)
		}
	case store.NullTime:
		if t, ok := v.(time.Time); !ok || t.IsZero() {
			return nil
		}
	case store.Bytes:
		if b, ok := v.([]byte); ok && b == nil {
			return nil
		}
	}
	return v
}
