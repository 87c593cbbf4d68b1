package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// The sim provider (paddock up --sim): simulated agents speak the real
// agent protocol, advertise the cluster's size and finish a run after the
// seconds it asks for; without --sim a sim cluster fails provisioning.
func TestSimProvider(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up("--sim", "--sim-poll-wait", "1s")
	e.ok("compute", "create", "cluster", "fleet", "--vm-size", "STANDARD_D5_V2", "--max-nodes", "3", "--min-nodes", "3", "--provider", "sim")
	eventually(t, 20*time.Second, "three sim nodes idle", func() bool {
		n := e.nodes("fleet")
		return len(n) == 3 && n[0].State == "idle" && n[0].Cores == 16
	})
	start := time.Now()
	id := e.submit2("fleet", "--env", "SIM_SECONDS=0.5", "--", "python3", "-c", "this never runs")
	if r := e.waitRun(id); r.Status != api.RunCompleted || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Fatalf("sim run: %+v", r)
	}
	if r := e.show(id); r.EndedAt.Sub(*r.StartedAt) < 500*time.Millisecond || time.Since(start) > 15*time.Second {
		t.Errorf("sim run lasted %s (asked 0.5 s)", r.EndedAt.Sub(*r.StartedAt))
	}
}

func TestSimProviderNeedsFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.up()
	r := e.run("compute", "create", "cluster", "fleet", "--vm-size", "STANDARD_D2_V2", "--max-nodes", "1", "--min-nodes", "1", "--provider", "sim")
	if r.code != 1 || !strings.Contains(r.stderr, "ProviderNotAvailable") || !strings.Contains(r.stderr, "paddock up --sim") {
		t.Errorf("create a sim cluster without --sim: exit %d %q", r.code, r.stderr)
	}
}

// --pprof-listen serves runtime profiles on its own address only.
func TestPprofListen(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t)
	s := e.up("--pprof-listen", addr)
	if code, body := httpGet(t, "http://"+addr+"/debug/pprof/", ""); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %d %.300s", code, body)
	}
	if code, _ := httpGet(t, s.url+"/debug/pprof/", ""); code == 200 {
		t.Errorf("the API address serves profiles")
	}
}
