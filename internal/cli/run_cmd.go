package cli

import (
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/spf13/cobra"
)

func runCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "run", Short: "Pipeline runs"}

	var app string
	var limit int
	list := &cobra.Command{
		Use:   "list [--app APP]",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if app != "" {
				q.Set("app", app)
			}
			var runs []store.Run
			if err := c.do(cmd.Context(), "GET", "/api/v1/runs?"+q.Encode(), nil, &runs); err != nil {
				return err
			}
			return p.emit(runs, func(w *tabwriter.Writer) {
				row(w, "ID", "APP", "STATE", "TRIGGER", "REF", "COMMIT", "CREATED", "DURATION")
				for _, r := range runs {
					row(w, r.ID, r.App, r.State, r.Trigger, r.Ref, shortSHA(r.Commit), humanTime(r.CreatedAt), duration(r.StartedAt, r.EndedAt))
				}
			})
		},
	}
	list.Flags().StringVar(&app, "app", "", "only runs of this app")
	list.Flags().IntVar(&limit, "limit", 50, "how many runs (1–500)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var r store.Run
			if err := c.do(cmd.Context(), "GET", "/api/v1/runs/"+pathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			return p.emit(r, func(w *tabwriter.Writer) {
				row(w, "Run:", r.ID)
				row(w, "App:", r.App)
				row(w, "State:", r.State)
				row(w, "Trigger:", r.Trigger)
				row(w, "Ref:", r.Ref)
				row(w, "Commit:", r.Commit)
				row(w, "Created:", humanTime(r.CreatedAt))
				row(w, "Started:", ago(r.StartedAt))
				row(w, "Ended:", ago(r.EndedAt))
				row(w, "Duration:", duration(r.StartedAt, r.EndedAt))
				if r.Reason != "" {
					row(w, "Reason:", r.Reason)
				}
			})
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func duration(start, end *time.Time) string {
	if start == nil {
		return "-"
	}
	e := time.Now()
	if end != nil {
		e = *end
	}
	return e.Sub(*start).Round(time.Millisecond).String()
}
