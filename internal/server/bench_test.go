package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/targets"
	"github.com/paddock-ml/paddock/internal/testenv"
)

// newBenchServer is a real API over a real SQLite file with n clusters.
func newBenchServer(b *testing.B, n int) *api.Client {
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	box, _ := secret.NewBox(make([]byte, secret.KeySize))
	sizes, _ := compute.NewCatalog(filepath.Join(dir, "sizes.yaml"))
	ws := &targets.Service{Store: st, Box: box, Sizes: sizes}
	ctx := context.Background()
	if err := ws.EnsureBuiltins(ctx, "default", "admin"); err != nil {
		b.Fatal(err)
	}
	token := testenv.Admin(b, st)
	for i := range n {
		props, _ := json.Marshal(map[string]any{"vm_size": "STANDARD_D2_V2", "max_nodes": 4, "tags": map[string]string{"i": fmt.Sprint(i)}})
		if _, err := ws.CreateCompute(ctx, "default", "admin", api.ComputeCreate{Name: fmt.Sprintf("cluster-%04d-x", i), Type: "cluster", Properties: props}); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(NewAPI(Deps{Targets: ws, Store: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	b.Cleanup(srv.Close)
	return api.NewClient(srv.URL, token, "default")
}

// BenchmarkComputeList1000 is `compute list` over HTTP with 1,000 targets:
// authentication, the store read, JSON encoding and decoding in the client.
func BenchmarkComputeList1000(b *testing.B) {
	c := newBenchServer(b, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		items, err := c.ListComputes(ctx)
		if err != nil || len(items) != 1001 {
			b.Fatalf("list: %d items, %v", len(items), err)
		}
	}
}

// BenchmarkComputeShow is `compute show` of one target among 1,000.
func BenchmarkComputeShow(b *testing.B) {
	c := newBenchServer(b, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.GetCompute(ctx, "cluster-0500-x"); err != nil {
			b.Fatal(err)
		}
	}
}
