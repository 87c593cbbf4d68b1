// Package conda reads conda environment files (environment.yml, what Azure
// ML's CondaDependencies writes): the python version they ask for, their
// conda packages and their pip packages. Runs with such a file get a venv
// with its pip packages on a node whose python3 meets the version, or a
// real conda environment where the node has conda or micromamba.
package conda

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"sigs.k8s.io/yaml"
)

// Spec is what an environment file asks for.
type Spec struct {
	Name     string
	Channels []string
	// Python is the version constraint of the python dependency ("3.10",
	// ">=3.9,<3.13", "3.10.*"); empty when the file does not name python.
	Python string
	// Packages are the conda packages other than python and pip, as
	// written ("scikit-learn", "numpy=1.26").
	Packages []string
	// Pip are the pip requirements, one per line of a requirements file.
	Pip []string
}

// field is the error's field in a run submission.
const field = "environment.conda"

// packageName is a conda package spec: a name, then a version and build.
var packageName = regexp.MustCompile(`^([A-Za-z0-9_.+-]+)([ 0-9A-Za-z_.*+!,|<>=~-]*)$`)

// Parse reads the text of an environment file. Keys other than name,
// channels, dependencies and prefix (ignored: the node chooses where
// environments go) are refused, so nothing in the file is silently
// dropped.
func Parse(text string) (Spec, error) {
	js, err := yaml.YAMLToJSON([]byte(text))
	if err != nil {
		return Spec{}, api.Invalid(field, "the conda environment file is not valid YAML: %v", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(js, &doc); err != nil || doc == nil {
		return Spec{}, api.Invalid(field, "the conda environment file must be a mapping with name, channels and dependencies")
	}
	var s Spec
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := doc[k]
		switch k {
		case "name":
			if err := json.Unmarshal(v, &s.Name); err != nil {
				return Spec{}, api.Invalid(field, "name must be a string")
			}
		case "prefix":
		case "channels":
			if err := json.Unmarshal(v, &s.Channels); err != nil {
				return Spec{}, api.Invalid(field, "channels must be a list of channel names")
			}
		case "dependencies":
			if err := s.dependencies(v); err != nil {
				return Spec{}, err
			}
		default:
			return Spec{}, api.Invalid(field, "the conda environment file has key %q, which Paddock does not use (it reads name, channels and dependencies)", k)
		}
	}
	return s, nil
}

func (s *Spec) dependencies(raw json.RawMessage) error {
	var deps []json.RawMessage
	if err := json.Unmarshal(raw, &deps); err != nil {
		return api.Invalid(field, "dependencies must be a list of packages (and a pip: list)")
	}
	for i, d := range deps {
		var name string
		if json.Unmarshal(d, &name) == nil {
			if err := s.condaPackage(strings.TrimSpace(name)); err != nil {
				return err
			}
			continue
		}
		var pip map[string][]string
		if err := json.Unmarshal(d, &pip); err != nil || len(pip) != 1 || pip["pip"] == nil {
			return api.Invalid(field, "dependency %d must be a package name or a pip: list of requirements", i+1)
		}
		for _, r := range pip["pip"] {
			r = strings.TrimSpace(r)
			if r == "" || strings.ContainsAny(r, "\n\r\x00") {
				return api.Invalid(field, "pip requirement %q must be one line of a requirements file", r)
			}
			s.Pip = append(s.Pip, r)
		}
	}
	return nil
}

func (s *Spec) condaPackage(spec string) error {
	m := packageName.FindStringSubmatch(spec)
	if m == nil || strings.ContainsAny(spec, "\n\r\x00") {
		return api.Invalid(field, "conda package %q is not a package name with an optional version", spec)
	}
	switch strings.ToLower(m[1]) {
	case "python":
		v := strings.TrimSpace(m[2])
		if _, err := parseConstraint(v); err != nil {
			return api.Invalid(field, "python%s: %v", m[2], err)
		}
		s.Python = v
	case "pip":
	default:
		s.Packages = append(s.Packages, spec)
	}
	return nil
}

// Requirements are the pip requirements as the text of a requirements file.
func (s Spec) Requirements() string {
	if len(s.Pip) == 0 {
		return ""
	}
	return strings.Join(s.Pip, "\n") + "\n"
}

// clause is one comparison of a version constraint.
type clause struct {
	op      string // =, ==, !=, >=, <=, >, <
	version []int
	prefix  bool // 3.10 or 3.10.*: every 3.10.x
}

var clauseRE = regexp.MustCompile(`^(==|!=|>=|<=|>|<|=)?\s*([0-9]+(?:\.[0-9]+)*)(\.\*|\*)?$`)

// parseConstraint reads a conda version constraint: clauses joined by ','
// (all must hold) or '|' (one must), each an optional operator and a
// version, "3.10" and "=3.10" meaning any 3.10.x.
func parseConstraint(c string) ([][]clause, error) {
	c = strings.TrimSpace(c)
	if c == "" {
		return nil, nil
	}
	var out [][]clause
	for _, alt := range strings.Split(c, "|") {
		var all []clause
		for _, part := range strings.Split(alt, ",") {
			m := clauseRE.FindStringSubmatch(strings.TrimSpace(part))
			if m == nil {
				return nil, fmt.Errorf("%q is not a version constraint such as 3.10, >=3.9 or 3.10.*", part)
			}
			cl := clause{op: m[1], prefix: m[3] != ""}
			if cl.op == "" || cl.op == "=" {
				cl.op, cl.prefix = "==", true
			}
			for _, n := range strings.Split(m[2], ".") {
				x, _ := strconv.Atoi(n)
				cl.version = append(cl.version, x)
			}
			all = append(all, cl)
		}
		out = append(out, all)
	}
	return out, nil
}

// PythonMatches reports whether version (such as 3.11.7) meets the python
// constraint of an environment file; an empty constraint is met by any.
func PythonMatches(constraint, version string) (bool, error) {
	alts, err := parseConstraint(constraint)
	if err != nil || alts == nil {
		return err == nil, err
	}
	var v []int
	for _, n := range strings.Split(strings.TrimSpace(version), ".") {
		x, err := strconv.Atoi(n)
		if err != nil {
			return false, fmt.Errorf("python version %q is not numeric", version)
		}
		v = append(v, x)
	}
	for _, all := range alts {
		ok := true
		for _, cl := range all {
			ok = ok && cl.holds(v)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func (cl clause) holds(v []int) bool {
	cmp := compare(v, cl.version)
	if cl.prefix { // 3.10 covers 3.10.x
		cmp = compare(v[:min(len(v), len(cl.version))], cl.version)
	}
	switch cl.op {
	case "==":
		return cmp == 0
	case "!=":
		return cmp != 0
	case ">=":
		return cmp >= 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case "<":
		return cmp < 0
	}
	return false
}

// compare compares versions component by component, missing ones as 0.
func compare(a, b []int) int {
	for i := range max(len(a), len(b)) {
		x, y := 0, 0
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
