// Package compute defines the kinds of compute target (local, cluster,
// instance, remote, slurm, kubernetes, spark, databricks): their
// properties, defaults, validation, secret fields and provisioning state
// machine.
//
// Each kind lives in its own file and registers itself with Register from an
// init function, so adding a kind never edits a central switch. The generic
// code here splits secret fields off before a kind sees its properties,
// rejects unknown fields, and applies updates field by field.
package compute

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/secret"
)

// Origin says how targets of a kind come to exist.
type Origin int

// How targets come to exist.
const (
	Created  Origin = iota // `compute create`
	Attached               // `compute attach`: an existing machine or scheduler
	BuiltIn                // always present, e.g. local
)

// Kind is one type of compute target.
//
// Normalize is called on create with the user's properties (secrets already
// removed) and returns them validated, defaulted and canonical (e.g. the
// catalog's spelling of a vm_size). On update it is called again with the
// stored properties overlaid by the changed fields, so every rule holds
// across fields (min_nodes ≤ max_nodes) whichever one changed.
type Kind interface {
	// Type is the name used in the API and the CLI, e.g. "cluster".
	Type() string
	Origin() Origin
	// SecretFields are write-only properties: encrypted at rest, never returned.
	SecretFields() []string
	// UpdatableFields may change after creation; others are fixed.
	UpdatableFields() []string
	// Normalize validates and defaults properties; errors are *api.Error
	// naming the field.
	Normalize(ctx context.Context, props json.RawMessage, secrets map[string]secret.Value, env Env) (json.RawMessage, error)
	// InitialStatus is the status a new target starts with.
	InitialStatus(props json.RawMessage) json.RawMessage
}

// Env is what validation may consult besides the properties themselves.
type Env struct {
	Sizes *Catalog
	// User is the name of the user making the request.
	User string
	// UserExists reports whether a user name is known.
	UserExists func(ctx context.Context, name string) (bool, error)
	// Target finds another target of the workspace by name (for references
	// such as a cluster's `from`); it returns api.ErrNotFound when missing.
	Target func(ctx context.Context, name string) (typ string, err error)
	// Identity finds a user-assigned identity of the workspace by name
	// (for a cluster's identity_id) and returns its name as stored; it
	// returns api.ErrNotFound when missing. Nil: names are not checked.
	Identity func(ctx context.Context, name string) (string, error)
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// Register makes a kind known; it panics on a duplicate, which is a bug.
func Register(k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Type()]; dup {
		panic("compute: kind registered twice: " + k.Type())
	}
	kinds[k.Type()] = k
}

// Lookup returns the kind for a type name.
func Lookup(typ string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[typ]
	return k, ok
}

// Types lists the registered type names of an origin, sorted.
func Types(o Origin) []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	var out []string
	for name, k := range kinds {
		if k.Origin() == o {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// LocalName is the reserved name of the built-in local target.
const LocalName = "local"

var (
	nameChars      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
	dashDigitsTail = regexp.MustCompile(`-[0-9]*$`)
)

// ValidateName checks the rules for a compute target's name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return api.Invalid("name", "name is required")
	case len(name) < 3 || len(name) > 24:
		return api.Invalid("name", "name %q must be 3 to 24 characters long", name)
	case !nameChars.MatchString(name):
		return api.Invalid("name", "name %q must start with a letter and contain only letters, digits and '-'", name)
	case dashDigitsTail.MatchString(name):
		return api.Invalid("name", "name %q must not end in '-' or in '-' followed only by digits", name)
	case strings.EqualFold(name, LocalName):
		return api.Invalid("name", "name %q is reserved for the built-in local target", name)
	}
	return nil
}

// SplitSecrets takes a kind's secret fields out of a JSON object of
// properties. A secret must be a string; an empty string counts as unset.
func SplitSecrets(k Kind, props json.RawMessage) (json.RawMessage, map[string]secret.Value, error) {
	obj, err := object(props)
	if err != nil {
		return nil, nil, err
	}
	secrets := map[string]secret.Value{}
	for _, f := range k.SecretFields() {
		raw, ok := obj[f]
		if !ok {
			continue
		}
		delete(obj, f)
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, api.Invalid(f, "%s must be a string", f)
		}
		if strings.ContainsRune(s, 0) {
			return nil, nil, api.Invalid(f, "%s contains a NUL byte", f)
		}
		if s != "" {
			secrets[f] = secret.New(s)
		}
	}
	rest, err := json.Marshal(obj)
	return rest, secrets, err
}

// Overlay applies the fields of patch onto stored properties, refusing any
// field the kind does not allow to change. A JSON null in the patch resets
// the field to its default.
func Overlay(k Kind, stored, patch json.RawMessage) (json.RawMessage, error) {
	base, err := object(stored)
	if err != nil {
		return nil, err
	}
	changes, err := object(patch)
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		return nil, api.Invalid("properties", "nothing to update: give at least one of %s", strings.Join(k.UpdatableFields(), ", "))
	}
	if pc, ok := k.(patchCompleter); ok {
		pc.completePatch(changes)
	}
	allowed := map[string]bool{}
	for _, f := range k.UpdatableFields() {
		allowed[f] = true
	}
	keys := make([]string, 0, len(changes))
	for f := range changes {
		keys = append(keys, f)
	}
	sort.Strings(keys)
	for _, f := range keys {
		if !allowed[f] {
			return nil, api.Invalid(f, "%s of a %s cannot be changed after creation; changeable: %s",
				f, k.Type(), strings.Join(k.UpdatableFields(), ", "))
		}
		if string(changes[f]) == "null" {
			delete(base, f)
		} else {
			base[f] = changes[f]
		}
	}
	return json.Marshal(base)
}

// patchCompleter is a kind where changing one field implies changing
// another (a cluster's identity_type and identity_id): completePatch adds
// what the change implies to a patch, unless the patch says otherwise.
type patchCompleter interface {
	completePatch(patch map[string]json.RawMessage)
}

func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	if len(raw) == 0 || string(raw) == "null" {
		return obj, nil
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, api.Invalid("properties", "properties must be a JSON object")
	}
	return obj, nil
}

// decodeStrict decodes props into v, rejecting unknown fields, wrong types
// and NUL bytes in strings with an error that names the field.
func decodeStrict(props json.RawMessage, v any) error {
	if len(props) == 0 {
		props = json.RawMessage("{}")
	}
	var generic any
	if json.Unmarshal(props, &generic) == nil {
		if f, ok := nulString(generic, ""); ok {
			return api.Invalid(f, "%s contains a NUL byte", f)
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(props)))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		f := jsonFieldPath(te.Field)
		return api.Invalid(f, "%s must be %s", f, jsonTypeName(te.Type.Kind().String()))
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		f := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return api.Invalid(f, "unknown property %q", f)
	}
	return api.Invalid("properties", "properties must be a JSON object: %v", err)
}

// nulString finds a string or object key holding a NUL byte in a decoded
// JSON value and returns its path (at, when it is v itself). Properties end
// up in commands, paths and SSH sessions, where a NUL cuts them short.
func nulString(v any, at string) (string, bool) {
	switch v := v.(type) {
	case string:
		return at, strings.ContainsRune(v, 0)
	case []any:
		for _, e := range v {
			if f, ok := nulString(e, at); ok {
				return f, true
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub := k
			if at != "" {
				sub = at + "." + k
			}
			if strings.ContainsRune(k, 0) {
				return cmp.Or(at, "properties"), true
			}
			if f, ok := nulString(v[k], sub); ok {
				return f, true
			}
		}
	}
	return "", false
}

// jsonFieldPath drops the names of embedded Go structs (e.g. "Common.")
// from a decoder's field path, leaving the JSON property names users write;
// properties are snake_case, Go struct names start with a capital.
func jsonFieldPath(path string) string {
	parts := strings.Split(path, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && !unicode.IsUpper(rune(p[0])) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ".")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int64", "int32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	case "map", "struct":
		return "an object"
	}
	return "of type " + kind
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("compute: marshal %T: %v", v, err))
	}
	return b
}
