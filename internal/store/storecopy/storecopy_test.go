package storecopy

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/audit"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/postgres"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/testenv"

	_ "modernc.org/sqlite"
)

const (
	nRuns        = 10000
	linesPerRun  = 10
	metricsEvery = 10 // every tenth run logged metrics
)

// workspace fills a SQLite store with a workspace of nRuns runs and
// everything else a workspace holds. Runs and the rest go through the
// store; log lines and metrics, for speed, straight into its tables in
// the store's own format.
func workspace(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "paddock.db")
	src, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, ws := range []string{"default", "team-b"} {
		if err := src.EnsureWorkspace(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range []string{"admin", "ana", "bo"} {
		if err := src.CreateUser(ctx, store.User{Name: u, Admin: i == 0, CreatedAt: now},
			store.Token{ID: "tok-" + u, User: u, Name: "default", Hash: "hash-" + u, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.RevokeToken(ctx, "tok-bo", now); err != nil {
		t.Fatal(err)
	}
	if err := src.SetRole(ctx, "default", "ana", "Contributor"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"local", "cpu-cluster", "gpu"} {
		c := store.Compute{Workspace: "default", Name: name, Type: "cluster", State: api.StateSucceeded, CreatedBy: "admin",
			CreatedAt: now, UpdatedAt: now, Properties: json.RawMessage(fmt.Sprintf(`{"max_nodes":%d}`, i+1)),
			Status: json.RawMessage(`{}`), Version: 1}
		if i == 2 {
			c.Secrets, c.SecretsSet = []byte{0, 1, 2, 255}, []string{"admin_user_password"}
			c.Errors = []api.ProvisioningError{{Code: "X", Message: "y"}}
		}
		if err := src.CreateCompute(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.PutQuota(ctx, store.Quota{Workspace: "default", DedicatedCores: 64, LowPriorityCores: store.Unlimited}); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateIdentity(ctx, store.Identity{Workspace: "default", Name: "Blob-Reader", Type: api.IdentityUserAssigned,
		PrincipalID: "p-1", Description: "reads the bucket", CreatedBy: "ana", CreatedAt: now, UpdatedAt: now,
		Secrets: []byte{9, 8, 7}, SecretKeys: []string{"AWS_ACCESS_KEY_ID"}, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutPolicy(ctx, store.Policy{Workspace: "default", MaxIdleSeconds: 600, MaxRunDurationSeconds: 3600,
		UpdatedBy: "admin", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := src.SaveBatch(ctx, nil, []store.Node{{ID: "cpu-cluster-1", Workspace: "default", Compute: "cpu-cluster",
		TokenHash: "nh", CreatedAt: now, State: store.NodeIdle, Cores: 2, MemoryGB: 7}}, nil); err != nil {
		t.Fatal(err)
	}
	exit := 0
	for b := 0; b < nRuns; b += 1000 {
		runs := make([]store.Run, 0, 1000)
		for i := b; i < b+1000; i++ {
			started, ended := now.Add(time.Duration(i)*time.Millisecond), now.Add(time.Duration(i+5)*time.Millisecond)
			r := store.Run{Run: api.Run{ID: fmt.Sprintf("run-%05d", i), Experiment: "exp", Compute: "cpu-cluster",
				Command: []string{"python", "train.py", fmt.Sprint(i)}, Status: api.RunCompleted, Attempt: 1, ExitCode: &exit,
				CreatedBy: "ana", CreatedAt: started, StartedAt: &started, EndedAt: &ended,
				Attempts: []api.Attempt{{Number: 1, Node: "cpu-cluster-1", Status: api.RunCompleted, StartedAt: &started, EndedAt: &ended, ExitCode: &exit}}},
				Workspace: "default", Seq: int64(i + 1), Node: "cpu-cluster-1", IdempotencyKey: fmt.Sprint("k", i)}
			runs = append(runs, r)
		}
		if err := src.SaveBatch(ctx, runs, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := tx.Prepare(`INSERT INTO run_logs(run_id, attempt, rank, aseq, stream, ts, line) VALUES(?,1,0,?,?,?,?)`)
	metrics, _ := tx.Prepare(`INSERT INTO run_metrics(run_id, name, step, value, ts) VALUES(?,?,?,?,?)`)
	ts := now.Format(time.RFC3339Nano)
	for i := range nRuns {
		id := fmt.Sprintf("run-%05d", i)
		for l := 1; l <= linesPerRun; l++ {
			if _, err := logs.Exec(id, l, "stdout", ts, fmt.Sprintf("epoch %d loss %.3f ✓", l, 1/float64(l))); err != nil {
				t.Fatal(err)
			}
		}
		if i%metricsEvery == 0 {
			for step := range 3 {
				if _, err := metrics.Exec(id, "loss", step, 1/float64(step+1), ts); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	entries := make([]store.AuditEntry, 300)
	for i := range entries {
		entries[i] = store.AuditEntry{At: now.Add(time.Duration(i) * time.Nanosecond * 7), Workspace: "default", User: "ana",
			Action: "run.submit", Target: fmt.Sprintf("runs/run-%05d", i), Source: "127.0.0.1", Outcome: "ok", Status: 201}
	}
	if err := src.AppendAudit(ctx, entries, audit.Seal); err != nil {
		t.Fatal(err)
	}
	return src, path
}

func TestCopyAWorkspaceOf10000Runs(t *testing.T) {
	dsn := testenv.Postgres(t)
	src, _ := workspace(t)
	dst, err := postgres.Open(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	start := time.Now()
	res, err := Copy(t.Context(), src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copied %d rows (%d runs, %d log lines) in %s", res.Rows, nRuns, nRuns*linesPerRun, time.Since(start).Round(time.Millisecond))
	counts := map[string]int64{}
	for _, c := range res.Tables {
		counts[c.Table] = c.Copied
	}
	for table, want := range map[string]int64{"runs": nRuns, "run_logs": nRuns * linesPerRun, "run_metrics": nRuns / metricsEvery * 3,
		"users": 3, "tokens": 3, "roles": 1, "computes": 3, "quotas": 1, "nodes": 1, "audit": 300, "workspaces": 2,
		"identities": 1, "workspace_policies": 1} {
		if counts[table] != want {
			t.Errorf("%s: %d rows copied, want %d", table, counts[table], want)
		}
	}
	if res.AuditEntries != 300 {
		t.Errorf("the audit chain verified %d entries", res.AuditEntries)
	}
	// What the copy reads back through the Store is what the original does.
	ctx := t.Context()
	for _, i := range []int{0, 1, 4999, nRuns - 1} {
		id := fmt.Sprintf("run-%05d", i)
		a, err1 := src.GetRun(ctx, "default", id)
		b, err2 := dst.GetRun(ctx, "default", id)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("run %s differs (-sqlite +postgres):\n%s", id, diff)
		}
		la, _ := src.Logs(ctx, id, 0, 100)
		lb, _ := dst.Logs(ctx, id, 0, 100)
		if diff := cmp.Diff(la, lb); diff != "" {
			t.Errorf("logs of %s differ:\n%s", id, diff)
		}
		ma, _ := src.Metrics(ctx, id)
		mb, _ := dst.Metrics(ctx, id)
		if diff := cmp.Diff(ma, mb); diff != "" {
			t.Errorf("metrics of %s differ:\n%s", id, diff)
		}
	}
	for _, name := range []string{"local", "cpu-cluster", "gpu"} {
		a, _ := src.GetCompute(ctx, "default", name)
		b, err := dst.GetCompute(ctx, "default", name)
		if diff := cmp.Diff(a, b, cmpopts.EquateEmpty()); err != nil || diff != "" {
			t.Errorf("target %s differs (%v):\n%s", name, err, diff)
		}
	}
	ia, _ := src.ListIdentities(ctx, "default")
	ib, err := dst.ListIdentities(ctx, "default")
	if diff := cmp.Diff(ia, ib); err != nil || len(ia) != 1 || diff != "" {
		t.Errorf("identities differ (%v):\n%s", err, diff)
	}
	pa, _ := src.Policy(ctx, "default")
	pb, err := dst.Policy(ctx, "default")
	if diff := cmp.Diff(pa, pb); err != nil || pa.MaxIdleSeconds != 600 || diff != "" {
		t.Errorf("the policy differs (%v):\n%s", err, diff)
	}
	ta, _ := src.Tokens(ctx, "")
	tb, _ := dst.Tokens(ctx, "")
	if diff := cmp.Diff(ta, tb, cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Errorf("tokens differ:\n%s", diff)
	}
	if r, err := dst.RunByIdempotencyKey(ctx, "default", "ana", "k77"); err != nil || r.ID != "run-00077" {
		t.Errorf("RunByIdempotencyKey on the copy = %v, %v", r.ID, err)
	}
	if n, _ := dst.MaxRunSeq(ctx); n != nRuns {
		t.Errorf("MaxRunSeq on the copy = %d", n)
	}
	// New lines get cursors after the copied ones.
	if _, err := dst.AppendLogs(ctx, "run-new", 1, 0, []store.LogLine{{ASeq: 1, Stream: "stdout", Time: time.Now(), Text: "after"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.Logs(ctx, "run-new", 0, 10); len(got) != 1 || got[0].Seq <= nRuns*linesPerRun {
		t.Errorf("a new line's cursor is %+v, not after the copied lines", got)
	}
	// A second copy into the same database is refused, and changes nothing.
	if _, err := Copy(ctx, src, dst, nil); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a copy into a database that holds a workspace: err = %v, want Conflict", err)
	}
	if n, _ := dst.Count(ctx, store.Tables[6]); n != nRuns {
		t.Fatalf("after the refused copy: %d runs", n)
	}
}
