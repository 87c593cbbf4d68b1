package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/spf13/cobra"
)

// studioLink is what `paddock studio` prints: the link, and until when it
// works.
type studioLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func newStudioCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "studio",
		Short: "Print a one-time sign-in link to the web studio",
		Long: `Prints a link that signs you in to the studio, the web UI the server serves
on its own address: compute targets and their nodes, runs with their live logs
and metrics, quotas and users. Open it in a browser within 5 minutes; it works
once. The browser then holds a studio session for 12 hours (it shows in
'paddock token list' as studio-session-…; revoke it there, or sign out).`,
		Example: "  paddock studio",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var server, ws string
			return callAndEmit(cmd, g, func(ctx context.Context, c *api.Client) (studioLink, error) {
				server, ws = c.Server, c.Workspace
				l, err := c.CreateStudioLink(ctx)
				if err != nil {
					return studioLink{}, err
				}
				u := server + l.Path
				if ws != "" && ws != "default" {
					u += "&ws=" + url.QueryEscape(ws)
				}
				return studioLink{URL: u, ExpiresAt: l.ExpiresAt}, nil
			}, func(w io.Writer, l studioLink) {
				fmt.Fprintln(w, l.URL)
				if isTerminal(w) {
					fmt.Fprintf(cmd.ErrOrStderr(), "Open it in a browser before %s; it signs in once.\n", l.ExpiresAt.Local().Format("15:04:05"))
				}
			})
		},
	}
}
