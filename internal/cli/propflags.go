package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagKind says how a flag's value becomes a property value.
type flagKind int

const (
	kString     flagKind = iota
	kInt                 // a number
	kBool                // true/false
	kList                // repeatable: a list of strings
	kTags                // repeatable k=v: an object
	kFile                // the property is the file's content (e.g. a public key)
	kSecretFile          // the property is the file's content, trimmed; never echoed
	kJSONFile            // the property is the JSON object the file holds
	// kInstanceTypes is repeatable NAME=cpu:4,memory:16Gi,gpu:1 (and
	// selector:KEY=VALUE): an object of instance types by name.
	kInstanceTypes
)

// propFlag binds a CLI flag to a compute property. One table per command
// replaces hand-written flag plumbing, and only flags the user set are sent,
// so the server's defaults apply to the rest.
type propFlag struct {
	flag, prop string
	kind       flagKind
	usage      string
}

func addPropFlags(cmd *cobra.Command, defs []propFlag) {
	f := cmd.Flags()
	for _, d := range defs {
		switch d.kind {
		case kInt:
			f.Int(d.flag, 0, d.usage)
		case kBool:
			f.Bool(d.flag, false, d.usage)
		case kList, kTags, kInstanceTypes:
			f.StringArray(d.flag, nil, d.usage)
		default:
			f.String(d.flag, "", d.usage)
		}
	}
}

// propsFromFlags builds the JSON properties from the flags that were set.
func propsFromFlags(cmd *cobra.Command, defs []propFlag) (json.RawMessage, error) {
	props := map[string]any{}
	byFlag := map[string]propFlag{}
	for _, d := range defs {
		byFlag[d.flag] = d
	}
	var firstErr error
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		d, ok := byFlag[fl.Name]
		if !ok || firstErr != nil {
			return
		}
		v, err := flagValue(cmd, d, fl)
		if err != nil {
			firstErr = err
			return
		}
		props[d.prop] = v
	})
	if firstErr != nil {
		return nil, firstErr
	}
	return json.Marshal(props)
}

func flagValue(cmd *cobra.Command, d propFlag, fl *pflag.Flag) (any, error) {
	switch d.kind {
	case kInt:
		return strconv.Atoi(fl.Value.String())
	case kBool:
		return strconv.ParseBool(fl.Value.String())
	case kList:
		return cmd.Flags().GetStringArray(d.flag)
	case kTags:
		pairs, _ := cmd.Flags().GetStringArray(d.flag)
		tags := map[string]string{}
		for _, p := range pairs {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return nil, api.Invalid(d.flag, "--%s must be key=value, not %q", d.flag, p)
			}
			tags[k] = v
		}
		return tags, nil
	case kInstanceTypes:
		specs, _ := cmd.Flags().GetStringArray(d.flag)
		types := map[string]any{}
		for _, spec := range specs {
			name, t, err := parseInstanceType(d.flag, spec)
			if err != nil {
				return nil, err
			}
			types[name] = t
		}
		return types, nil
	case kFile, kSecretFile, kJSONFile:
		path := fl.Value.String()
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, api.Invalid(d.flag, "--%s: cannot read %s: %v", d.flag, path, unwrapPathErr(err))
		}
		if d.kind == kJSONFile {
			var v map[string]any
			if err := json.Unmarshal(data, &v); err != nil || v == nil {
				return nil, api.Invalid(d.flag, "--%s: %s must hold a JSON object", d.flag, path)
			}
			return v, nil
		}
		s := string(data)
		if d.kind == kSecretFile {
			s = strings.TrimRight(s, "\r\n")
		}
		return s, nil
	}
	return fl.Value.String(), nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// parseInstanceType reads NAME=cpu:4,memory:16Gi,gpu:1,selector:KEY=VALUE
// into an instance type's properties; the server checks the values.
func parseInstanceType(flag, spec string) (string, map[string]any, error) {
	bad := func(why string) error {
		return api.Invalid(flag, "--%s %q: %s; write NAME=cpu:4,memory:16Gi,gpu:1[,selector:KEY=VALUE]", flag, spec, why)
	}
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || name == "" || rest == "" {
		return "", nil, bad("no NAME=")
	}
	t := map[string]any{}
	selector := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(part, ":")
		if !ok || v == "" {
			return "", nil, bad(fmt.Sprintf("%q is not KEY:VALUE", part))
		}
		switch k {
		case "cpu", "memory":
			t[k] = v
		case "gpu":
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", nil, bad("gpu must be a whole number")
			}
			t["gpu"] = n
		case "selector":
			sk, sv, ok := strings.Cut(v, "=")
			if !ok || sk == "" {
				return "", nil, bad("selector must be selector:KEY=VALUE")
			}
			selector[sk] = sv
		default:
			return "", nil, bad(fmt.Sprintf("unknown key %q (cpu, memory, gpu, selector)", k))
		}
	}
	if len(selector) > 0 {
		t["node_selector"] = selector
	}
	return name, t, nil
}
