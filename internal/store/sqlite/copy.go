package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/paddock-ml/paddock/internal/store"
)

var _ store.Exporter = (*Store)(nil)

// Snapshot implements store.Exporter: one read transaction on a reader
// connection, so every table is read as of one moment.
func (s *Store) Snapshot(ctx context.Context) (store.Snapshot, error) {
	conn, err := s.r.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		conn.Close()
		return nil, err
	}
	return &snapshot{conn: conn}, nil
}

type snapshot struct{ conn *sql.Conn }

func (s *snapshot) Close() error {
	s.conn.ExecContext(context.Background(), `ROLLBACK`)
	return s.conn.Close()
}

func (s *snapshot) Count(ctx context.Context, t store.Table) (int64, error) {
	var n int64
	err := s.conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.Name).Scan(&n)
	return n, err
}

func (s *snapshot) Rows(ctx context.Context, t store.Table, emit func(store.Row) error) error {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	order := "rowid"
	if len(t.Key) > 0 {
		order = strings.Join(t.Key, ", ")
	}
	rows, err := s.conn.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+t.Name+` ORDER BY `+order)
	if err != nil {
		return err
	}
	defer rows.Close()
	raw := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make(store.Row, len(t.Columns))
		for i, c := range t.Columns {
			v, err := fromSQLite(raw[i], c.Type)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", t.Name, c.Name, err)
			}
			row[i] = v
		}
		if err := emit(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// fromSQLite converts a column's value as SQLite stores it to a Row's.
func fromSQLite(v any, typ store.ColType) (any, error) {
	text := func() (string, bool) {
		switch x := v.(type) {
		case string:
			return x, true
		case []byte:
			return string(x), true
		}
		return "", false
	}
	switch typ {
	case store.Text, store.JSON:
		if s, ok := text(); ok {
			return s, nil
		}
		if v == nil {
			return "", nil
		}
	case store.Int:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case store.Real:
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	case store.Bool:
		if n, ok := v.(int64); ok {
			return n != 0, nil
		}
	case store.Time, store.NullTime:
		if v == nil && typ == store.NullTime {
			return nil, nil
		}
		if s, ok := text(); ok {
			return parseTS(s), nil
		}
	case store.Bytes:
		switch x := v.(type) {
		case nil:
			return nil, nil
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	}
	return nil, fmt.Errorf("unexpected value %T for type %d", v, typ)
}
