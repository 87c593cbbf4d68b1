package main

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testdata/events.json is `go test -json` over a package with a passing,
// a failing, a skipped (with and without a reason, at top level and in a
// subtest) and a parallel test, and a package that does not build.
func TestSummarize(t *testing.T) {
	in, err := os.Open("testdata/events.json")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out strings.Builder
	rep, err := summarize(in, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := `# x/broken [x/broken.test]
broken/b.go:1:28: undefined: x
FAIL	x/broken [build failed]
=== RUN   TestC
    x_test.go:7: hello
    x_test.go:7: boom
--- FAIL: TestC (0.00s)
FAIL	x	0.005s
`
	if d := cmp.Diff(want, out.String()); d != "" {
		t.Errorf("output (-want +got):\n%s", d)
	}
	if rep.Passed != 2 || rep.Failed != 1 || rep.Skipped != 3 || !rep.Broken {
		t.Errorf("tally: %+v", rep)
	}
	wantSkips := []skip{
		{"no reason given (use t.Skip with one)", "x", "TestD"},
		{"sub 1", "x", "TestE/sub"},
		{"no Slurm: run `bash scripts/dev-slurm.sh start`", "x", "TestB"},
	}
	if d := cmp.Diff(wantSkips, rep.Skips); d != "" {
		t.Errorf("skips (-want +got):\n%s", d)
	}
}
