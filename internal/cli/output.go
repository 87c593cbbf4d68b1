package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// emit writes v as JSON or YAML when asked; otherwise it calls table.
func emit(w io.Writer, format string, v any, table func(w io.Writer)) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // a command's "&&" stays "&&", not "\u0026\u0026"
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// callAndEmit is the shape of most commands: make a client from the
// flags, make the command's call (which may wait), and print what it
// returned as -o asks, with table for the table format. An error from
// either ends the command before anything is printed.
func callAndEmit[T any](cmd *cobra.Command, g *globals, call func(context.Context, *api.Client) (T, error), table func(io.Writer, T)) error {
	v, err := callWith(cmd, g, call)
	if err != nil {
		return err
	}
	return emitAs(cmd, g, v, table)
}

// callWith makes a client from the flags and makes the command's call
// with it.
func callWith[T any](cmd *cobra.Command, g *globals, call func(context.Context, *api.Client) (T, error)) (T, error) {
	c, err := g.client()
	if err != nil {
		var none T
		return none, err
	}
	return call(cmd.Context(), c)
}

// emitAs prints v on the command's output as -o asks, with table for the
// table format.
func emitAs[T any](cmd *cobra.Command, g *globals, v T, table func(io.Writer, T)) error {
	return emit(cmd.OutOrStdout(), g.output, v, func(w io.Writer) { table(w, v) })
}

// nonNil is s, or an empty slice for nil, so a list prints as [] and not
// null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// jsonText is v as one line of JSON, "&", "<" and ">" as they are.
func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// computeTable lists compute targets, one a line.
func computeTable(w io.Writer, items []api.Compute) {
	fmt.Fprintln(w, "NAME\tTYPE\tSTATE\tSIZE\tNODES\tCREATED BY\tAGE")
	for _, c := range items {
		p := flatten(c.Properties)
		nodes := "-"
		if p["max_nodes"] != "" { // an autoscaling target
			nodes = fmt.Sprintf("%s-%s", p["min_nodes"], p["max_nodes"])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, c.ProvisioningState,
			orDash(p["vm_size"]), nodes, c.CreatedBy, age(c.CreatedAt))
	}
}

// showTable shows one compute target: what it is, its properties (secrets
// by name only) and its status.
func showTable(w io.Writer, c *api.Compute) {
	fmt.Fprintf(w, "Name:\t%s\n", c.Name)
	fmt.Fprintf(w, "Type:\t%s\n", c.Type)
	fmt.Fprintf(w, "Provisioning state:\t%s\n", c.ProvisioningState)
	for _, e := range c.ProvisioningErrors {
		fmt.Fprintf(w, "Provisioning error:\t%s: %s\n", e.Code, e.Message)
	}
	fmt.Fprintf(w, "Created by:\t%s\n", c.CreatedBy)
	fmt.Fprintf(w, "Created at:\t%s\n", c.CreatedAt.Format(time.RFC3339))
	writeSection(w, "Properties", c.Properties)
	if len(c.SecretsSet) > 0 {
		fmt.Fprintf(w, "  %s:\t(set, write-only)\n", strings.Join(c.SecretsSet, ", "))
	}
	writeSection(w, "Status", c.Status)
	if id := c.Identity; id != nil {
		fmt.Fprintf(w, "Identity:\n  type:\t%s\n", id.Type)
		if id.PrincipalID != "" {
			fmt.Fprintf(w, "  principal_id:\t%s\n", id.PrincipalID)
		}
		for _, u := range id.UserAssignedIdentities {
			fmt.Fprintf(w, "  %s:\tprincipal_id=%s\n", u.Name, u.PrincipalID)
		}
	}
	if l := c.Limits; l != nil {
		fmt.Fprintf(w, "Limits:\n")
		if l.IdleTimeBeforeShutdown != "" {
			from := ""
			if l.IdleTimeFromPolicy {
				from = " (the workspace's policy)"
			}
			fmt.Fprintf(w, "  idle_time_before_shutdown:\t%s%s\n", l.IdleTimeBeforeShutdown, from)
		}
		if l.MaxRunDurationSeconds > 0 {
			fmt.Fprintf(w, "  max_run_duration:\t%s (the workspace's policy)\n", time.Duration(l.MaxRunDurationSeconds)*time.Second)
		}
	}
}

func writeSection(w io.Writer, title string, raw json.RawMessage) {
	fmt.Fprintf(w, "%s:\n", title)
	p := flatten(raw)
	for _, k := range sortedKeys(p) {
		fmt.Fprintf(w, "  %s:\t%s\n", k, p[k])
	}
}

// flatten renders a JSON object's fields as text, nested objects as
// "k=v,k=v" and lists comma-separated.
func flatten(raw json.RawMessage) map[string]string {
	var obj map[string]any
	json.Unmarshal(raw, &obj)
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		out[k] = text(v)
	}
	return out
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = text(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + text(x[k])
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// sortedKeys is a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
