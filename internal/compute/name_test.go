package compute_test

import (
	"strings"
	"testing"

	"github.com/paddock-ml/paddock/internal/compute"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	valid := []string{
		"abc",
		"cpu-cluster",
		"A1-b2c",
		"gpu-1a",
		"a--b",
		"abc123",
		"gpu1",
		"locals",
		"my-local",
		strings.Repeat("a", 24),
		"a" + strings.Repeat("-b", 11) + "c", // 24 chars with dashes
	}
	for _, name := range valid {
		t.Run("valid/"+name, func(t *testing.T) {
			t.Parallel()
			if err := compute.ValidateName(name); err != nil {
				t.Fatalf("ValidateName(%q) = %v, want nil", name, err)
			}
		})
	}

	invalid := []struct {
		desc, name, msg string // msg: a word the message must contain
	}{
		{"empty", "", "required"},
		{"one char", "a", "3 to 24"},
		{"two chars", "ab", "3 to 24"},
		{"25 chars", strings.Repeat("a", 25), "3 to 24"},
		{"starts with digit", "1abc", "start with a letter"},
		{"starts with dash", "-abc", "start with a letter"},
		{"underscore", "cpu_cluster", "only letters"},
		{"dot", "cpu.cluster", "only letters"},
		{"space", "cpu cluster", "only letters"},
		{"trailing newline", "cpu\n", "only letters"},
		{"non-ASCII letter", "caf\u00e9", "only letters"},
		{"ends in dash", "abc-", "must not end"},
		{"ends in dash digit", "gpu-1", "must not end"},
		{"ends in dash digits", "cpu-cluster-0042", "must not end"},
		{"ends in double dash", "abc--", "must not end"},
		{"reserved local", "local", "reserved"},
		{"reserved LOCAL", "LOCAL", "reserved"},
		{"reserved Local", "Local", "reserved"},
		{"reserved lOcAl", "lOcAl", "reserved"},
	}
	for _, tc := range invalid {
		t.Run("invalid/"+tc.desc, func(t *testing.T) {
			t.Parallel()
			ae := wantInvalid(t, compute.ValidateName(tc.name), "name")
			if !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", ae.Message, tc.msg)
			}
		})
	}
}

// nameRule is the documented name rule written out by hand, to check
// ValidateName's regular expressions against: 3 to 24 ASCII letters,
// digits and '-', a letter first, not ending in '-' followed only by
// digits (or in '-'), and not "local" in any case.
func nameRule(name string) bool {
	if len(name) < 3 || len(name) > 24 || strings.EqualFold(name, compute.LocalName) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		switch {
		case i == 0 && !letter:
			return false
		case !letter && !('0' <= c && c <= '9') && c != '-':
			return false
		}
	}
	return !strings.HasSuffix(strings.TrimRight(name, "0123456789"), "-")
}

// FuzzValidateName checks ValidateName against the rule written out by
// hand, and that a refusal is an Invalid error naming the name field.
// Seeds are in testdata/fuzz/FuzzValidateName/.
func FuzzValidateName(f *testing.F) {
	f.Fuzz(func(t *testing.T, name string) {
		err := compute.ValidateName(name)
		if ok := nameRule(name); ok != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, but the rule says valid = %v", name, err, ok)
		}
		if err != nil {
			wantInvalid(t, err, "name")
		}
	})
}
