package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

func newQuotaCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "quota", Short: "Show and set the workspace's core quotas"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show core quotas (workspace-wide and per size family) and their use",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) ([]api.Quota, error) {
				return c.Quotas(ctx)
			}, func(w io.Writer, qs []api.Quota) {
				fmt.Fprintln(w, "FAMILY\tDEDICATED CORES\tLOW-PRIORITY CORES")
				for _, q := range qs {
					fmt.Fprintf(w, "%s\t%s\t%s\n", familyName(q.Family), usedOf(q.DedicatedUsed, q.DedicatedCores), usedOf(q.LowPriorityUsed, q.LowPriorityCores))
				}
			})
		},
	}
	var dedicated, low int
	var family string
	set := &cobra.Command{
		Use:     "set [--dedicated-cores N] [--lowpriority-cores N] [--family F]",
		Short:   "Set a core quota (Owners); -1 removes the limit",
		Example: "  paddock quota set --dedicated-cores 16 --lowpriority-cores 64\n  paddock quota set --family standardNCFamily --dedicated-cores 12",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := api.QuotaSet{Family: family}
			if cmd.Flags().Changed("dedicated-cores") {
				in.DedicatedCores = &dedicated
			}
			if cmd.Flags().Changed("lowpriority-cores") {
				in.LowPriorityCores = &low
			}
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (*api.Quota, error) {
				return c.SetQuota(ctx, in)
			}, func(w io.Writer, q *api.Quota) {
				fmt.Fprintf(w, "quota %s: dedicated %s, low-priority %s\n", familyName(q.Family), limitText(q.DedicatedCores), limitText(q.LowPriorityCores))
			})
		},
	}
	set.Flags().IntVar(&dedicated, "dedicated-cores", 0, "dedicated cores allowed (-1: no limit)")
	set.Flags().IntVar(&low, "lowpriority-cores", 0, "low-priority cores allowed (-1: no limit)")
	set.Flags().StringVar(&family, "family", "", "a size family (see 'paddock compute sizes'); default: the whole workspace")
	cmd.AddCommand(show, set)
	return cmd
}

// familyName is how a quota's family is shown: "(workspace)" for the
// workspace-wide one.
func familyName(f string) string {
	if f == "" {
		return "(workspace)"
	}
	return f
}

func limitText(n int) string {
	if n < 0 {
		return "no limit"
	}
	return fmt.Sprint(n)
}

func usedOf(used float64, limit int) string {
	return fmt.Sprintf("%g of %s", used, limitText(limit))
}
