package compute

import (
	"strings"
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

// intField returns *p or def, checking the minimum.
func intField(field string, p *int, def, min int) (int, error) {
	if p == nil {
		return def, nil
	}
	if *p < min {
		return 0, api.Invalid(field, "%s must be at least %d, not %d", field, min, *p)
	}
	return *p, nil
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
