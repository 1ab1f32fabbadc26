package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/server"
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
		Args:  noArgs,
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
			if err := c.Do(cmd.Context(), "GET", "/api/v1/runs?"+q.Encode(), nil, &runs); err != nil {
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
		Short: "Show a run: stages, actions, durations and artifacts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			d, err := getRun(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			return p.emit(d, func(w *tabwriter.Writer) { printRun(w, d) })
		},
	}

	var ref, workflowFile string
	var inputs []string
	var watchAfter bool
	start := &cobra.Command{
		Use:   "start APP [--ref REF] [--workflow FILE [--input NAME=VALUE]...] [--watch]",
		Short: "Start a run of an app's pipeline (or of a GitHub Actions workflow, by its workflow_dispatch) at a branch, tag or commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{"ref": ref}
			if workflowFile != "" {
				body["workflow"] = workflowFile
			}
			if len(inputs) > 0 {
				in := map[string]string{}
				for _, kv := range inputs {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("--input %q: write NAME=VALUE", kv)
					}
					in[k] = v
				}
				body["inputs"] = in
			}
			var r store.Run
			if err := c.Do(cmd.Context(), "POST", "/api/v1/apps/"+pathEscape(args[0])+"/runs", body, &r); err != nil {
				return err
			}
			if p.json && !watchAfter {
				return p.emit(r, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Started run %d of %s at %s (%s)\n", r.ID, r.App, r.Ref, shortSHA(r.Commit))
			if watchAfter {
				return watchRun(cmd, c, strconv.FormatInt(r.ID, 10))
			}
			return nil
		},
	}
	start.Flags().StringVar(&ref, "ref", "main", "branch, tag or commit to run")
	start.Flags().StringVar(&workflowFile, "workflow", "", "run this workflow of .github/workflows (e.g. deploy.yml) by its on.workflow_dispatch")
	start.Flags().StringArrayVar(&inputs, "input", nil, "a workflow_dispatch input, NAME=VALUE (repeat for more)")
	start.Flags().BoolVar(&watchAfter, "watch", false, "follow the run until it ends")

	watch := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a run's progress until it ends; the exit code tells the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			return watchRun(cmd, c, args[0])
		},
	}

	var follow bool
	var action string
	logs := &cobra.Command{
		Use:   "logs ID [--action A] [--follow]",
		Short: "Print a run's action logs; --follow streams until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			return streamLogs(cmd, c, p, args[0], action, follow)
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the run ends")
	logs.Flags().StringVar(&action, "action", "", "only this action's lines (name or stage/name)")

	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a run; running actions are killed with every process they started",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "POST", "/api/v1/runs/"+pathEscape(args[0])+"/cancel", nil)
		},
	}
	var stage string
	retry := &cobra.Command{
		Use:   "retry ID [--stage S]",
		Short: "Re-run the failed actions of a stage (default: the first that did not succeed) with the same inputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "POST", "/api/v1/runs/"+pathEscape(args[0])+"/retry", map[string]string{"stage": stage})
		},
	}
	retry.Flags().StringVar(&stage, "stage", "", "stage to retry from")
	cmd.AddCommand(list, show, start, watch, logs, cancel, retry)
	return cmd
}

// RunDetail mirrors the server's run detail.
type RunDetail = server.RunDetail

func getRun(ctx context.Context, c *client.Client, id string) (RunDetail, error) {
	var d RunDetail
	err := c.Do(ctx, "GET", "/api/v1/runs/"+pathEscape(id), nil, &d)
	return d, err
}

func printRun(w *tabwriter.Writer, d RunDetail) {
	row(w, "Run:", d.ID)
	row(w, "App:", d.App)
	row(w, "State:", d.State)
	row(w, "Trigger:", d.Trigger)
	row(w, "Ref:", d.Ref)
	row(w, "Commit:", d.Commit)
	if d.Workflow != "" {
		row(w, "Workflow:", d.Workflow)
		keys := make([]string, 0, len(d.Inputs))
		for k := range d.Inputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row(w, "Input:", k+"="+d.Inputs[k])
		}
	}
	row(w, "Mode:", orDash(d.Mode))
	row(w, "Created:", humanTime(d.CreatedAt))
	row(w, "Duration:", duration(d.StartedAt, d.EndedAt))
	if d.Reason != "" {
		row(w, "Reason:", d.Reason)
	}
	if d.ExpiredAt != nil {
		row(w, "Expired:", "artifacts and logs deleted "+humanTime(*d.ExpiredAt)+" (server --run-retention)")
	}
	row(w, "")
	row(w, "STAGE", "ACTION", "TYPE", "ORDER", "STATE", "EXIT", "DURATION", "REASON")
	for _, a := range d.Actions {
		exit := "-"
		if a.ExitCode != nil {
			exit = strconv.Itoa(*a.ExitCode)
		}
		row(w, a.Stage, a.Name, a.Type, a.RunOrder, a.State, exit, duration(a.StartedAt, a.EndedAt), orDash(a.Reason))
	}
	blank := true
	for _, a := range d.Actions {
		for _, n := range a.Annotations {
			if blank {
				row(w, "")
				blank = false
			}
			row(w, strings.ToUpper(n.Level)+":", a.Stage+"/"+a.Name+": "+n.Where()+n.Message)
		}
	}
	if len(d.Reports) > 0 {
		row(w, "")
		row(w, "REPORT", "ACTION", "TOTAL", "PASSED", "FAILED", "SKIPPED", "FAILED TESTS")
		names := map[int64]string{}
		for _, a := range d.Actions {
			names[a.ID] = a.Stage + "/" + a.Name
		}
		for _, r := range d.Reports {
			row(w, r.Group, names[r.ActionID], r.Total, r.Passed, r.Failed, r.Skipped, orDash(strings.Join(r.FailedTests, ", ")))
		}
	}
	if len(d.Variables) > 0 {
		row(w, "")
		row(w, "VARIABLE", "VALUE")
		for _, v := range d.Variables {
			row(w, "#{"+v.Action+"."+v.Name+"}", v.Value)
		}
	}
	if len(d.Approvals) > 0 {
		row(w, "")
		row(w, "APPROVAL", "STATE", "REQUESTED", "DEADLINE", "DECIDED BY", "DECIDED", "COMMENT")
		for _, a := range d.Approvals {
			row(w, a.Stage+"/"+a.Action, a.State, humanTime(a.RequestedAt), humanTime(a.Deadline), orDash(a.DecidedBy), ago(a.DecidedAt), orDash(a.Comment))
		}
	}
	if len(d.Artifacts) > 0 {
		row(w, "")
		row(w, "ARTIFACT", "SIZE", "SHA256")
		for _, a := range d.Artifacts {
			row(w, a.Name, a.Size, a.SHA256)
		}
	}
}

func ended(state string) bool {
	switch state {
	case store.RunSucceeded, store.RunFailed, store.RunCancelled, store.RunSuperseded:
		return true
	}
	return false
}

// watchRun prints each action's transitions until the run ends; it fails
// (exit code 1) unless the run succeeded.
func watchRun(cmd *cobra.Command, c *client.Client, id string) error {
	out := cmd.OutOrStdout()
	seen := map[int64]string{}
	spin := []string{"-", "\\", "|", "/"}
	for i := 0; ; i++ {
		d, err := getRun(cmd.Context(), c, id)
		if err != nil {
			return err
		}
		for _, a := range d.Actions {
			if seen[a.ID] != a.State {
				seen[a.ID] = a.State
				line := fmt.Sprintf("%-9s %s/%s", a.State, a.Stage, a.Name)
				if a.EndedAt != nil {
					line += " (" + duration(a.StartedAt, a.EndedAt) + ")"
				}
				if a.Reason != "" {
					line += ": " + a.Reason
				}
				fmt.Fprintln(out, line)
				if a.Type == "approval" && a.State == store.RunWaiting {
					fmt.Fprintf(out, "          approve with: slipway approve %d   reject with: slipway reject %d --comment WHY\n", d.ID, d.ID)
				}
			}
		}
		if ended(d.State) {
			fmt.Fprintf(out, "run %d %s in %s\n", d.ID, d.State, duration(d.StartedAt, d.EndedAt))
			if d.State != store.RunSucceeded {
				return fmt.Errorf("run %d %s: %s", d.ID, d.State, orDash(d.Reason))
			}
			return nil
		}
		if f, ok := out.(*os.File); ok && isTerminal(f) {
			fmt.Fprintf(out, "%s run %d %s\r", spin[i%len(spin)], d.ID, d.State)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func streamLogs(cmd *cobra.Command, c *client.Client, p printer, id, action string, follow bool) error {
	d, err := getRun(cmd.Context(), c, id)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	for _, a := range d.Actions {
		names[a.ID] = a.Stage + "/" + a.Name
	}
	if action != "" {
		found := false
		for _, n := range names {
			if n == action || strings.HasSuffix(n, "/"+action) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("run %s has no action %q", id, action)
		}
	}
	out := cmd.OutOrStdout()
	print := func(l store.LogLine) {
		n, ok := names[l.ActionID]
		if !ok { // an action started after we listed them: refresh the names
			if d, err := getRun(cmd.Context(), c, id); err == nil {
				for _, a := range d.Actions {
					names[a.ID] = a.Stage + "/" + a.Name
				}
			}
			n = names[l.ActionID]
		}
		if action != "" && n != action && !strings.HasSuffix(n, "/"+action) {
			return
		}
		if p.json {
			_ = p.jsonLine(struct {
				store.LogLine
				Action string `json:"action"`
			}{l, n})
			return
		}
		fmt.Fprintf(out, "%s %s | %s\n", l.At.Local().Format("15:04:05.000"), n, l.Line)
	}
	if !follow {
		var after int64
		for {
			var lines []store.LogLine
			if err := c.Do(cmd.Context(), "GET", fmt.Sprintf("/api/v1/runs/%s/logs?after=%d", pathEscape(id), after), nil, &lines); err != nil {
				return err
			}
			if len(lines) == 0 {
				return nil
			}
			for _, l := range lines {
				after = l.ID
				print(l)
			}
		}
	}
	return c.Events(cmd.Context(), "/api/v1/runs/"+pathEscape(id)+"/logs?follow=true", func(event string, data []byte) (bool, error) {
		switch event {
		case "line":
			var l store.LogLine
			if err := json.Unmarshal(data, &l); err != nil {
				return false, err
			}
			print(l)
		case "end":
			var end struct{ State, Reason string }
			_ = json.Unmarshal(data, &end)
			fmt.Fprintf(cmd.ErrOrStderr(), "run %s %s\n", id, end.State)
			return true, nil
		}
		return false, nil
	})
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
