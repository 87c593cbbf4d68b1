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
