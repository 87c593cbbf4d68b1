package e2e

import (
	"testing"
)

// BenchmarkColdStart measures `paddock up` on a fresh data dir, from exec
// until it serves: creating the database, the secret key, the admin token
// and the config included.
func BenchmarkColdStart(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b)
		b.StartTimer()
		s := e.up()
		b.StopTimer()
		s.kill()
		b.StartTimer()
	}
}

// BenchmarkWarmStart measures `paddock up` on an existing data dir.
func BenchmarkWarmStart(b *testing.B) {
	e := newEnv(b)
	e.up().kill()
	for b.Loop() {
		s := e.up()
		b.StopTimer()
		s.kill()
		b.StartTimer()
	}
}
