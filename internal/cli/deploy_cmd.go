package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/internal/client"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
	"github.com/spf13/cobra"
)

type deploymentDetail struct {
	store.Deployment
	Events []store.DeploymentEvent `json:"events"`
	Layout store.Layout            `json:"layout"`
}

func deployCmd() *cobra.Command {
	var ref serviceRef
	var td, tdFile, image, strategy, config, appspec, termination, timeout string
	var wait, circuit, rollback bool
	var minHealthy, maxPercent int
	var alarms []string
	cmd := &cobra.Command{
		Use:   "deploy SERVICE --app A --env E (--taskdef FAMILY:REV | --taskdef-file F [--image URI]) [--strategy rolling|blue-green] [--config NAME] [--appspec FILE] [--wait]",
		Short: "Deploy a task definition revision to a service (rolling or blue/green)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			if (td == "") == (tdFile == "") {
				return fmt.Errorf("give exactly one of --taskdef FAMILY:REV or --taskdef-file FILE")
			}
			if tdFile != "" {
				data, err := os.ReadFile(tdFile)
				if err != nil {
					return err
				}
				if image != "" {
					data = taskdef.FillPlaceholders(data, image)
				}
				var reg struct {
					Family   string `json:"family"`
					Revision int    `json:"revision"`
				}
				if err := c.Do(cmd.Context(), "POST", "/api/v1/taskdefs", json.RawMessage(data), &reg); err != nil {
					return fmt.Errorf("%s: %w", tdFile, err)
				}
				td = fmt.Sprintf("%s:%d", reg.Family, reg.Revision)
				fmt.Fprintf(cmd.ErrOrStderr(), "Registered %s\n", td)
			}
			settings := map[string]any{"circuit_breaker": circuit, "rollback": rollback}
			if minHealthy >= 0 {
				settings["minimum_healthy_percent"] = minHealthy
			}
			if maxPercent > 0 {
				settings["maximum_percent"] = maxPercent
			}
			if termination != "" {
				settings["termination_wait"] = termination
			}
			if timeout != "" {
				settings["timeout"] = timeout
			}
			var as []map[string]any
			for _, a := range alarms {
				alarm, err := parseAlarm(a)
				if err != nil {
					return err
				}
				as = append(as, alarm)
			}
			if len(as) > 0 {
				settings["alarms"] = as
			}
			body := map[string]any{"task_definition": td, "strategy": strategy, "config": config, "settings": settings}
			if appspec != "" {
				b, err := os.ReadFile(appspec)
				if err != nil {
					return err
				}
				body["appspec"] = string(b)
			}
			var d store.Deployment
			if err := c.Do(cmd.Context(), "POST", ref.path(args[0])+"/deployments", body, &d); err != nil {
				return err
			}
			if p.json && !wait {
				return p.emit(d, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deployment %d: %s %s → %s:%d (%s)\n", d.ID, d.Strategy, d.From(), d.ToFamily, d.ToRevision, d.Config)
			if wait {
				return waitDeployment(cmd, c, d.ID)
			}
			return nil
		},
	}
	ref.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&td, "taskdef", "", "task definition FAMILY:REVISION")
	f.StringVar(&tdFile, "taskdef-file", "", "register this taskdef.json first")
	f.StringVar(&image, "image", "", "image URI for <IMAGE1_NAME> in --taskdef-file")
	f.StringVar(&strategy, "strategy", "", "rolling (default) or blue-green (default with --appspec)")
	f.StringVar(&config, "config", "", "deployment configuration, e.g. CodeDeployDefault.ECSCanary10Percent5Minutes or Linear20PercentEvery5Seconds")
	f.StringVar(&appspec, "appspec", "", "CodeDeploy appspec.yaml (hooks; implies blue-green)")
	f.BoolVar(&wait, "wait", false, "follow the deployment; exit 0 only if it completes")
	f.StringVar(&timeout, "timeout", "", "fail (and roll back) after this long, e.g. 10m")
	f.IntVar(&minHealthy, "min-healthy-percent", -1, "rolling: minimum healthy percent (default 100)")
	f.IntVar(&maxPercent, "max-percent", 0, "rolling: maximum percent (default 200)")
	f.BoolVar(&circuit, "circuit-breaker", true, "rolling: fail after repeated failed launches")
	f.BoolVar(&rollback, "rollback", true, "roll back when the deployment fails")
	f.StringVar(&termination, "termination-wait", "", "blue/green: keep blue this long after success (default 5m)")
	f.StringArrayVar(&alarms, "alarm", nil, "roll back when green misbehaves: error_rate>0.05/10s or p99_ms>250/30s")

	list := &cobra.Command{
		Use:   "list [--app A] [--env E] [--service S]",
		Short: "List deployments",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			for _, k := range []string{"app", "env", "service"} {
				if v, _ := cmd.Flags().GetString(k); v != "" {
					q.Set(k, v)
				}
			}
			var ds []store.Deployment
			if err := c.Do(cmd.Context(), "GET", "/api/v1/deployments?"+q.Encode(), nil, &ds); err != nil {
				return err
			}
			return p.emit(ds, func(w *tabwriter.Writer) {
				row(w, "ID", "SERVICE", "STRATEGY", "FROM", "TO", "STATE", "PHASE", "GREEN %", "STARTED")
				for _, d := range ds {
					row(w, d.ID, d.App+"/"+d.Env+"/"+d.Service, d.Strategy, d.From(), fmt.Sprintf("%s:%d", d.ToFamily, d.ToRevision), d.State, d.Phase, d.GreenWeight, humanTime(d.CreatedAt))
				}
			})
		},
	}
	list.Flags().String("app", "", "only this app")
	list.Flags().String("env", "", "only this environment")
	list.Flags().String("service", "", "only this service")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a deployment: timeline and traffic split",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, "/api/v1/deployments/"+pathEscape(args[0]), func(w *tabwriter.Writer, d deploymentDetail) {
				row(w, "Deployment:", d.ID)
				row(w, "Service:", d.App+"/"+d.Env+"/"+d.Service)
				row(w, "Strategy:", d.Strategy+" ("+d.Config+")")
				row(w, "From → to:", fmt.Sprintf("%s → %s:%d", d.From(), d.ToFamily, d.ToRevision))
				row(w, "State:", d.State+" / "+d.Phase)
				if d.Reason != "" {
					reason, output := splitLastOutput(d.Reason)
					row(w, "Reason:", reason)
					for i, l := range output {
						label := ""
						if i == 0 {
							label = "Last output:"
						}
						row(w, label, l)
					}
				}
				row(w, "Traffic:", trafficLine(d.Layout))
				row(w, "")
				row(w, "TIME", "PHASE", "GREEN %", "EVENT")
				for _, e := range d.Events {
					row(w, e.At.Local().Format("15:04:05.000"), e.Phase, e.GreenWeight, e.Message)
				}
			})
		},
	}
	stop := &cobra.Command{
		Use:   "stop ID",
		Short: "Stop a deployment in progress and roll it back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "POST", "/api/v1/deployments/"+pathEscape(args[0])+"/stop", nil)
		},
	}
	promote := &cobra.Command{
		Use:   "promote ID",
		Short: "Skip a blue/green deployment's remaining canary or linear steps: green takes all production traffic once its checks pass",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "POST", "/api/v1/deployments/"+pathEscape(args[0])+"/promote", nil)
		},
	}
	cmd.AddCommand(list, show, stop, promote)
	return cmd
}

// splitLastOutput parts a failure's reason from the container's last
// output it quotes ("…; last output: A | B"), so each line shows on its own.
func splitLastOutput(reason string) (string, []string) {
	head, output, ok := strings.Cut(reason, "; last output: ")
	if !ok {
		return reason, nil
	}
	return head, strings.Split(output, " | ")
}

func trafficLine(l store.Layout) string {
	var parts []string
	for _, w := range l.Prod {
		rev := ""
		for _, s := range l.Sets {
			if s.Group == w.Group {
				rev = fmt.Sprintf(" %s:%d", s.Family, s.Revision)
			}
		}
		parts = append(parts, fmt.Sprintf("%s%s %d%%", w.Group, rev, w.Weight))
	}
	return strings.Join(parts, ", ") + " (test listener → " + l.Test + ")"
}

// parseAlarm reads METRIC>THRESHOLD/WINDOW.
func parseAlarm(s string) (map[string]any, error) {
	metric, rest, ok := strings.Cut(s, ">")
	if !ok {
		return nil, fmt.Errorf("--alarm %q must look like error_rate>0.05/10s or p99_ms>250/30s", s)
	}
	th, window, _ := strings.Cut(rest, "/")
	v, err := strconv.ParseFloat(th, 64)
	if err != nil {
		return nil, fmt.Errorf("--alarm %q: threshold %q is not a number", s, th)
	}
	a := map[string]any{"metric": metric, "threshold": v}
	if window != "" {
		a["window"] = window
	}
	return a, nil
}

// waitDeployment shows phase, healthy counts and traffic until the end.
func waitDeployment(cmd *cobra.Command, c *client.Client, id int64) error {
	out := cmd.OutOrStdout()
	seen := 0
	for {
		var d deploymentDetail
		if err := c.Do(cmd.Context(), "GET", fmt.Sprintf("/api/v1/deployments/%d", id), nil, &d); err != nil {
			return err
		}
		for _, e := range d.Events[seen:] {
			fmt.Fprintf(out, "%s  %-16s green %3d%%  %s\n", e.At.Local().Format("15:04:05"), e.Phase, e.GreenWeight, e.Message)
		}
		seen = len(d.Events)
		switch d.State {
		case store.DeployCompleted:
			return nil
		case store.DeployFailed, store.DeployRolledBack, store.DeployStopped:
			return fmt.Errorf("deployment %d %s: %s", d.ID, d.State, d.Reason)
		}
		select {
		case <-cmd.Context().Done():
			return context.Cause(cmd.Context())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func rollbackCmd() *cobra.Command {
	var ref serviceRef
	cmd := &cobra.Command{
		Use:   "rollback SERVICE --app A --env E",
		Short: "Return a service to its last successful revision (instant while blue is kept)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendAndSay(cmd, "POST", ref.path(args[0])+"/rollback", nil)
		},
	}
	ref.flags(cmd)
	return cmd
}
