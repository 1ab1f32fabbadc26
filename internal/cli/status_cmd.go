package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/server"
)

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the servers sharing the database, which one runs the control loops, and their leases",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var st server.Status
			if err := c.Do(cmd.Context(), "GET", "/api/v1/status", nil, &st); err != nil {
				return err
			}
			return p.emit(st, func(t *tabwriter.Writer) {
				row(t, "SERVER", "URL", "HOST", "VERSION", "STARTED", "HEARTBEAT", "LEASES")
				for _, sv := range st.Servers {
					id := sv.ID
					if id == st.Server {
						id += " (answered)"
					}
					var leases []string
					for _, l := range sv.Leases {
						leases = append(leases, fmt.Sprintf("%s (held %s, renewed %s)", l.Name, since(l.AcquiredAt), since(l.RenewedAt)))
					}
					beat := since(sv.HeartbeatAt)
					if sv.StoppedAt != nil {
						beat = "stopped " + since(*sv.StoppedAt)
					}
					row(t, id, sv.URL, sv.Host, sv.Version, since(sv.StartedAt), beat, strings.Join(leases, ", "))
				}
			})
		},
	}
}

// since says how long ago t was, to the second.
func since(t time.Time) string {
	return time.Since(t).Round(time.Second).String() + " ago"
}
