// Package storecopy moves a workspace from one store to another (`paddock
// store copy`): every table, row for row, into an empty store in one
// transaction, then checks that each table has as many rows in the copy as
// in the original and that the audit log's hash chain still holds.
package storecopy

import (
	"context"
	"fmt"
	"time"

	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/store"
)

// Count is one table's rows in the original and in the copy.
type Count struct {
	Table    string `json:"table"`
	Source   int64  `json:"source"`
	Copied   int64  `json:"copied"`
	Duration string `json:"duration"`
}

// Result is what a copy did.
type Result struct {
	Tables       []Count `json:"tables"`
	Rows         int64   `json:"rows"`
	AuditEntries int     `json:"audit_entries"`
	Duration     string  `json:"duration"`
}

// Copy copies every table of from into to, which must be empty, and
// verifies the copy. progress, when set, is told of each table as it is
// done.
func Copy(ctx context.Context, from store.Exporter, to store.Importer, progress func(Count)) (Result, error) {
	start := time.Now()
	var res Result
	snap, err := from.Snapshot(ctx)
	if err != nil {
		return res, fmt.Errorf("reading the source store: %w", err)
	}
	defer snap.Close()
	source := map[string]int64{}
	for _, t := range store.Tables {
		n, err := snap.Count(ctx, t)
		if err != nil {
			return res, fmt.Errorf("counting %s: %w", t.Name, err)
		}
		source[t.Name] = n
	}
	took := map[string]time.Duration{}
	err = to.Import(ctx, store.Tables, func(t store.Table, emit func(store.Row) error) error {
		began := time.Now()
		var n int64
		err := snap.Rows(ctx, t, func(r store.Row) error {
			n++
			return emit(r)
		})
		took[t.Name] = time.Since(began)
		if err == nil && n != source[t.Name] {
			err = fmt.Errorf("%s: read %d rows but counted %d", t.Name, n, source[t.Name])
		}
		return err
	})
	if err != nil {
		return res, err
	}
	for _, t := range store.Tables {
		n, err := to.Count(ctx, t)
		if err != nil {
			return res, fmt.Errorf("counting the copy of %s: %w", t.Name, err)
		}
		c := Count{Table: t.Name, Source: source[t.Name], Copied: n, Duration: took[t.Name].Round(time.Millisecond).String()}
		res.Tables = append(res.Tables, c)
		res.Rows += n
		if progress != nil {
			progress(c)
		}
		if n != source[t.Name] {
			return res, fmt.Errorf("the copy of %s has %d rows, the original %d", t.Name, n, source[t.Name])
		}
	}
	if st, ok := to.(store.Store); ok {
		v, err := audit.Verify(ctx, st)
		if err != nil {
			return res, fmt.Errorf("verifying the copied audit log: %w", err)
		}
		if !v.OK {
			return res, fmt.Errorf("the copied audit log does not verify: %s", v.Problem)
		}
		res.AuditEntries = v.Entries
	}
	res.Duration = time.Since(start).Round(time.Millisecond).String()
	return res, nil
}
