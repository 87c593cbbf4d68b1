package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// IgnoreFile is the name of the ignore file that Create reads at the root of
// a directory. It uses .gitignore syntax; see Create for the rules.
const IgnoreFile = ".paddockignore"

// ignoreRule is one pattern line of an ignore file.
type ignoreRule struct {
	negate   bool     // line started with "!"
	dirOnly  bool     // line ended with "/"
	anchored bool     // pattern had a "/" before its end: match the whole path
	segs     []string // pattern split at "/"; "**" stands alone as a segment
}

// ignoreMatcher holds the rules of one ignore file in file order.
type ignoreMatcher struct {
	rules []ignoreRule
}

// parseIgnore parses the text of an ignore file. A malformed glob (such as an
// unclosed "[") is an error naming the line, where git would silently ignore
// the line: a user who wrote it meant to exclude something.
func parseIgnore(text string) (*ignoreMatcher, error) {
	m := &ignoreMatcher{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		line = trimTrailingSpaces(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = line[1:]
		}
		// A leading "\#" or "\!" stays escaped: path.Match reads "\#" as "#".
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		if line == "" {
			continue // "/" or "!/" match nothing useful
		}
		if strings.Contains(line, "/") {
			r.anchored = true
			line = strings.TrimPrefix(line, "/")
		}
		for _, s := range strings.Split(line, "/") {
			if s == "" {
				continue // "a//b" is "a/b"
			}
			if s != "**" {
				s = gitClassToGo(s)
				if _, err := path.Match(s, ""); err != nil {
					return nil, fmt.Errorf("%s line %d: bad pattern %q", IgnoreFile, i+1, s)
				}
			}
			r.segs = append(r.segs, s)
		}
		if len(r.segs) == 0 {
			continue
		}
		m.rules = append(m.rules, r)
	}
	return m, nil
}

// trimTrailingSpaces removes trailing spaces unless escaped with a backslash.
func trimTrailingSpaces(s string) string {
	for strings.HasSuffix(s, " ") && !strings.HasSuffix(s, `\ `) {
		s = s[:len(s)-1]
	}
	return s
}

// gitClassToGo rewrites a character class "[!...]" (fnmatch) as "[^...]"
// (path.Match); everything else the two agree on.
func gitClassToGo(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '[':
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
			}
		}
	}
	return string(b)
}

// excluded reports whether the slash-separated relative path rel (a
// directory when isDir) is excluded by the rules: the last rule that matches
// decides, and a negated rule re-includes. It looks at rel alone; the caller
// does not descend into excluded directories, which is what makes an
// excluded directory's contents excluded too (as in git).
func (m *ignoreMatcher) excluded(rel string, isDir bool) bool {
	if m == nil || len(m.rules) == 0 {
		return false
	}
	segs := strings.Split(rel, "/")
	ex := false
	for _, r := range m.rules {
		if r.matches(segs, isDir) {
			ex = !r.negate
		}
	}
	return ex
}

func (r ignoreRule) matches(segs []string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if !r.anchored {
		// No slash in the pattern: it matches the name at any depth.
		return matchSeg(r.segs[0], segs[len(segs)-1])
	}
	return matchSegs(r.segs, segs)
}

// matchSegs matches pattern segments against path segments. A "**" segment
// matches zero or more path segments, except at the end of the pattern,
// where it matches one or more ("abc/**" is everything inside abc, not abc).
func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return len(segs) >= 1
			}
			for i := 0; i <= len(segs); i++ {
				if matchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 || !matchSeg(pat[0], segs[0]) {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

func matchSeg(pat, name string) bool {
	if pat == "**" {
		return true
	}
	ok, err := path.Match(pat, name)
	return err == nil && ok
}
