package compute

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

// IdentityName is the rule for an identity's name: as a compute target's
// (3 to 64 letters, digits, '-' and '_', starting with a letter).
var IdentityName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{2,63}$`)

// azureIdentity is an Azure resource id of a user-assigned identity, as the
// seed's samples write identity_id: its last segment names the identity.
var azureIdentity = regexp.MustCompile(`(?i)/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/([^/]+)/?$`)

// identityIDs checks a cluster's identity_id: each entry names a
// user-assigned identity of the workspace, by name or by an Azure resource
// id ending in it (so the seed's samples work unchanged); it returns the
// names as stored, without duplicates.
func identityIDs(ctx context.Context, env Env, ids []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, id := range ids {
		name := strings.TrimSpace(id)
		if m := azureIdentity.FindStringSubmatch(name); m != nil {
			name = m[1]
		}
		switch {
		case id == "":
			return nil, api.Invalid("identity_id", "identity_id entries must not be empty")
		case !IdentityName.MatchString(name):
			return nil, api.Invalid("identity_id", "identity_id entry %q must be the name of an identity (`paddock identity list`) or an Azure resource id ending in .../userAssignedIdentities/NAME", id)
		}
		if env.Identity != nil {
			stored, err := env.Identity(ctx, name)
			if errors.Is(err, api.ErrNotFound) {
				return nil, api.Invalid("identity_id", "identity_id names %q, but the workspace has no identity of that name; create it first with `paddock identity create %s --secret KEY=@FILE`", name, name)
			}
			if err != nil {
				return nil, err
			}
			name = stored
		}
		if !seen[strings.ToLower(name)] {
			seen[strings.ToLower(name)] = true
			out = append(out, name)
		}
	}
	return out, nil
}
