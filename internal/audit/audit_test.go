package audit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// countingStore counts the transactions appending entries.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	appends int
	edit    func([]store.AuditEntry) []store.AuditEntry // tampering in tests
}

func (c *countingStore) AppendAudit(ctx context.Context, es []store.AuditEntry, seal func(*store.AuditEntry)) error {
	c.mu.Lock()
	c.appends++
	c.mu.Unlock()
	return c.Store.AppendAudit(ctx, es, seal)
}

func (c *countingStore) AuditEntries(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	es, err := c.Store.AuditEntries(ctx, f)
	if c.edit != nil && err == nil {
		es = c.edit(es)
	}
	return es, err
}

func start(t *testing.T) (*audit.Log, *countingStore) {
	st := &countingStore{Store: testenv.Store(t)}
	l := &audit.Log{Store: st}
	l.Init()
	testenv.Go(t, l.Run)
	return l, st
}

// Concurrent records share transactions, and every one is stored, in one
// unbroken chain.
func TestRecordsShareCommitsAndChain(t *testing.T) {
	l, st := start(t)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Record(t.Context(), store.AuditEntry{User: "bo", Action: "run.submit", Target: fmt.Sprint("runs/", i), Outcome: audit.OK, Status: 201}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st.appends >= 200 {
		t.Errorf("200 concurrent records took %d transactions; they should share", st.appends)
	}
	res, err := audit.Verify(t.Context(), st)
	if err != nil || !res.OK || res.Entries != 200 || res.FirstSeq != 1 || res.LastSeq != 200 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}

// Editing a field, removing an entry or re-linking the chain is found,
// and Verify names the entry.
func TestVerifyFindsTampering(t *testing.T) {
	cases := map[string]struct {
		edit func([]store.AuditEntry) []store.AuditEntry
		bad  int64
		says string
	}{
		"edited field": {func(es []store.AuditEntry) []store.AuditEntry { es[4].User = "mallory"; return es }, 5, "was edited"},
		"edited time":  {func(es []store.AuditEntry) []store.AuditEntry { es[2].At = es[2].At.Add(time.Hour); return es }, 3, "was edited"},
		"removed":      {func(es []store.AuditEntry) []store.AuditEntry { return append(es[:3:3], es[4:]...) }, 5, "missing"},
		"resealed": {func(es []store.AuditEntry) []store.AuditEntry {
			es[6].Message = "nothing to see"
			audit.Seal(&es[6]) // a forger who recomputes one hash breaks the next link
			return es
		}, 8, "does not follow"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l, st := start(t)
			for i := range 10 {
				if err := l.Record(t.Context(), store.AuditEntry{User: "bo", Action: "compute.create", Target: fmt.Sprint("computes/c", i), Outcome: audit.OK}); err != nil {
					t.Fatal(err)
				}
			}
			st.edit = c.edit
			res, err := audit.Verify(t.Context(), st)
			if err != nil || res.OK || res.BadSeq != c.bad || !contains(res.Problem, c.says) {
				t.Fatalf("Verify = %+v, %v; want entry %d %q", res, err, c.bad, c.says)
			}
		})
	}
}

// Retention prunes old entries and says so in the log; the chain still
// verifies from the oldest entry kept.
func TestRetention(t *testing.T) {
	st := &countingStore{Store: testenv.Store(t)}
	clk := testenv.NewClock()
	for i := range 5 {
		st.AppendAudit(t.Context(), []store.AuditEntry{{At: clk.Now().Add(time.Duration(i-10) * 24 * time.Hour), Action: "x", Outcome: audit.OK}}, audit.Seal)
	}
	l := &audit.Log{Store: st, Clock: clk, Retention: 7 * 24 * time.Hour}
	l.Init()
	testenv.Go(t, l.Run)
	testenv.Eventually(t, 5*time.Second, "old entries pruned", func() bool {
		es, _ := st.AuditEntries(t.Context(), store.AuditFilter{})
		return len(es) == 3 && es[2].Action == "audit.prune"
	})
	res, err := audit.Verify(t.Context(), st)
	if err != nil || !res.OK || res.FirstSeq != 4 {
		t.Fatalf("Verify after pruning = %+v, %v", res, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
