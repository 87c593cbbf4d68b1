package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/store"
)

// testListRuns: runs are listed newest first, filtered by compute,
// status, experiment and user (together), a page at a time from either
// cursor, and only the workspace's.
func testListRuns(t *testing.T, s store.Store) {
	for _, ws := range []string{"ws", "other"} {
		if err := s.EnsureWorkspace(ctx(t), ws); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	var runs []store.Run
	for i := 1; i <= 12; i++ {
		r := store.Run{Run: api.Run{ID: fmt.Sprintf("run-%02d", i), Compute: []string{"cpu", "gpu"}[i%2],
			Experiment: []string{"mnist", "bert", ""}[i%3], Status: []api.RunStatus{api.RunCompleted, api.RunQueued}[i%4/3],
			CreatedBy: []string{"ana", "bo"}[i%5/4], CreatedAt: now.Add(time.Duration(i) * time.Second)}, Workspace: "ws", Seq: int64(i * 10)}
		runs = append(runs, r)
	}
	runs = append(runs, store.Run{Run: api.Run{ID: "run-elsewhere", Compute: "cpu", Status: api.RunQueued, CreatedBy: "ana", CreatedAt: now},
		Workspace: "other", Seq: 1000})
	if err := s.SaveBatch(ctx(t), runs, nil, nil); err != nil {
		t.Fatal(err)
	}
	ids := func(rs []store.Run) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, c := range []struct {
		desc string
		f    store.RunFilter
		want []string
	}{
		{"all, newest first", store.RunFilter{Limit: 4}, []string{"run-12", "run-11", "run-10", "run-09"}},
		{"the next page", store.RunFilter{Limit: 4, BeforeSeq: 90}, []string{"run-08", "run-07", "run-06", "run-05"}},
		{"the last page", store.RunFilter{Limit: 4, BeforeSeq: 30}, []string{"run-02", "run-01"}},
		{"the page before", store.RunFilter{Limit: 4, AfterSeq: 40}, []string{"run-08", "run-07", "run-06", "run-05"}},
		{"the first page, from before", store.RunFilter{Limit: 4, AfterSeq: 100}, []string{"run-12", "run-11"}},
		{"by compute", store.RunFilter{Compute: "gpu"}, []string{"run-11", "run-09", "run-07", "run-05", "run-03", "run-01"}},
		{"by status", store.RunFilter{Status: api.RunQueued}, []string{"run-11", "run-07", "run-03"}},
		{"by experiment", store.RunFilter{Experiment: "bert"}, []string{"run-10", "run-07", "run-04", "run-01"}},
		{"by user", store.RunFilter{User: "bo"}, []string{"run-09", "run-04"}},
		{"together", store.RunFilter{Compute: "gpu", Experiment: "bert"}, []string{"run-07", "run-01"}},
		{"together, paged", store.RunFilter{Compute: "gpu", Experiment: "bert", BeforeSeq: 70}, []string{"run-01"}},
		{"nothing matches", store.RunFilter{Status: api.RunFailed}, []string{}},
	} {
		got, err := s.ListRuns(ctx(t), "ws", c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.desc, err)
		}
		if diff := cmp.Diff(c.want, ids(got)); diff != "" {
			t.Errorf("%s: ListRuns(%+v) (-want +got):\n%s", c.desc, c.f, diff)
		}
	}
	got, err := s.ListRuns(ctx(t), "ws", store.RunFilter{Limit: 1})
	if err != nil || len(got) != 1 || got[0].Seq != 120 || got[0].Experiment != "mnist" || got[0].CreatedBy != "ana" {
		t.Fatalf("a listed run = %+v, %v; want run-12 whole, with its Seq", got, err)
	}
}

// testLogsBefore: a log's tail, and the lines above a cursor, oldest first.
func testLogsBefore(t *testing.T, s store.Store) {
	if err := s.EnsureWorkspace(ctx(t), "ws"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var lines []store.LogLine
	for i := 1; i <= 10; i++ {
		lines = append(lines, store.LogLine{ASeq: int64(i), Stream: "stdout", Time: now, Text: fmt.Sprintf("line %d", i)})
	}
	for _, id := range []string{"run-a", "run-b"} { // interleaved with another run's
		if _, err := s.AppendLogs(ctx(t), id, 1, 0, lines[:5]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppendLogs(ctx(t), "run-a", 1, 0, lines[5:]); err != nil {
		t.Fatal(err)
	}
	texts := func(ls []api.LogLine) []string {
		out := []string{}
		for _, l := range ls {
			out = append(out, l.Text)
		}
		return out
	}
	tail, err := s.LogsBefore(ctx(t), "run-a", 1<<62, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"line 8", "line 9", "line 10"}, texts(tail)); diff != "" {
		t.Fatalf("the tail (-want +got):\n%s", diff)
	}
	above, err := s.LogsBefore(ctx(t), "run-a", tail[0].Seq, 4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"line 4", "line 5", "line 6", "line 7"}, texts(above)); diff != "" {
		t.Fatalf("the lines above the tail (-want +got):\n%s", diff)
	}
	top, err := s.LogsBefore(ctx(t), "run-a", above[0].Seq, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"line 1", "line 2", "line 3"}, texts(top)); diff != "" {
		t.Fatalf("the top of the log (-want +got):\n%s", diff)
	}
	if none, err := s.LogsBefore(ctx(t), "run-none", 1<<62, 10); err != nil || len(none) != 0 {
		t.Fatalf("LogsBefore of a run without lines = %v, %v", none, err)
	}
}
