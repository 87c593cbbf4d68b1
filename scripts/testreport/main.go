// Command testreport turns `go test -json` into what `go test` prints
// without -v — a line per package, the output of failed tests and of
// failed builds — and records every skipped test with the reason it gave,
// so scripts/test.sh can end with a summary of what did not run.
//
//	go test -json ./... | go run ./scripts/testreport -skips skips.tsv
//
// Each line of the skips file is "reason<TAB>package<TAB>test"; a test
// whose reason starts "helper stage:" is a stage its parent test runs in a
// child process, and is not counted. It exits 1 when a test or a package
// failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

// skip is one skipped test and why.
type skip struct {
	Reason, Package, Test string
}

// report is what the event stream added up to.
type report struct {
	Passed, Failed, Skipped int
	Skips                   []skip
	Broken                  bool // a package or build failed
}

// helperStage starts the skip reason of a test that only does something
// when its parent test runs it in a child process: not a skip to report.
const helperStage = "helper stage:"

// A t.Skip message as test output: "    file_test.go:30: reason".
var logLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)

// summarize copies the interesting part of the event stream in to out and
// returns the tally.
func summarize(in io.Reader, out io.Writer) (report, error) {
	var rep report
	outputs := map[string][]string{} // package + test → its output so far
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // not an event: go test's own words
			continue
		}
		key := ev.Package + " " + ev.Test
		switch ev.Action {
		case "build-output":
			fmt.Fprint(out, ev.Output)
		case "build-fail":
			rep.Broken = true
		case "output":
			if ev.Test == "" {
				// Package-level lines: keep the verdicts and what a failing
				// package printed outside its tests.
				if !strings.HasPrefix(ev.Output, "=== ") && !strings.HasPrefix(ev.Output, "--- ") && ev.Output != "PASS\n" && ev.Output != "FAIL\n" {
					fmt.Fprint(out, ev.Output)
				}
				continue
			}
			outputs[key] = append(outputs[key], ev.Output)
		case "pass":
			if ev.Test != "" {
				rep.Passed++
			}
			delete(outputs, key)
		case "fail":
			if ev.Test == "" {
				rep.Broken = true
				continue
			}
			rep.Failed++
			fmt.Fprint(out, strings.Join(outputs[key], ""))
			delete(outputs, key)
		case "skip":
			if ev.Test == "" {
				continue // a package without tests
			}
			reason := "no reason given (use t.Skip with one)"
			for _, o := range outputs[key] {
				if m := logLine.FindStringSubmatch(strings.TrimRight(o, "\n")); m != nil {
					reason = m[1]
					break
				}
			}
			delete(outputs, key)
			if strings.HasPrefix(reason, helperStage) {
				continue // it ran, in its parent test's child process
			}
			rep.Skipped++
			rep.Skips = append(rep.Skips, skip{reason, ev.Package, ev.Test})
		}
	}
	return rep, sc.Err()
}

func main() {
	skipsFile := flag.String("skips", "", "append the skipped tests to this file")
	flag.Parse()
	rep, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	fmt.Printf("go test: %d passed, %d failed, %d skipped\n", rep.Passed, rep.Failed, rep.Skipped)
	if *skipsFile != "" {
		f, err := os.OpenFile(*skipsFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(1)
		}
		for _, s := range rep.Skips {
			fmt.Fprintf(f, "%s\t%s\t%s\n", s.Reason, s.Package, s.Test)
		}
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(1)
		}
	}
	if rep.Failed > 0 || rep.Broken {
		os.Exit(1)
	}
}
