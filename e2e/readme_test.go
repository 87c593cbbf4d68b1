package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tourStep is one command of the README's console blocks (a line after
// "$ ", with its continuation and here-document lines) and the lines the
// README shows it printing.
type tourStep struct {
	line int // in README.md
	cmd  string
	want []string
}

var heredoc = regexp.MustCompile(`<<-?\s*'?"?(\w+)'?"?`)

// readmeTour reads the commands of README.md's ```console blocks.
func readmeTour(t *testing.T) []tourStep {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []tourStep
	in, more, until := false, false, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !in:
			in = strings.TrimSpace(line) == "```console"
		case more || until != "": // a continued command or a here-document
			st := &steps[len(steps)-1]
			st.cmd += "\n" + line
			if until != "" {
				if line == until {
					until = ""
				}
			} else {
				more = strings.HasSuffix(line, `\`)
			}
		case strings.HasPrefix(line, "```"):
			in = false
		case strings.HasPrefix(line, "$ "):
			cmd := strings.TrimPrefix(line, "$ ")
			steps = append(steps, tourStep{line: n, cmd: cmd})
			more = strings.HasSuffix(cmd, `\`)
			if m := heredoc.FindStringSubmatch(cmd); m != nil {
				until = m[1]
			}
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "...":
		case len(steps) > 0:
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
		}
	}
	if len(steps) < 10 {
		t.Fatalf("found %d commands in README.md's console blocks; the tour parser no longer reads it", len(steps))
	}
	return steps
}

var (
	wantNumber = regexp.MustCompile(`[0-9][0-9.]*[a-z]*`)
	wantSpace  = regexp.MustCompile(`\s+`)
	// Progress lines ("cpu-cluster: Creating (0.0s)") show on a terminal
	// only; TestWaitingSaysWhy covers them.
	progressLine = regexp.MustCompile(`^\S+: \w+ \([0-9.]+s\)$`)
)

// wantPattern turns a line the README shows into a pattern for the real
// output: "..." is anything, numbers (counts, sizes, ages, addresses) are
// any number, runs of spaces any spaces; a line that is only a number (an
// exit code) must be that number.
func wantPattern(line string) *regexp.Regexp {
	line = strings.TrimSpace(line)
	if _, err := strconv.Atoi(line); err == nil {
		return regexp.MustCompile(`(?m)^` + line + `$`)
	}
	var b strings.Builder
	for i, part := range strings.Split(line, "...") {
		if i > 0 {
			b.WriteString(`.*`)
		}
		last := 0
		for _, m := range wantNumber.FindAllStringIndex(part, -1) {
			b.WriteString(regexp.QuoteMeta(part[last:m[0]]))
			b.WriteString(`[0-9][0-9.]*[a-z]*`)
			last = m[1]
		}
		b.WriteString(regexp.QuoteMeta(part[last:]))
	}
	return regexp.MustCompile(wantSpace.ReplaceAllString(b.String(), `\s+`))
}

// The README's tour works when pasted: every command of its console blocks
// runs, in order, in one shell with the built paddock on PATH against a
// real server; each exits 0 (or fails, where the README shows an error)
// and prints what the README shows, give or take ids, ages and counts.
// A command, flag or output the CLI no longer has fails here.
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	steps := readmeTour(t)
	e := newEnv(t)
	e.up()
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "paddock")); err != nil {
		t.Fatal(err)
	}
	work, out := t.TempDir(), t.TempDir()
	var script strings.Builder
	script.WriteString("last=0\n")
	for i, st := range steps {
		// (exit $last) gives `echo $?` the code of the command before it.
		fmt.Fprintf(&script, "(exit $last); { %s\n} >%[2]s/%[3]d.out 2>%[2]s/%[3]d.err; last=$?; echo $last >%[2]s/%[3]d.rc\n", st.cmd, out, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir = work
	sh.Env = append(e.environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if output, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the tour's shell: %v\n%s", err, output)
	}
	for i, st := range steps {
		rcText, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".rc"))
		if err != nil {
			t.Fatalf("README.md:%d `%s` did not run: %v", st.line, st.cmd, err)
		}
		rc, _ := strconv.Atoi(strings.TrimSpace(string(rcText)))
		stdout, _ := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".out"))
		stderr, _ := os.ReadFile(filepath.Join(out, strconv.Itoa(i)+".err"))
		got := string(stdout) + string(stderr)
		fails := false
		for _, w := range st.want {
			fails = fails || strings.HasPrefix(w, "error: ")
		}
		switch {
		case rc != 0 && !fails:
			t.Fatalf("README.md:%d `%s` exited %d:\n%s", st.line, st.cmd, rc, got)
		case rc == 0 && fails:
			t.Fatalf("README.md:%d `%s` succeeded; the README shows it failing:\n%s", st.line, st.cmd, got)
		}
		for _, w := range st.want {
			if progressLine.MatchString(strings.TrimSpace(w)) {
				continue
			}
			if !wantPattern(w).MatchString(got) {
				t.Errorf("README.md:%d `%s` did not print %q; it printed:\n%s", st.line, st.cmd, w, got)
			}
		}
	}
}
