// Package audit keeps the record of who did what: every mutating API call
// and every refused one, sign-ins, and the policies the server enforced.
// Entries are append-only and chained: each one's hash covers its fields
// and the hash of the entry before it, so editing, inserting or removing
// an entry in the middle breaks the chain and Verify says where.
//
// Record waits until its entry is durable. Entries that arrive together
// share one transaction (group commit), so auditing costs a mutating call
// one commit's wait, not one commit each.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/store"
)

// Outcomes of an audited call.
const (
	OK     = "ok"     // done
	Denied = "denied" // refused: no valid token, or the role does not allow it
	Failed = "failed" // allowed but it did not succeed (bad input, a conflict, an error)
)

// Log appends entries to the store's audit log. Start Run before Record.
type Log struct {
	Store store.Store
	// Clock stamps entries and times retention (default clock.Real).
	Clock clock.Clock
	// Retention, when set, removes entries older than this, checked
	// hourly.
	Retention time.Duration

	reqs chan request
}

type request struct {
	e    store.AuditEntry
	done chan error
}

// Recorder is what records audit entries (the server's handlers, and
// services that enforce policies).
type Recorder interface {
	Record(ctx context.Context, e store.AuditEntry) error
}

// Record appends e (At is set when zero) and returns once it is durable.
func (l *Log) Record(ctx context.Context, e store.AuditEntry) error {
	if e.At.IsZero() {
		e.At = clock.Or(l.Clock).Now()
	}
	r := request{e: e, done: make(chan error, 1)}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Init prepares Record; Run must run for it to return.
func (l *Log) Init() { l.reqs = make(chan request, 1024) }

// Run commits recorded entries in batches until ctx ends, and prunes old
// ones when Retention is set.
func (l *Log) Run(ctx context.Context) {
	prune := clock.Or(l.Clock).NewTicker(time.Hour)
	defer prune.Stop()
	l.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C():
			l.prune(ctx)
		case r := <-l.reqs:
			batch := []request{r}
		more:
			for len(batch) < 512 {
				select {
				case r := <-l.reqs:
					batch = append(batch, r)
				default:
					break more
				}
			}
			entries := make([]store.AuditEntry, len(batch))
			for i, r := range batch {
				entries[i] = r.e
			}
			err := l.Store.AppendAudit(context.WithoutCancel(ctx), entries, Seal)
			for _, r := range batch {
				r.done <- err
			}
		}
	}
}

// prune removes entries older than Retention, recording that it did.
func (l *Log) prune(ctx context.Context) {
	if l.Retention <= 0 {
		return
	}
	now := clock.Or(l.Clock).Now()
	n, err := l.Store.PruneAudit(ctx, now.Add(-l.Retention))
	if err != nil || n == 0 {
		return
	}
	e := store.AuditEntry{At: now, User: "paddock", Action: "audit.prune", Outcome: OK,
		Message: fmt.Sprintf("removed %d entries older than %s (retention)", n, l.Retention)}
	l.Store.AppendAudit(ctx, []store.AuditEntry{e}, Seal)
}

// Seal sets e's Hash from its fields and PrevHash.
func Seal(e *store.AuditEntry) { e.Hash = hashOf(e) }

func hashOf(e *store.AuditEntry) string {
	h := sha256.New()
	for _, f := range []string{e.PrevHash, strconv.FormatInt(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), e.Workspace,
		e.User, e.TokenID, e.Action, e.Target, e.Source, e.Outcome, strconv.Itoa(e.Status), e.Message} {
		// Length-prefixed, so no two field lists hash alike.
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Result is what Verify found, as the API answers it.
type Result = api.AuditVerify

// Verify walks the whole log and checks every entry's hash and its link
// to the one before. The oldest entry kept is trusted as the start (older
// ones may have been pruned by retention).
func Verify(ctx context.Context, st store.Store) (Result, error) {
	var res Result
	var prev *store.AuditEntry
	after := int64(0)
	for {
		page, err := st.AuditEntries(ctx, store.AuditFilter{AfterSeq: after, Limit: 5000})
		if err != nil {
			return res, err
		}
		for i := range page {
			e := &page[i]
			res.Entries++
			if res.FirstSeq == 0 {
				res.FirstSeq = e.Seq
			}
			res.LastSeq = e.Seq
			switch {
			case prev != nil && e.Seq != prev.Seq+1:
				return bad(res, e.Seq, fmt.Sprintf("entries %d to %d are missing", prev.Seq+1, e.Seq-1)), nil
			case prev != nil && e.PrevHash != prev.Hash:
				return bad(res, e.Seq, fmt.Sprintf("entry %d does not follow entry %d: the chain was changed", e.Seq, prev.Seq)), nil
			case hashOf(e) != e.Hash:
				return bad(res, e.Seq, fmt.Sprintf("entry %d was edited: its hash does not match its fields", e.Seq)), nil
			}
			prev = e
		}
		if len(page) < 5000 {
			res.OK = true
			return res, nil
		}
		after = page[len(page)-1].Seq
	}
}

func bad(r Result, seq int64, problem string) Result {
	r.OK, r.BadSeq, r.Problem = false, seq, problem
	return r
}
