package compute

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paddock-ml/paddock/api"
	"golang.org/x/crypto/ssh"
)

// Common are the properties every created target has.
type Common struct {
	Description string            `json:"description,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

const (
	maxDescription = 1024
	maxTags        = 50
	maxTagKey      = 128
	maxTagValue    = 256
)

func (c *Common) validate() error {
	if utf8.RuneCountInString(c.Description) > maxDescription {
		return api.Invalid("description", "description must be at most %d characters", maxDescription)
	}
	if len(c.Tags) > maxTags {
		return api.Invalid("tags", "at most %d tags are allowed", maxTags)
	}
	for k, v := range c.Tags {
		if k == "" || len(k) > maxTagKey || strings.ContainsAny(k, "=,") {
			return api.Invalid("tags", "tag key %q must be 1 to %d characters without '=' or ','", k, maxTagKey)
		}
		if len(v) > maxTagValue {
			return api.Invalid("tags", "the value of tag %q must be at most %d characters", k, maxTagValue)
		}
	}
	return nil
}

// enum canonicalises an enumerated field: case-insensitive match, the
// canonical spelling returned, def when empty.
func enum(field, value, def string, allowed ...string) (string, error) {
	if value == "" {
		return def, nil
	}
	for _, a := range allowed {
		if strings.EqualFold(a, value) {
			return a, nil
		}
	}
	return "", api.Invalid(field, "%s must be one of %s, not %q", field, strings.Join(allowed, ", "), value)
}

// Upper bounds of numbers and durations (documented in docs/compute.md):
// each is far beyond real use, and keeps arithmetic on the value far from
// overflowing (2^63 seconds would be a negative duration).
const (
	// MaxClusterNodes bounds a cluster's max_nodes, and so a run's node_count.
	MaxClusterNodes   = 10000
	maxIdleSeconds    = 30 * 24 * 60 * 60 // idle_seconds_before_scaledown: 30 days
	maxIdleShutdown   = 30 * 24 * time.Hour
	maxConcurrentRuns = 1000
	maxIdentityIDs    = 50
	maxSSHPort        = 65535
	defaultSSHPort    = 22
)

// intField returns *p or def, checking that it is within [min, max].
func intField(field string, p *int, def, min, max int) (int, error) {
	if p == nil {
		return def, nil
	}
	if *p < min {
		return 0, api.Invalid(field, "%s must be at least %d, not %d", field, min, *p)
	}
	if *p > max {
		return 0, api.Invalid(field, "%s must be at most %d, not %d", field, max, *p)
	}
	return *p, nil
}

// sshPort defaults a target's ssh_port to 22 and checks its range.
func sshPort(port int) (int, error) {
	if port == 0 {
		return defaultSSHPort, nil
	}
	return intField("ssh_port", &port, defaultSSHPort, 1, maxSSHPort)
}

// sshPublicKey checks an OpenSSH public key (one authorized_keys line).
func sshPublicKey(field, key string) (string, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return "", nil
	}
	// Exactly one key line: the parser would skip junk lines and ignore
	// lines after the first key, which would store what was not checked.
	_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil || strings.ContainsAny(key, "\r\n") || len(rest) != 0 {
		return "", api.Invalid(field, "%s must be one OpenSSH public key line (e.g. the contents of ~/.ssh/id_ed25519.pub)", field)
	}
	return key, nil
}

func ptr[T any](v T) *T { return &v }
