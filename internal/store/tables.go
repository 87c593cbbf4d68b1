package store

import "context"

// The tables of a workspace's store, in a form both stores read and write
// row by row, so that `paddock store copy` moves a workspace from one to
// the other whole. A table added by a migration is added here too (the
// stores' tests check that every table of theirs is listed).

// ColType is how a column's value is carried in a Row.
type ColType int

// Column types, and the Go type of their values in a Row.
const (
	Text     ColType = iota // string
	Int                     // int64
	Real                    // float64
	Bool                    // bool
	Time                    // time.Time
	NullTime                // time.Time, or nil for NULL
	Bytes                   // []byte, or nil for NULL
	JSON                    // string holding JSON
)

// Column is one column of a Table.
type Column struct {
	Name string
	Type ColType
}

// Table is one table, its columns as both stores name them.
type Table struct {
	Name    string
	Columns []Column
	// Key orders the rows (the primary key); empty: the order rows were
	// added in (run_metrics, whose order breaks ties between equal steps).
	Key []string
	// Serial is the column numbered by the database (run_logs' cursor),
	// whose counter must go on after the rows copied; "" for none.
	Serial string
}

// Row is one row of a Table: a value per column, of its ColType's Go type.
type Row []any

func cols(spec ...any) []Column {
	out := make([]Column, 0, len(spec)/2)
	for i := 0; i < len(spec); i += 2 {
		out = append(out, Column{Name: spec[i].(string), Type: spec[i+1].(ColType)})
	}
	return out
}

// Tables are every table of a workspace's store, in an order that keeps
// references valid (workspaces first).
var Tables = []Table{
	{Name: "workspaces", Key: []string{"name"}, Columns: cols("name", Text, "created_at", Time)},
	{Name: "users", Key: []string{"name"}, Columns: cols("name", Text, "admin", Bool, "created_at", Time)},
	{Name: "tokens", Key: []string{"id"}, Columns: cols("id", Text, "user_name", Text, "name", Text, "hash", Text,
		"created_at", Time, "expires_at", NullTime, "last_used_at", NullTime, "revoked_at", NullTime)},
	{Name: "roles", Key: []string{"workspace", "user_name"}, Columns: cols("workspace", Text, "user_name", Text, "role", Text)},
	{Name: "computes", Key: []string{"workspace", "name_key"}, Columns: cols("workspace", Text, "name_key", Text, "name", Text,
		"type", Text, "state", Text, "errors", JSON, "created_by", Text, "created_at", Time, "updated_at", Time,
		"properties", JSON, "secrets", Bytes, "secrets_set", JSON, "status", JSON, "version", Int)},
	{Name: "quotas", Key: []string{"workspace", "family"}, Columns: cols("workspace", Text, "family", Text,
		"dedicated_cores", Int, "lowpriority_cores", Int)},
	{Name: "runs", Key: []string{"id"}, Columns: cols("id", Text, "workspace", Text, "compute", Text, "seq", Int,
		"status", Text, "node", Text, "token_hash", Text, "idem_key", Text, "created_by", Text, "created_at", Time, "data", JSON,
		"experiment", Text)},
	{Name: "run_tags", Key: []string{"run_id", "key"}, Columns: cols("run_id", Text, "key", Text, "value", Text)},
	{Name: "run_logs", Key: []string{"seq"}, Serial: "seq", Columns: cols("seq", Int, "run_id", Text, "attempt", Int, "rank", Int,
		"aseq", Int, "stream", Text, "ts", Time, "line", Text)},
	{Name: "run_metrics", Columns: cols("run_id", Text, "name", Text, "step", Int, "value", Real, "ts", Time,
		"kind", Text, "text", Text)},
	{Name: "environments", Key: []string{"workspace", "name_key", "version"}, Columns: cols("workspace", Text, "name_key", Text,
		"version", Int, "name", Text, "data", JSON, "created_by", Text, "created_at", Time)},
	{Name: "nodes", Key: []string{"id"}, Columns: cols("id", Text, "workspace", Text, "compute", Text, "token_hash", Text,
		"created_at", Time, "data", JSON)},
	{Name: "audit", Key: []string{"seq"}, Columns: cols("seq", Int, "at", Text, "workspace", Text, "user_name", Text,
		"token_id", Text, "action", Text, "target", Text, "source", Text, "outcome", Text, "status", Int,
		"message", Text, "prev_hash", Text, "hash", Text)},
	{Name: "identities", Key: []string{"workspace", "type", "name_key"}, Columns: cols("workspace", Text, "type", Text, "name_key", Text,
		"name", Text, "principal_id", Text, "target", Text, "description", Text, "created_by", Text, "created_at", Time,
		"updated_at", Time, "secrets", Bytes, "secret_keys", JSON, "version", Int)},
	{Name: "workspace_policies", Key: []string{"workspace"}, Columns: cols("workspace", Text, "max_idle_seconds", Int,
		"max_run_duration_seconds", Int, "updated_by", Text, "updated_at", Time)},
}

// Exporter is implemented by stores a workspace can be copied from.
type Exporter interface {
	// Snapshot opens a consistent, read-only view of every table.
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is a consistent view of a store's tables.
type Snapshot interface {
	// Count is how many rows a table has.
	Count(ctx context.Context, t Table) (int64, error)
	// Rows calls emit with each row of a table, in Key order.
	Rows(ctx context.Context, t Table, emit func(Row) error) error
	Close() error
}

// Importer is implemented by stores a workspace can be copied into.
type Importer interface {
	// Import fills an empty store with the rows each table's rows
	// function produces, in one transaction: all or nothing. rows calls
	// emit for each row of the table; next tables' counters (Serial) go
	// on after the largest value copied. A store that holds anything is
	// refused with api.ErrConflict.
	Import(ctx context.Context, tables []Table, rows func(t Table, emit func(Row) error) error) error
	// Count is how many rows a table has.
	Count(ctx context.Context, t Table) (int64, error)
}
