// Package testenv builds what the tests of several packages need: a real
// SQLite store in a temporary directory, a secret box, the size catalog,
// provisioned targets, a clock the test moves by hand, a loop that runs for
// the test's length, a deadline-bound wait and a buffer goroutines can
// share. Only tests import it.
package testenv

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/clock"
	"github.com/paddock-ml/paddock/internal/compute"
	"github.com/paddock-ml/paddock/internal/secret"
	"github.com/paddock-ml/paddock/internal/store"
	"github.com/paddock-ml/paddock/internal/store/sqlite"
	"github.com/paddock-ml/paddock/internal/token"
	"github.com/paddock-ml/paddock/internal/users"
)

// Store opens a SQLite store in a temporary directory, with the "default"
// workspace, and closes it when the test ends.
func Store(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "paddock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.EnsureWorkspace(t.Context(), "default"); err != nil {
		t.Fatal(err)
	}
	return st
}

// Box is a secret box with an all-zero key.
func Box(t testing.TB) *secret.Box {
	t.Helper()
	box, err := secret.NewBox(make([]byte, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// Sizes is the built-in size catalog (no admin file).
func Sizes(t testing.TB) *compute.Catalog {
	t.Helper()
	sizes, err := compute.NewCatalog(filepath.Join(t.TempDir(), "sizes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

// Provisioned marks a target Succeeded, as the provisioning controller
// does once it has made it.
func Provisioned(t testing.TB, st store.Store, ws, name string) {
	t.Helper()
	rec, err := st.GetCompute(t.Context(), ws, name)
	if err != nil {
		t.Fatal(err)
	}
	rec.State = api.StateSucceeded
	if err := st.UpdateCompute(t.Context(), &rec); err != nil {
		t.Fatal(err)
	}
}

// Clock is a clock a test moves by hand (Advance), timers included.
type Clock = clock.Fake

// NewClock returns a fake clock at a fixed moment (1 March 2025, noon UTC).
func NewClock() *Clock { return clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// Go runs loop in a goroutine until the test ends; the test's cleanup
// cancels its context and waits for it to return.
func Go(t testing.TB, loop func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() { loop(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Eventually polls cond until it holds, and fails the test when it does
// not within the given time.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer that goroutines and the test may share.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Admin makes the server's admin user in st and returns their token.
func Admin(t testing.TB, st store.Store) string {
	t.Helper()
	tok := token.New()
	if _, err := (&users.Service{Store: st}).EnsureAdmin(t.Context(), "admin", tok); err != nil {
		t.Fatal(err)
	}
	return tok
}
