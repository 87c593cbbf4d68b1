// Package storetest is the contract every store.Store implementation must
// pass; each implementation's tests call Run with a constructor.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// Run exercises s; open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open(t)) })
	t.Run("ComputeCRUD", func(t *testing.T) { testComputeCRUD(t, open(t)) })
	t.Run("OptimisticConcurrency", func(t *testing.T) { testOptimistic(t, open(t)) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, open(t)) })
	t.Run("Runs", func(t *testing.T) { testRuns(t, open(t)) })
	t.Run("Nodes", func(t *testing.T) { testNodes(t, open(t)) })
	t.Run("Metrics", func(t *testing.T) { testMetrics(t, open(t)) })
	t.Run("Quotas", func(t *testing.T) { testQuotas(t, open(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open(t)) })
	t.Run("LogCursorUnderConcurrentAppends", func(t *testing.T) { testLogCursor(t, open(t)) })
	t.Run("MetricKinds", func(t *testing.T) { testMetricKinds(t, open(t)) })
	t.Run("RunTags", func(t *testing.T) { testRunTags(t, open(t)) })
	t.Run("Environments", func(t *testing.T) { testEnvironments(t, open(t)) })
	t.Run("LogsBefore", func(t *testing.T) { testLogsBefore(t, open(t)) })
	t.Run("ListRuns", func(t *testing.T) { testListRuns(t, open(t)) })
	t.Run("Identities", func(t *testing.T) { testIdentities(t, open(t)) })
	t.Run("Policy", func(t *testing.T) { testPolicy(t, open(t)) })
}

// testLogs: lines are stored once per (attempt, rank, agent line number),
// the ack is the highest stored, readers follow a cursor, sizes add up.
func testLogs(t *testing.T, s store.Store) {
	if err := s.EnsureWorkspace(ctx(t), "ws"); err != nil {
		t.Fatal(err)
	}
	run := store.Run{Run: api.Run{ID: "run-1", Compute: "local", Status: api.RunRunning, Attempt: 1, CreatedBy: "ana",
		CreatedAt: time.Now().UTC()}, Workspace: "ws", Seq: 1}
	if err := s.SaveBatch(ctx(t), []store.Run{run}, nil, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	lines := []store.LogLine{{ASeq: 1, Stream: "stdout", Time: now, Text: "héllo"}, {ASeq: 2, Stream: "stderr", Time: now, Text: "world"}}
	for range 2 { // resending is safe
		ack, err := s.AppendLogs(ctx(t), "run-1", 1, 0, lines)
		if err != nil || ack != 2 {
			t.Fatalf("AppendLogs = %d, %v; want 2", ack, err)
		}
	}
	if ack, err := s.AppendLogs(ctx(t), "run-1", 1, 1, lines[:1]); err != nil || ack != 1 {
		t.Fatalf("AppendLogs of rank 1 = %d, %v; want 1 (ranks count apart)", ack, err)
	}
	if ack, err := s.LogAck(ctx(t), "run-1", 1, 0); err != nil || ack != 2 {
		t.Fatalf("LogAck = %d, %v", ack, err)
	}
	if ack, err := s.LogAck(ctx(t), "run-1", 2, 0); err != nil || ack != 0 {
		t.Fatalf("LogAck of an attempt without lines = %d, %v", ack, err)
	}
	got, err := s.Logs(ctx(t), "run-1", 0, 10)
	if err != nil || len(got) != 3 || got[0].Text != "héllo" || got[1].Stream != "stderr" {
		t.Fatalf("Logs = %+v, %v", got, err)
	}
	if more, err := s.Logs(ctx(t), "run-1", got[1].Seq, 10); err != nil || len(more) != 1 || more[0].Rank != 1 {
		t.Fatalf("Logs after a cursor = %+v, %v", more, err)
	}
	if n, err := s.LogBytes(ctx(t), "run-1"); err != nil || n != int64(2*len("héllo")+len("world")) {
		t.Fatalf("LogBytes = %d, %v; want the bytes of the three lines", n, err)
	}
	if n, err := s.LogBytes(ctx(t), "run-2"); err != nil || n != 0 {
		t.Fatalf("LogBytes of a run without lines = %d, %v", n, err)
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func testUsers(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := store.User{Name: "ana", CreatedAt: now}
	first := store.Token{ID: "t1", User: "ana", Name: "default", Hash: "h1", CreatedAt: now}
	if err := s.CreateUser(ctx(t), u, first); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx(t), u, store.Token{ID: "t9", User: "ana", Name: "x", Hash: "h9", CreatedAt: now}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("duplicate user: err = %v, want Conflict", err)
	}
	if _, err := s.TokenByHash(ctx(t), "h9"); !errors.Is(err, api.ErrNotFound) {
		t.Fatal("a refused CreateUser left its token behind")
	}
	got, err := s.TokenByHash(ctx(t), "h1")
	if err != nil || got.User != "ana" || got.ID != "t1" || !got.ExpiresAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	if _, err := s.TokenByHash(ctx(t), "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown token: err = %v, want NotFound", err)
	}
	if err := s.PutUser(ctx(t), store.User{Name: "ana", Admin: true, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UserByName(ctx(t), "ana"); err != nil || !got.Admin {
		t.Fatalf("UserByName after PutUser = %+v, %v", got, err)
	}
	if _, err := s.UserByName(ctx(t), "nobody"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown user: err = %v, want NotFound", err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateUser(ctx(t), store.User{Name: "bo", CreatedAt: now}, store.Token{ID: "b1", User: "bo", Name: "laptop", Hash: "hb1", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour)
	if err := s.CreateToken(ctx(t), store.Token{ID: "b2", User: "bo", Name: "ci", Hash: "hb2", CreatedAt: now.Add(time.Second), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx(t), store.Token{ID: "b3", User: "bo", Name: "ci", Hash: "hb3", CreatedAt: now}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a second live token named ci: err = %v, want Conflict", err)
	}
	if got, err := s.TokenByHash(ctx(t), "hb2"); err != nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("expiry = %+v, %v; want %v", got, err, exp)
	}
	used := now.Add(time.Minute)
	if err := s.TouchTokens(ctx(t), map[string]time.Time{"b1": used}); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchTokens(ctx(t), map[string]time.Time{"b1": now}); err != nil { // older: ignored
		t.Fatal(err)
	}
	if got, _ := s.TokenByHash(ctx(t), "hb1"); !got.LastUsedAt.Equal(used) {
		t.Fatalf("last used = %v, want %v", got.LastUsedAt, used)
	}
	list, err := s.Tokens(ctx(t), "bo")
	if err != nil || len(list) != 2 || list[0].ID != "b2" {
		t.Fatalf("Tokens(bo) = %+v, %v; want b2 then b1", list, err)
	}
	if err := s.RevokeToken(ctx(t), "b2", now); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx(t), "b2", now); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("revoking twice: err = %v, want NotFound", err)
	}
	if got, _ := s.TokenByHash(ctx(t), "hb2"); got.RevokedAt.IsZero() {
		t.Fatal("a revoked token reads as live")
	}
	// A revoked token's name is free again; rotation is atomic.
	next := store.Token{ID: "b4", User: "bo", Name: "laptop", Hash: "hb4", CreatedAt: now}
	if err := s.RotateToken(ctx(t), "b1", now, next); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.TokenByHash(ctx(t), "hb1"); got.RevokedAt.IsZero() {
		t.Fatal("the rotated token is still live")
	}
	if err := s.RotateToken(ctx(t), "b1", now, store.Token{ID: "b5", User: "bo", Name: "other", Hash: "hb5", CreatedAt: now}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("rotating a revoked token: err = %v, want NotFound", err)
	}
	if _, err := s.TokenByHash(ctx(t), "hb5"); !errors.Is(err, api.ErrNotFound) {
		t.Fatal("a refused rotation stored its new token")
	}
	// Roles, and deleting a user takes tokens and roles with it.
	if err := s.SetRole(ctx(t), "default", "bo", "Reader"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx(t), "default", "bo", "Contributor"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RoleOf(ctx(t), "default", "bo"); err != nil || r != "Contributor" {
		t.Fatalf("RoleOf = %q, %v", r, err)
	}
	if _, err := s.RoleOf(ctx(t), "other", "bo"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("role in another workspace: err = %v, want NotFound", err)
	}
	if m, err := s.Roles(ctx(t), "default"); err != nil || m["bo"] != "Contributor" {
		t.Fatalf("Roles = %v, %v", m, err)
	}
	if err := s.DeleteUser(ctx(t), "bo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenByHash(ctx(t), "hb4"); !errors.Is(err, api.ErrNotFound) {
		t.Fatal("a deleted user's token is still stored")
	}
	if _, err := s.RoleOf(ctx(t), "default", "bo"); !errors.Is(err, api.ErrNotFound) {
		t.Fatal("a deleted user keeps a role")
	}
	if err := s.DeleteUser(ctx(t), "bo"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("deleting twice: err = %v, want NotFound", err)
	}
	if err := s.SetRole(ctx(t), "default", "x", "Reader"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx(t), "default", "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx(t), "default", "x"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("deleting a missing role: err = %v, want NotFound", err)
	}
}

func sample(ws, name string) store.Compute {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.Compute{
		Workspace: ws, Name: name, Type: "cluster", State: api.StateCreating,
		CreatedBy: "admin", CreatedAt: now, UpdatedAt: now,
		Properties: json.RawMessage(`{"max_nodes":4}`), Secrets: []byte{1, 2, 3}, SecretsSet: []string{"admin_user_password"},
		Status: json.RawMessage(`{"allocation_state":"Steady"}`), Version: 1,
	}
}

func testComputeCRUD(t *testing.T, s store.Store) {
	for _, ws := range []string{"default", "other"} {
		if err := s.EnsureWorkspace(ctx(t), ws); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EnsureWorkspace(ctx(t), "default"); err != nil {
		t.Fatalf("EnsureWorkspace is not idempotent: %v", err)
	}
	if ok, err := s.WorkspaceExists(ctx(t), "nope"); ok || err != nil {
		t.Fatalf("WorkspaceExists(nope) = %v, %v", ok, err)
	}
	c := sample("default", "Cpu-Cluster")
	if err := s.CreateCompute(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCompute(ctx(t), sample("default", "cpu-cluster")); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("case-insensitive duplicate: err = %v, want Conflict", err)
	}
	if err := s.CreateCompute(ctx(t), sample("other", "cpu-cluster")); err != nil {
		t.Fatalf("same name in another workspace: %v", err)
	}
	got, err := s.GetCompute(ctx(t), "default", "CPU-CLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("GetCompute mismatch (-want +got):\n%s", diff)
	}
	if err := s.CreateCompute(ctx(t), sample("default", "aaa")); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListComputes(ctx(t), "default")
	if err != nil || len(list) != 2 || list[0].Name != "aaa" || list[1].Name != "Cpu-Cluster" {
		t.Fatalf("ListComputes = %d items (%v)", len(list), err)
	}
	got.State = api.StateSucceeded
	if err := s.UpdateCompute(ctx(t), &got); err != nil {
		t.Fatal(err)
	}
	pending, err := s.ListComputesInStates(ctx(t), api.StateCreating)
	if err != nil || len(pending) != 2 {
		t.Fatalf("ListComputesInStates(Creating) = %d (%v), want 2 (aaa and other/cpu-cluster)", len(pending), err)
	}
	if err := s.DeleteCompute(ctx(t), "default", "cpu-cluster", got.Version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCompute(ctx(t), "default", "cpu-cluster"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("after delete: err = %v, want NotFound", err)
	}
}

func testOptimistic(t *testing.T, s store.Store) {
	if err := s.EnsureWorkspace(ctx(t), "default"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCompute(ctx(t), sample("default", "c1")); err != nil {
		t.Fatal(err)
	}
	a, _ := s.GetCompute(ctx(t), "default", "c1")
	b, _ := s.GetCompute(ctx(t), "default", "c1")
	a.State = api.StateSucceeded
	if err := s.UpdateCompute(ctx(t), &a); err != nil {
		t.Fatal(err)
	}
	if a.Version != 2 {
		t.Fatalf("version after update = %d, want 2", a.Version)
	}
	b.State = api.StateDeleting
	if err := s.UpdateCompute(ctx(t), &b); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale update: err = %v, want Conflict", err)
	}
	if err := s.DeleteCompute(ctx(t), "default", "c1", 1); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("stale delete: err = %v, want Conflict", err)
	}
	got, _ := s.GetCompute(ctx(t), "default", "c1")
	if got.State != api.StateSucceeded {
		t.Fatalf("state = %s, want the first writer's Succeeded", got.State)
	}
}

func aRun(id string, seq int64, status api.RunStatus) store.Run {
	return store.Run{Run: api.Run{ID: id, Compute: "cpu", Status: status, CreatedBy: "ana",
		CreatedAt: time.Now().UTC(), Command: []string{"python", "train.py"}}, Workspace: "ws", Seq: seq}
}

// testRuns: a batch stores runs and replaces them; what is read back is
// what was written; idempotency keys are unique per workspace and user.
func testRuns(t *testing.T, s store.Store) {
	if err := s.EnsureWorkspace(ctx(t), "ws"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveBatch(ctx(t), nil, nil, nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
	a, b, c := aRun("run-a", 1, api.RunQueued), aRun("run-b", 2, api.RunQueued), aRun("run-c", 3, api.RunCompleted)
	a.IdempotencyKey = "k1"
	exit := 3
	c.ExitCode, c.Compute = &exit, "gpu"
	if err := s.SaveBatch(ctx(t), []store.Run{a, b, c}, nil, nil); err != nil {
		t.Fatal(err)
	}
	a.Status, a.Node, a.Attempt, a.TokenHash = api.RunRunning, "n1", 1, "th"
	a.Attempts = []api.Attempt{{Number: 1, Node: "n1", Status: api.RunRunning, GPUs: []int{0, 1}}}
	a.CancelRequested = "canceled by bo"
	a.Parts = map[string]store.Part{"n1": {Status: api.RunRunning}}
	if err := s.SaveBatch(ctx(t), []store.Run{a}, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRun(ctx(t), "ws", "run-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Fatalf("GetRun after a replace (-want +got):\n%s", diff)
	}
	if _, err := s.GetRun(ctx(t), "other", "run-a"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a run of another workspace: err = %v, want NotFound", err)
	}
	list, err := s.ListRuns(ctx(t), "ws", store.RunFilter{})
	if err != nil || len(list) != 3 || list[0].ID != "run-c" || list[2].ID != "run-a" {
		t.Fatalf("ListRuns = %d runs (%v), want newest first", len(list), err)
	}
	if list, err := s.ListRuns(ctx(t), "ws", store.RunFilter{Compute: "gpu"}); err != nil || len(list) != 1 || *list[0].ExitCode != 3 {
		t.Fatalf("ListRuns(compute gpu) = %+v, %v", list, err)
	}
	if list, err := s.ListRuns(ctx(t), "ws", store.RunFilter{Limit: 1}); err != nil || len(list) != 1 {
		t.Fatalf("ListRuns(limit 1) = %d runs, %v", len(list), err)
	}
	active, err := s.ActiveRuns(ctx(t))
	if err != nil || len(active) != 2 || active[0].ID != "run-a" || active[1].ID != "run-b" {
		t.Fatalf("ActiveRuns = %d runs (%v), want run-a and run-b in submission order", len(active), err)
	}
	if n, err := s.MaxRunSeq(ctx(t)); err != nil || n != 3 {
		t.Fatalf("MaxRunSeq = %d, %v", n, err)
	}
	if r, err := s.RunByIdempotencyKey(ctx(t), "ws", "ana", "k1"); err != nil || r.ID != "run-a" {
		t.Fatalf("RunByIdempotencyKey = %+v, %v", r.ID, err)
	}
	if _, err := s.RunByIdempotencyKey(ctx(t), "ws", "bo", "k1"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("another user's key: err = %v, want NotFound", err)
	}
	dup := aRun("run-d", 4, api.RunQueued)
	dup.IdempotencyKey = "k1"
	if err := s.SaveBatch(ctx(t), []store.Run{dup}, nil, nil); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("a second run with the same key: err = %v, want Conflict", err)
	}
	if _, err := s.GetRun(ctx(t), "ws", "run-d"); !errors.Is(err, api.ErrNotFound) {
		t.Fatal("a refused batch stored its run")
	}
}

// testNodes: nodes are stored, replaced and deleted with the runs of a
// batch, and found by their token.
func testNodes(t *testing.T, s store.Store) {
	now := time.Now().UTC()
	n1 := store.Node{ID: "n1", Workspace: "ws", Compute: "cpu", TokenHash: "h1", CreatedAt: now, State: store.NodeStarting,
		Cores: 2, MemoryGB: 7, GPUs: []store.GPU{{Index: 0, Name: "T4"}}, LastSeen: now, MaxRuns: 2}
	n2 := store.Node{ID: "n2", Workspace: "ws", Compute: "cpu", TokenHash: "h2", CreatedAt: now, State: store.NodeIdle}
	if err := s.SaveBatch(ctx(t), nil, []store.Node{n1, n2}, nil); err != nil {
		t.Fatal(err)
	}
	n1.State, n1.Hostname = store.NodeRunning, "box"
	if err := s.SaveBatch(ctx(t), nil, []store.Node{n1}, []string{"n2"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Nodes(ctx(t))
	if err != nil || len(all) != 1 {
		t.Fatalf("Nodes = %d, %v; want n1 only", len(all), err)
	}
	if diff := cmp.Diff(n1, all[0], cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(time.Microsecond)); diff != "" {
		t.Fatalf("Nodes (-want +got):\n%s", diff)
	}
	if got, err := s.NodeByTokenHash(ctx(t), "h1"); err != nil || got.ID != "n1" {
		t.Fatalf("NodeByTokenHash = %+v, %v", got, err)
	}
	if _, err := s.NodeByTokenHash(ctx(t), "h2"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a deleted node's token: err = %v, want NotFound", err)
	}
}

func testMetrics(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.AddMetrics(ctx(t), "run-1", []api.Metric{{Name: "loss", Step: 2, Value: 0.5, Time: now},
		{Name: "acc", Step: 1, Value: 0.9, Time: now}, {Name: "loss", Step: 1, Value: 0.7, Time: now}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMetrics(ctx(t), "run-1", []api.Metric{{Name: "loss", Step: 2, Value: 0.4, Time: now}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Metrics(ctx(t), "run-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Metric{{Name: "acc", Step: 1, Value: 0.9, Time: now}, {Name: "loss", Step: 1, Value: 0.7, Time: now},
		{Name: "loss", Step: 2, Value: 0.5, Time: now}, {Name: "loss", Step: 2, Value: 0.4, Time: now}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Metrics: by name, step, then arrival (-want +got):\n%s", diff)
	}
	if got, err := s.Metrics(ctx(t), "run-2"); err != nil || len(got) != 0 {
		t.Fatalf("Metrics of another run = %v, %v", got, err)
	}
}

func testQuotas(t *testing.T, s store.Store) {
	if err := s.PutQuota(ctx(t), store.Quota{Workspace: "ws", Family: "", DedicatedCores: 16, LowPriorityCores: store.Unlimited}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutQuota(ctx(t), store.Quota{Workspace: "ws", Family: "gpuFamily", DedicatedCores: 4, LowPriorityCores: 8}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutQuota(ctx(t), store.Quota{Workspace: "ws", Family: "", DedicatedCores: 32, LowPriorityCores: 0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Quotas(ctx(t), "ws")
	want := []store.Quota{{Workspace: "ws", DedicatedCores: 32}, {Workspace: "ws", Family: "gpuFamily", DedicatedCores: 4, LowPriorityCores: 8}}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Fatalf("Quotas (%v) (-want +got):\n%s", err, diff)
	}
}

// testAudit: entries are numbered after the last and chained; filters
// select; pruning removes the old ones.
func testAudit(t *testing.T, s store.Store) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	seal := func(e *store.AuditEntry) { e.Hash = "h" + e.PrevHash + "." + e.Action }
	if err := s.AppendAudit(ctx(t), []store.AuditEntry{
		{At: base, Workspace: "ws", User: "ana", Action: "compute.create", Outcome: "ok", Status: 201},
		{At: base.Add(time.Minute), User: "bo", Action: "token.create", Outcome: "ok", Status: 201},
	}, seal); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx(t), []store.AuditEntry{
		{At: base.Add(2 * time.Minute), Workspace: "other", User: "ana", Action: "run.submit", Outcome: "denied", Status: 403, Message: "no"},
	}, seal); err != nil {
		t.Fatal(err)
	}
	all, err := s.AuditEntries(ctx(t), store.AuditFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("AuditEntries = %d, %v", len(all), err)
	}
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		if i > 0 && e.PrevHash != all[i-1].Hash {
			t.Fatalf("entry %d is not chained to the one before", e.Seq)
		}
	}
	if !all[0].At.Equal(base) {
		t.Fatalf("At = %v, want %v to the nanosecond (the hash covers it)", all[0].At, base)
	}
	for _, c := range []struct {
		f    store.AuditFilter
		want int
	}{
		{store.AuditFilter{Workspace: "ws"}, 2}, // its own and those of no workspace
		{store.AuditFilter{User: "ana"}, 2},
		{store.AuditFilter{Action: "compute."}, 1},
		{store.AuditFilter{Action: "run.submit"}, 1},
		{store.AuditFilter{Since: base.Add(time.Minute)}, 2},
		{store.AuditFilter{AfterSeq: 1, Limit: 1}, 1},
	} {
		got, err := s.AuditEntries(ctx(t), c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("AuditEntries(%+v) = %d entries, %v; want %d", c.f, len(got), err, c.want)
		}
	}
	if n, err := s.PruneAudit(ctx(t), base.Add(90*time.Second)); err != nil || n != 2 {
		t.Fatalf("PruneAudit = %d, %v; want 2", n, err)
	}
	if err := s.AppendAudit(ctx(t), []store.AuditEntry{{At: base.Add(3 * time.Minute), Action: "x"}}, seal); err != nil {
		t.Fatal(err)
	}
	rest, _ := s.AuditEntries(ctx(t), store.AuditFilter{})
	if len(rest) != 2 || rest[1].Seq != 4 || rest[1].PrevHash != rest[0].Hash {
		t.Fatalf("after pruning = %+v; want seq 3 and 4, chained", rest)
	}
}

// testLogCursor: a reader following a run's log by cursor while several
// writers append never skips a line: a line never appears below a cursor
// the reader has already passed.
func testLogCursor(t *testing.T, s store.Store) {
	const writers, batches, per = 4, 25, 10
	done := make(chan error, writers)
	for w := range writers {
		go func() {
			for b := range batches {
				lines := make([]store.LogLine, per)
				for i := range lines {
					lines[i] = store.LogLine{ASeq: int64(b*per + i + 1), Stream: "stdout", Time: time.Now(), Text: "x"}
				}
				if _, err := s.AppendLogs(ctx(t), "run-1", 1, w, lines); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	seen := map[int64]bool{}
	var after int64
	finished := 0
	for finished < writers || len(seen) < writers*batches*per {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished++
		default:
		}
		got, err := s.Logs(ctx(t), "run-1", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range got {
			if seen[l.Seq] {
				t.Fatalf("line %d read twice", l.Seq)
			}
			seen[l.Seq] = true
			after = l.Seq
		}
		if finished == writers && len(got) == 0 {
			break
		}
	}
	if len(seen) != writers*batches*per {
		t.Fatalf("the reader saw %d lines of %d: lines appeared below its cursor", len(seen), writers*batches*per)
	}
}
