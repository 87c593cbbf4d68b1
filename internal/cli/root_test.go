package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// groups lists the command path (without "paddock") of every command that
// has subcommands, the root first, walking the whole tree: a group added
// later is covered without editing this test.
func groups(c *cobra.Command, path []string) [][]string {
	var out [][]string
	if c.HasSubCommands() {
		out = append(out, path)
	}
	for _, sub := range c.Commands() {
		out = append(out, groups(sub, append(append([]string(nil), path...), sub.Name()))...)
	}
	return out
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// A typo must not pass: an unknown command or subcommand under any group
// exits 2 with "unknown command X" (cobra printed the group's help and
// exited 0, and 1 at the top).
func TestUnknownSubcommandOfEveryGroupExits2(t *testing.T) {
	all := groups(newRoot(&globals{}), nil)
	if len(all) < 5 {
		t.Fatalf("found only %d command groups: %q", len(all), all)
	}
	for _, g := range all {
		args := append(append([]string(nil), g...), "frobnicate", "lake")
		code, stdout, stderr := runMain(args...)
		path := strings.TrimSpace("paddock " + strings.Join(g, " "))
		want := `error: unknown command "frobnicate" for "` + path + `"`
		if code != 2 || !strings.HasPrefix(stderr, want) || stdout != "" {
			t.Errorf("paddock %s: exit %d, stdout %q, stderr %q; want exit 2 and %s", strings.Join(args, " "), code, stdout, stderr, want)
		}
		// With no subcommand, a group shows its help.
		if code, stdout, _ := runMain(g...); code != 0 || !strings.Contains(stdout, "Available Commands:") {
			t.Errorf("paddock %s: exit %d, stdout %q; want its help", strings.Join(g, " "), code, stdout)
		}
	}
}

func TestUnknownCommandSuggestsTheNearest(t *testing.T) {
	if code, stdout, _ := runMain("help", "compute", "create"); code != 0 || !strings.Contains(stdout, "paddock compute create") {
		t.Errorf("paddock help compute create: exit %d, %q", code, stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compute", "craete"}, `unknown command "craete" for "paddock compute"; did you mean "create"?`},
		{[]string{"compute", "attach", "hdfs", "lake"}, `unknown command "hdfs" for "paddock compute attach"; see 'paddock compute attach --help'`},
		{[]string{"runn"}, `unknown command "runn" for "paddock"; did you mean "run"?`},
		{[]string{"run", "downlod", "x"}, `did you mean "download"?`},
		{[]string{"help", "compute", "frobnicate"}, `unknown help topic "compute frobnicate"`},
	} {
		code, _, stderr := runMain(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("paddock %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
