package storetest

import (
	"testing"

	"github.com/paddock-ml/paddock/internal/store"
)

// Columns collects (table, column) pairs of a store's schema, to hold
// against store.Tables with CheckTables.
type Columns map[string]map[string]bool

// Add notes a column of a table.
func (c Columns) Add(table, column string) {
	if c[table] == nil {
		c[table] = map[string]bool{}
	}
	c[table][column] = true
}

// CheckTables fails t unless store.Tables lists exactly the columns of
// have, the schema of the store named by which: a table or column added by
// a migration and left out of store.Tables would be missed by `paddock
// store copy`.
func CheckTables(t *testing.T, which string, have Columns) {
	t.Helper()
	listed := Columns{}
	for _, tb := range store.Tables {
		for _, c := range tb.Columns {
			listed.Add(tb.Name, c.Name)
			if !have[tb.Name][c.Name] {
				t.Errorf("store.Tables lists %s.%s, which the %s schema does not have", tb.Name, c.Name, which)
			}
		}
	}
	for table, cols := range have {
		for c := range cols {
			if !listed[table][c] {
				t.Errorf("column %s.%s of the %s schema is not in store.Tables", table, c, which)
			}
		}
	}
}
