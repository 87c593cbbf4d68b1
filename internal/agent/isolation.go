package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/paddock-ml/paddock/internal/agent/proc"
)

// How runs are kept from the agent's files, the server's and each other's
// (docs/security.md has the threat model):
//
//   - isolateRoot: the agent is root. Each Paddock user's runs execute as an
//     OS user of their own (made on first use), in a mount namespace where
//     the agent's and server's directories are covered and only the run's
//     own directory, its home and a private /tmp are put back.
//   - isolateUserNS: the agent is not root but runs in a user namespace of
//     its own (it re-executes itself there at start). Runs execute as the
//     agent's user in a further user namespace, with the same mounts; the
//     mounts are locked, so a run cannot uncover what is hidden.
//   - isolateNone: neither is possible (user namespaces are disabled);
//     runs execute as the agent's user and can read what it can.
type isolationMode int

const (
	isolateNone isolationMode = iota
	isolateRoot
	isolateUserNS
)

func (m isolationMode) String() string {
	switch m {
	case isolateRoot:
		return "separate OS users"
	case isolateUserNS:
		return "user namespaces"
	}
	return "none"
}

// DefaultRunUserPrefix starts the names of the OS users runs execute as.
const DefaultRunUserPrefix = "pdk-"

// isolation holds how this agent isolates runs.
type isolation struct {
	mode   isolationMode
	reason string // why, for isolateNone
	// hide are the paths runs must not see: the agent's own files, the
	// server's data dir and what the agent was told to hide.
	hide []string
	// self is the agent's user outside its namespace (isolateUserNS).
	self proc.User
	// homes holds a home per OS user on this node (isolateRoot).
	homes string

	prefix string
	mu     sync.Mutex
	users  map[string]runUser // by Paddock user
}

// runUser is who a run executes as.
type runUser struct {
	name string // OS user name; "" when runs keep the agent's user
	id   proc.User
}

// osUserName is the OS user of a Paddock user: the prefix and the name,
// with a hash where the name had to be changed or cut to fit Linux's rules
// (32 characters of [a-z0-9_-]).
func osUserName(prefix, user string) string {
	safe := unsafeUserChars.ReplaceAllString(strings.ToLower(user), "_")
	name := prefix + safe
	if safe == user && len(name) <= 32 && safe != "" {
		return name
	}
	sum := sha256.Sum256([]byte(user))
	h := hex.EncodeToString(sum[:4])
	keep := max(0, min(len(safe), 32-len(prefix)-len(h)-1))
	return prefix + safe[:keep] + "-" + h
}

var unsafeUserChars = regexp.MustCompile(`[^a-z0-9_-]`)

// user returns who runs of a Paddock user execute as, making the OS user
// on first use (isolateRoot).
func (iso *isolation) user(name string) (runUser, error) {
	if iso.mode != isolateRoot {
		return runUser{id: iso.self}, nil
	}
	if name == "" {
		name = "unknown"
	}
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if u, ok := iso.users[name]; ok {
		return u, nil
	}
	osName := osUserName(iso.prefix, name)
	id, err := ensureOSUser(osName, "Paddock runs of "+name)
	if err != nil {
		return runUser{}, err
	}
	u := runUser{name: osName, id: id}
	iso.users[name] = u
	return u, nil
}

// sandbox is what a process of a run (or an SSH session, or an
// environment build) runs as and sees.
type sandbox struct {
	user   runUser
	home   string // HOME; "" leaves it as it is
	mounts *proc.Mounts
}

// withBinds returns the sandbox with more paths put back.
func (sb sandbox) withBinds(binds ...proc.Bind) sandbox {
	if sb.mounts == nil || len(binds) == 0 {
		return sb
	}
	m := *sb.mounts
	m.Bind = append(append([]proc.Bind(nil), m.Bind...), binds...)
	sb.mounts = &m
	return sb
}

// apply puts the sandbox into a process spec and its environment.
func (sb sandbox) apply(spec *proc.Spec, mode isolationMode) {
	spec.Mounts = sb.mounts
	switch mode {
	case isolateRoot:
		id := sb.user.id
		spec.User = &id
	case isolateUserNS:
		id := sb.user.id
		spec.UserNS = &id
	}
	if sb.home != "" {
		spec.Env = setEnv(spec.Env, "HOME", sb.home)
	}
	if sb.user.name != "" {
		spec.Env = setEnv(setEnv(spec.Env, "USER", sb.user.name), "LOGNAME", sb.user.name)
	}
}

// sandbox prepares the sandbox of a process of a Paddock user: binds are
// the paths it may use (made its own where they are directories it owns:
// the run's directory, its /tmp), home its HOME ("" for the per-user home
// on this node). Without isolation it is the agent's own user, unchanged.
func (iso *isolation) sandbox(user, home string, binds ...proc.Bind) (sandbox, error) {
	if iso.mode == isolateNone {
		return sandbox{home: home}, nil
	}
	u, err := iso.user(user)
	if err != nil {
		return sandbox{}, err
	}
	if iso.mode == isolateRoot && home == "" {
		home = filepath.Join(iso.homes, u.name)
		if err := ownedDir(home, u.id); err != nil {
			return sandbox{}, err
		}
	}
	if home != "" {
		binds = append(binds, proc.Bind{Path: home})
	}
	return sandbox{user: u, home: home, mounts: &proc.Mounts{Hide: iso.hide, Bind: binds}}, nil
}

// reachablePath drops from env's PATH the directories the sandbox's user
// cannot search (the agent's own tools, under root's home), so that a
// command is found where that user can run it.
func (iso *isolation) reachablePath(env []string, sb sandbox) []string {
	if iso.mode != isolateRoot {
		return env
	}
	var keep []string
	for _, d := range filepath.SplitList(getEnv(env, "PATH")) {
		if d != "" && proc.Reachable(d, sb.user.id) {
			keep = append(keep, d)
		}
	}
	return setEnv(env, "PATH", strings.Join(keep, string(filepath.ListSeparator)))
}

// ownedDir makes dir (0700) and gives it to id.
func ownedDir(dir string, id proc.User) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Lchown(dir, int(id.UID), int(id.GID))
}

// chownTree gives every file of a tree to id (root only; symlinks
// themselves, never what they point to).
func chownTree(dir string, id proc.User) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(id.UID), int(id.GID))
	})
}

// own gives a run's directory tree to its user, where runs have one.
func (iso *isolation) own(dir string, u runUser) error {
	if iso.mode != isolateRoot {
		return nil
	}
	return chownTree(dir, u.id)
}

// newIsolation finds how this agent can isolate runs.
func newIsolation(cfg Config) *isolation {
	iso := &isolation{prefix: cfg.RunUserPrefix, users: map[string]runUser{}, homes: filepath.Join(cfg.WorkDir, "homes")}
	if iso.prefix == "" {
		iso.prefix = DefaultRunUserPrefix
	}
	iso.mode, iso.self, iso.reason = detectIsolation()
	if cfg.NoIsolation {
		iso.mode, iso.reason = isolateNone, "turned off with --no-isolation"
	}
	for _, p := range append([]string{cfg.WorkDir, cfg.TokenFile}, cfg.Hide...) {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		iso.hide = append(iso.hide, p)
	}
	return iso
}

// errNoUserNS says the kernel refused a user namespace.
var errNoUserNS = errors.New("user namespaces are not available")

func describeIsolation(iso *isolation) string {
	if iso.mode == isolateNone {
		return fmt.Sprintf("none (%s): runs execute as the agent's user and can read its files", iso.reason)
	}
	return iso.mode.String()
}
