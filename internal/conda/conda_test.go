package conda

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

// What Azure ML's CondaDependencies writes, and what users keep in an
// environment.yml.
func TestParse(t *testing.T) {
	got, err := Parse(`# Conda environment specification.
name: project_environment
channels:
  - conda-forge
dependencies:
  - python=3.10.12
  - pip
  - scikit-learn
  - numpy=1.26
  - pip:
    - azureml-defaults
    - requests==2.31.0
prefix: /opt/envs/x
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Name: "project_environment", Channels: []string{"conda-forge"}, Python: "=3.10.12",
		Packages: []string{"scikit-learn", "numpy=1.26"}, Pip: []string{"azureml-defaults", "requests==2.31.0"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("Parse (-want +got):\n%s", d)
	}
	if r := got.Requirements(); r != "azureml-defaults\nrequests==2.31.0\n" {
		t.Fatalf("Requirements = %q", r)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"name: [", "not valid YAML"},
		{"- a\n- b\n", "must be a mapping"},
		{"name: x\nvariables:\n  A: b\n", `key "variables"`},
		{"dependencies: python\n", "must be a list"},
		{"dependencies:\n  - {conda: [x]}\n", "dependency 1"},
		{"dependencies:\n  - python>=three\n", "not a version constraint"},
		{"dependencies:\n  - 'numpy;rm'\n", "not a package name"},
		{"dependencies:\n  - pip:\n    - \"a\\nb\"\n", "one line"},
	} {
		_, err := Parse(c.text)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want Invalid with %q", c.text, err, c.want)
		}
	}
}

func TestPythonMatches(t *testing.T) {
	for _, c := range []struct {
		constraint, version string
		want                bool
	}{
		{"", "3.11.7", true},
		{"3.11", "3.11.7", true},
		{"=3.11", "3.11.7", true},
		{"3.1", "3.11.7", false}, // components, not characters
		{"=3.10", "3.11.7", false},
		{"==3.11.7", "3.11.7", true},
		{"==3.11", "3.11.7", false},
		{"3.11.*", "3.11.0", true},
		{">=3.9", "3.11.7", true},
		{">=3.9,<3.11", "3.11.7", false},
		{"<3.9|>=3.11", "3.11.7", true},
		{"!=3.11.7", "3.11.7", false},
		{">3.11", "3.11.7", true},
		{"<=3.11", "3.11.7", false},
	} {
		got, err := PythonMatches(c.constraint, c.version)
		if err != nil || got != c.want {
			t.Errorf("PythonMatches(%q, %q) = %v, %v; want %v", c.constraint, c.version, got, err, c.want)
		}
	}
}
