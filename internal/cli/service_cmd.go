package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
	"github.com/spf13/cobra"
)

func taskdefCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "taskdef", Short: "ECS task definitions (family:revision)"}
	register := &cobra.Command{
		Use:   "register FILE",
		Short: "Register taskdef.json as the next revision of its family",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var out struct {
				store.TaskDefRevision
				Ignored []string `json:"ignored_fields"`
			}
			if err := c.Do(cmd.Context(), "POST", "/api/v1/taskdefs", json.RawMessage(data), &out); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if p.json {
				return p.emit(out, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Registered %s:%d\n", out.Family, out.Revision)
			for _, f := range out.Ignored {
				fmt.Fprintf(cmd.ErrOrStderr(), "  ignored: %s (no meaning on this platform)\n", f)
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list [FAMILY]",
		Short: "List task definition revisions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			q := ""
			if len(args) == 1 {
				q = "?family=" + url.QueryEscape(args[0])
			}
			var tds []store.TaskDefRevision
			if err := c.Do(cmd.Context(), "GET", "/api/v1/taskdefs"+q, nil, &tds); err != nil {
				return err
			}
			return p.emit(tds, func(w *tabwriter.Writer) {
				row(w, "TASK DEFINITION", "STATUS", "REGISTERED", "BY")
				for _, t := range tds {
					row(w, fmt.Sprintf("%s:%d", t.Family, t.Revision), t.Status, humanTime(t.RegisteredAt), t.RegisteredBy)
				}
			})
		},
	}
	show := &cobra.Command{
		Use:   "show FAMILY[:REVISION]",
		Short: "Show a task definition (the latest active revision by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			family, rev, _ := strings.Cut(args[0], ":")
			if rev == "" {
				rev = "latest"
			}
			var td store.TaskDefRevision
			if err := c.Do(cmd.Context(), "GET", "/api/v1/taskdefs/"+pathEscape(family)+"/"+pathEscape(rev), nil, &td); err != nil {
				return err
			}
			var pretty bytes.Buffer
			_ = json.Indent(&pretty, td.Body, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			return nil
		},
	}
	deregister := &cobra.Command{
		Use:   "deregister FAMILY:REVISION",
		Short: "Mark a revision inactive (services cannot move to it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			family, rev, ok := strings.Cut(args[0], ":")
			if !ok {
				return fmt.Errorf("name the revision: FAMILY:REVISION")
			}
			return sendAndSay(cmd, "DELETE", "/api/v1/taskdefs/"+pathEscape(family)+"/"+pathEscape(rev), nil)
		},
	}
	var container, image, detailFile string
	render := &cobra.Command{
		Use:   "render FILE [--container NAME --image URI] [--image-detail imageDetail.json]",
		Short: "Print FILE with a container's image replaced, or <IMAGE1_NAME> filled from imageDetail.json",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if detailFile != "" {
				b, err := os.ReadFile(detailFile)
				if err != nil {
					return err
				}
				var d struct{ ImageURI string }
				if err := json.Unmarshal(b, &d); err != nil || d.ImageURI == "" {
					return fmt.Errorf("%s: not an imageDetail.json with ImageURI", detailFile)
				}
				data = taskdef.FillPlaceholders(data, d.ImageURI)
			}
			td, _, err := taskdef.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if container != "" || image != "" {
				if container == "" || image == "" {
					return fmt.Errorf("--container and --image go together")
				}
				if err := taskdef.Render(td, container, image); err != nil {
					return err
				}
			}
			out, _ := json.MarshalIndent(td, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	render.Flags().StringVar(&container, "container", "", "container whose image to replace")
	render.Flags().StringVar(&image, "image", "", "the new image URI")
	render.Flags().StringVar(&detailFile, "image-detail", "", "imageDetail.json whose ImageURI fills <IMAGE1_NAME>")
	cmd.AddCommand(register, list, show, deregister, render)
	return cmd
}

// serviceRef reads SERVICE and --app/--env into the API path.
type serviceRef struct{ app, env string }

func (s *serviceRef) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.app, "app", "", "app (default: $SLIPWAY_APP, or the app whose repository this git clone's remote points at)")
	cmd.Flags().StringVar(&s.env, "env", "", "environment, e.g. staging (required)")
	_ = cmd.MarkFlagRequired("env")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if s.app != "" {
			return nil
		}
		app, err := defaultApp(cmd.Context())
		s.app = app
		return err
	}
}

func (s *serviceRef) path(name string) string {
	p := "/api/v1/apps/" + pathEscape(s.app) + "/envs/" + pathEscape(s.env) + "/services"
	if name != "" {
		p += "/" + pathEscape(name)
	}
	return p
}

type lbFlags struct {
	container, healthPath, interval, timeout, matcher, drain string
	port, listener, testListener, healthy, unhealthy         int
	host, testHost, pathPrefix                               string
	priority                                                 int
	https, redirectHTTPS, hsts                               bool
}

func (l *lbFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&l.container, "lb-container", "", "container that receives traffic")
	f.IntVar(&l.port, "lb-container-port", 0, "its port")
	f.IntVar(&l.listener, "listener-port", 0, "load balancer port on 127.0.0.1")
	f.IntVar(&l.testListener, "test-listener-port", 0, "test listener port (blue/green)")
	f.StringVar(&l.healthPath, "health-path", "/", "health check path")
	f.StringVar(&l.interval, "health-interval", "5s", "health check interval")
	f.StringVar(&l.timeout, "health-timeout", "2s", "health check timeout")
	f.IntVar(&l.healthy, "healthy-threshold", 2, "consecutive passes to become healthy")
	f.IntVar(&l.unhealthy, "unhealthy-threshold", 2, "consecutive failures to become unhealthy")
	f.StringVar(&l.matcher, "health-matcher", "200-399", "accepted status codes")
	f.StringVar(&l.drain, "deregistration-delay", "5s", "how long draining tasks may finish requests")
	f.StringVar(&l.host, "host", "", "claim this host (api.example.com, *.example.com) on the shared listeners")
	f.StringVar(&l.testHost, "test-host", "", "host of the test traffic (blue/green) on the shared listeners")
	f.StringVar(&l.pathPrefix, "path-prefix", "", "claim only paths under this prefix of the host (/api)")
	f.IntVar(&l.priority, "priority", 0, "rule priority on the shared listeners, lower first (0: by specificity)")
	f.BoolVar(&l.https, "https", false, "serve the host over HTTPS too (a certificate from `slipway cert add` or ACME)")
	f.BoolVar(&l.redirectHTTPS, "redirect-https", false, "redirect plain-HTTP requests for the host to HTTPS")
	f.BoolVar(&l.hsts, "hsts", false, "send Strict-Transport-Security on HTTPS responses")
}

func (l *lbFlags) value(cmd *cobra.Command) *store.LoadBalancer {
	if !cmd.Flags().Changed("listener-port") && !cmd.Flags().Changed("lb-container") && !cmd.Flags().Changed("host") {
		return nil
	}
	return &store.LoadBalancer{ContainerName: l.container, ContainerPort: l.port, ListenerPort: l.listener, TestListenerPort: l.testListener,
		HealthCheckPath: l.healthPath, HealthCheckInterval: l.interval, HealthCheckTimeout: l.timeout, HealthyThreshold: l.healthy,
		UnhealthyThreshold: l.unhealthy, Matcher: l.matcher, DeregistrationDelay: l.drain,
		Host: l.host, TestHost: l.testHost, PathPrefix: l.pathPrefix, Priority: l.priority, HTTPS: l.https, RedirectHTTPS: l.redirectHTTPS, HSTS: l.hsts}
}

func serviceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Services keep N tasks of a task definition running behind the load balancer"}

	var ref serviceRef
	var td string
	var desired int
	var wait bool
	var lbf lbFlags
	create := &cobra.Command{
		Use:   "create NAME --app A --env E --taskdef FAMILY[:REV] [--desired N] [--lb-container C --lb-container-port P --listener-port L] [--wait]",
		Short: "Create a service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0], "task_definition": td, "desired_count": desired}
			if l := lbf.value(cmd); l != nil {
				body["load_balancer"] = l
			}
			var s server.CreatedService
			if err := c.Do(cmd.Context(), "POST", ref.path(""), body, &s); err != nil {
				return err
			}
			if p.json {
				return p.emit(s, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created service %s in %s/%s: %d × %s:%d (deployment %d rolls it out: slipway deploy show %d)\n", s.Name, s.App, s.Env, s.Desired, s.Family, s.Revision, s.DeploymentID, s.DeploymentID)
			for _, u := range serviceURLs(s.LoadBalancer) {
				fmt.Fprintf(cmd.OutOrStdout(), "  serving on %s\n", u)
			}
			if wait {
				return waitDeployment(cmd, c, s.DeploymentID)
			}
			return nil
		},
	}
	ref.flags(create)
	create.Flags().StringVar(&td, "taskdef", "", "task definition FAMILY or FAMILY:REVISION (required)")
	create.Flags().IntVar(&desired, "desired", 1, "desired task count")
	create.Flags().BoolVar(&wait, "wait", false, "follow the first rollout until every task is healthy; exit 0 only then")
	lbf.add(create)

	var uref serviceRef
	var utd string
	var udesired int
	var ulbf lbFlags
	var uforce bool
	update := &cobra.Command{
		Use:   "update NAME --app A --env E [--taskdef FAMILY[:REV]] [--desired N] [--force-new-deployment] [load balancer flags]",
		Short: "Change a service's task definition, count or load balancer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			body := map[string]any{}
			if utd != "" {
				body["task_definition"] = utd
			}
			if cmd.Flags().Changed("desired") {
				body["desired_count"] = udesired
			}
			if l := ulbf.value(cmd); l != nil {
				body["load_balancer"] = l
			}
			if uforce {
				body["force_new_deployment"] = true
			}
			// A changed revision answers the service and the deployment it
			// started; anything else answers the service alone.
			var raw json.RawMessage
			if err := c.Do(cmd.Context(), "PATCH", uref.path(args[0]), body, &raw); err != nil {
				return err
			}
			var started struct {
				Service    store.Service     `json:"service"`
				Deployment *store.Deployment `json:"deployment"`
			}
			if err := json.Unmarshal(raw, &started); err != nil {
				return err
			}
			if started.Deployment == nil {
				if err := json.Unmarshal(raw, &started.Service); err != nil {
					return err
				}
			}
			s, d := started.Service, started.Deployment
			return p.emit(raw, func(w *tabwriter.Writer) {
				row(w, "Updated service "+s.Name+":", fmt.Sprintf("%d × %s:%d", s.Desired, s.Family, s.Revision))
				if d != nil {
					row(w, fmt.Sprintf("Deployment %d:", d.ID), fmt.Sprintf("%s to %s:%d (follow it: slipway deploy show %d)", d.Strategy, d.ToFamily, d.ToRevision, d.ID))
				}
			})
		},
	}
	uref.flags(update)
	update.Flags().StringVar(&utd, "taskdef", "", "task definition FAMILY or FAMILY:REVISION")
	update.Flags().IntVar(&udesired, "desired", 0, "desired task count")
	update.Flags().BoolVar(&uforce, "force-new-deployment", false, "replace the tasks even if the revision stays (a rolling deployment)")
	ulbf.add(update)

	var sref serviceRef
	scale := &cobra.Command{
		Use:   "scale NAME N --app A --env E",
		Short: "Set the desired task count",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("count %q is not a number", args[1])
			}
			var s store.Service
			if err := c.Do(cmd.Context(), "PATCH", sref.path(args[0]), map[string]any{"desired_count": n}, &s); err != nil {
				return err
			}
			unit := "tasks"
			if s.Desired == 1 {
				unit = "task"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Service %s will run %d %s\n", s.Name, s.Desired, unit)
			return nil
		},
	}
	sref.flags(scale)

	var aref serviceRef
	var auto store.Autoscaling
	var autoOff bool
	autoscale := &cobra.Command{
		Use:   "autoscale NAME --app A --env E (--min N --max N TARGET... | --off)",
		Short: "Scale a service with its load: target tracking of requests per task, CPU or memory",
		Long: `Target tracking as ECS service auto scaling does it with its predefined metrics.
Every few seconds Slipway measures, over --window, what each target tracks:
  --target-requests-per-second R  requests each task should serve, as the load
                                  balancer counts them (ALBRequestCountPerTarget)
  --target-cpu-percent P          the tasks' mean CPU use, in percent of the CPU
                                  their task definition reserves (one vCPU if none)
  --target-memory-percent P       the tasks' mean memory use, in percent of the
                                  memory their task definition reserves
and sets the desired count to the tasks needed to bring each to its target,
the most any target asks for, between --min and --max. A scale-out waits
--scale-out-cooldown after the last one; a scale-in waits --scale-in-cooldown
after any. A deployment in progress holds the count until it ends.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			path := aref.path(args[0]) + "/autoscaling"
			if autoOff {
				if err := c.Do(cmd.Context(), "DELETE", path, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Auto scaling of %s is off; its desired count stays where it is\n", args[0])
				return nil
			}
			for _, f := range []string{"min", "max"} {
				if !cmd.Flags().Changed(f) {
					return fmt.Errorf("--%s is required (or --off to turn auto scaling off)", f)
				}
			}
			if !cmd.Flags().Changed("target-requests-per-second") && !cmd.Flags().Changed("target-cpu-percent") && !cmd.Flags().Changed("target-memory-percent") {
				return errors.New("give a target to track: --target-requests-per-second, --target-cpu-percent or --target-memory-percent (or --off to turn auto scaling off)")
			}
			var s store.Service
			if err := c.Do(cmd.Context(), "PUT", path, auto, &s); err != nil {
				return err
			}
			if p.json {
				return p.emit(s, nil)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Service %s scales %s\n", s.Name, autoscalingText(s.Autoscaling))
			return nil
		},
	}
	aref.flags(autoscale)
	af := autoscale.Flags()
	af.IntVar(&auto.MinCount, "min", 0, "fewest tasks (1–100)")
	af.IntVar(&auto.MaxCount, "max", 0, "most tasks (min–100)")
	af.Float64Var(&auto.TargetRequestsPerSecond, "target-requests-per-second", 0, "requests per second each task should serve")
	af.Float64Var(&auto.TargetCPUPercent, "target-cpu-percent", 0, "mean CPU use of the tasks, in percent of their reservation (1–100)")
	af.Float64Var(&auto.TargetMemoryPercent, "target-memory-percent", 0, "mean memory use of the tasks, in percent of their reservation (1–100)")
	af.StringVar(&auto.Window, "window", "", "how far back the rate is measured, 5s–2m (default 1m)")
	af.StringVar(&auto.ScaleOutCooldown, "scale-out-cooldown", "", "wait after a scale-out before the next (default 1m)")
	af.StringVar(&auto.ScaleInCooldown, "scale-in-cooldown", "", "wait after any scaling before a scale-in (default 5m)")
	af.BoolVar(&autoOff, "off", false, "turn auto scaling off; the desired count stays where it is")

	var shref serviceRef
	show := &cobra.Command{
		Use:   "show NAME --app A --env E",
		Short: "Show a service, its tasks and recent events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return read(cmd, shref.path(args[0]), func(w *tabwriter.Writer, d serviceDetail) {
				row(w, "Service:", d.Name)
				row(w, "App / env:", d.App+" / "+d.Env)
				row(w, "Task definition:", fmt.Sprintf("%s:%d", d.Family, d.Revision))
				row(w, "Desired / running:", fmt.Sprintf("%d / %d", d.Desired, d.Running))
				if d.LoadBalancer != nil {
					row(w, "Listener:", fmt.Sprintf("%s → %s:%d (health %s)", strings.Join(serviceURLs(d.LoadBalancer), ", "), d.LoadBalancer.ContainerName, d.LoadBalancer.ContainerPort, d.LoadBalancer.HealthCheckPath))
				}
				if d.Autoscaling != nil {
					row(w, "Auto scaling:", autoscalingText(d.Autoscaling))
				}
				if !d.AutoscaledOutAt.IsZero() || !d.AutoscaledInAt.IsZero() {
					row(w, "Last scaled:", "out "+humanTime(d.AutoscaledOutAt)+", in "+humanTime(d.AutoscaledInAt))
				}
				if u := d.Utilization; u != nil {
					row(w, "Utilization:", u.Text()+" of the reservation (mean over the last "+u.Window+")")
				}
				row(w, "")
				printTasks(w, d.Tasks)
				row(w, "")
				row(w, "EVENTS")
				for _, e := range d.Events {
					// A task's stop says its last output on a line of its own.
					first, rest, _ := strings.Cut(e.Message, "\n")
					row(w, humanTime(e.At), first+repeats(e))
					for _, l := range strings.Split(rest, "\n") {
						if l != "" {
							row(w, "", "  "+l)
						}
					}
				}
			})
		},
	}
	shref.flags(show)

	var pref serviceRef
	ps := &cobra.Command{
		Use:   "ps NAME --app A --env E",
		Short: "List a service's tasks: status, health, endpoint, revision",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			var d serviceDetail
			if err := c.Do(cmd.Context(), "GET", pref.path(args[0]), nil, &d); err != nil {
				return err
			}
			return p.emit(d.Tasks, func(w *tabwriter.Writer) { printTasks(w, d.Tasks) })
		},
	}
	pref.flags(ps)

	var lref serviceRef
	// serviceSummary is a service as the list answers it: counts as of the
	// server's last reconcile pass.
	type serviceSummary struct {
		store.Service
		Running int `json:"running_count"`
		Healthy int `json:"healthy_count"`
		Pending int `json:"pending_count"`
	}
	list := &cobra.Command{
		Use:   "list [--app A] [--env E]",
		Short: "List services",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := setup(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if lref.app != "" {
				q.Set("app", lref.app)
			}
			if lref.env != "" {
				q.Set("env", lref.env)
			}
			var svcs []serviceSummary
			if err := c.Do(cmd.Context(), "GET", "/api/v1/services?"+q.Encode(), nil, &svcs); err != nil {
				return err
			}
			return p.emit(svcs, func(w *tabwriter.Writer) {
				row(w, "APP", "ENV", "SERVICE", "TASK DEFINITION", "DESIRED", "RUNNING", "HEALTHY", "PENDING", "AUTO SCALING", "LISTENER")
				for _, s := range svcs {
					listener, auto := "-", "-"
					if s.LoadBalancer != nil {
						var where []string
						if s.LoadBalancer.ListenerPort != 0 {
							where = append(where, fmt.Sprintf("127.0.0.1:%d", s.LoadBalancer.ListenerPort))
						}
						if s.LoadBalancer.Host != "" {
							where = append(where, s.LoadBalancer.Host+s.LoadBalancer.PathPrefix)
						}
						listener = strings.Join(where, ",")
					}
					if a := s.Autoscaling; a != nil {
						auto = fmt.Sprintf("%d–%d at %s", a.MinCount, a.MaxCount, a.TargetsText())
					}
					row(w, s.App, s.Env, s.Name, fmt.Sprintf("%s:%d", s.Family, s.Revision), s.Desired, s.Running, s.Healthy, s.Pending, auto, listener)
				}
			})
		},
	}
	list.Flags().StringVar(&lref.app, "app", "", "only this app")
	list.Flags().StringVar(&lref.env, "env", "", "only this environment")

	var dref serviceRef
	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME --app A --env E --yes",
		Short: "Delete a service; its tasks drain and stop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting service %s stops its tasks; repeat with --yes to confirm", args[0])
			}
			c, _, err := setup(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", dref.path(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted service %s; its tasks are draining\n", args[0])
			return nil
		},
	}
	dref.flags(del)
	del.Flags().BoolVar(&yes, "yes", false, "confirm")

	var logref serviceRef
	var follow bool
	var since, taskID string
	logs := &cobra.Command{
		Use:   "logs NAME --app A --env E [--since 10m] [--task ID] [--follow]",
		Short: "Print the service's container output, a stopped or crashed task's too",
		Long: `Print the output of the service's task containers as Slipway keeps it (CloudWatch
Logs style: a log group per service or awslogs-group, a stream per container
of a task), oldest first, for as long as the server's retention keeps it
(7 days by default): a task that crashed or was replaced still shows.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			q := url.Values{}
			if follow {
				q.Set("follow", "true")
			}
			if since != "" {
				if _, err := server.ParseSince(since, time.Now()); err != nil {
					return fmt.Errorf("--%w", err) // refused before the server is asked
				}
				q.Set("since", since)
			}
			if taskID != "" {
				q.Set("task", taskID)
			}
			path := logref.path(args[0]) + "/logs"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			p, err := outputOf(cmd)
			if err != nil {
				return err
			}
			accept := ""
			if p.json {
				accept = "application/x-ndjson"
			}
			resp, err := c.Stream(cmd.Context(), path, accept)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if p.json && resp.Header.Get("Content-Type") != "application/x-ndjson" {
				// A server that answers text only: its lines are parsed.
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					if err := p.jsonLine(parseTaskLogLine(sc.Text())); err != nil {
						return err
					}
				}
				return sc.Err()
			}
			// Text for people, or one JSON object a line: handed on as it comes.
			_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
			return err
		},
	}
	logref.flags(logs)
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new lines")
	logs.Flags().StringVar(&since, "since", "", "only lines from this long ago on (10m, 2h, 2d) or since an RFC 3339 time")
	logs.Flags().StringVar(&taskID, "task", "", "only this task's lines")

	cmd.AddCommand(create, update, scale, autoscale, show, ps, list, del, logs)
	return cmd
}

// taskLogLine is one line of a service's logs, which the server streams as
// "TASK/CONTAINER | TIMESTAMP TEXT".
type taskLogLine struct {
	Task      string    `json:"task"`
	Container string    `json:"container"`
	At        time.Time `json:"at,omitzero"`
	Line      string    `json:"line"`
}

func parseTaskLogLine(s string) taskLogLine {
	source, rest, ok := strings.Cut(s, " | ")
	if !ok {
		return taskLogLine{Line: s}
	}
	var l taskLogLine
	l.Task, l.Container, _ = strings.Cut(source, "/")
	l.Line = rest
	if ts, text, ok := strings.Cut(rest, " "); ok {
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			l.At, l.Line = at, text
		}
	}
	return l
}

type taskView struct {
	ID         string `json:"id"`
	Family     string `json:"family"`
	Revision   int    `json:"revision"`
	Status     string `json:"status"`
	Health     string `json:"health"`
	Group      string `json:"group"`
	Target     string `json:"target_health"`
	Endpoint   string `json:"endpoint"`
	Containers []struct {
		Name  string `json:"name"`
		Image string `json:"image"`
	} `json:"containers"`
}

type serviceDetail struct {
	store.Service
	Running     int                  `json:"running_count"`
	Tasks       []taskView           `json:"tasks"`
	Events      []store.ServiceEvent `json:"events"`
	Utilization *deploy.Utilization  `json:"utilization"`
}

func printTasks(w *tabwriter.Writer, tasks []taskView) {
	// HEALTH is the containers' own check; TARGET is the load balancer's.
	row(w, "TASK", "REVISION", "STATUS", "HEALTH", "TARGET", "ENDPOINT", "IMAGE")
	for _, t := range tasks {
		img := "-"
		if len(t.Containers) > 0 {
			img = t.Containers[0].Image
		}
		target := "-"
		if t.Target != "" {
			target = t.Group + " " + t.Target
		}
		row(w, t.ID, fmt.Sprintf("%s:%d", t.Family, t.Revision), t.Status, t.Health, target, orDash(t.Endpoint), img)
	}
}

// repeats says how many times in a row an event happened and when last
// (the server counts a repeat of a service's newest event on it), or
// nothing for one that happened once.
func repeats(e store.ServiceEvent) string {
	if e.Count <= 1 {
		return ""
	}
	return fmt.Sprintf(" ×%d, last %s", e.Count, humanTime(e.LastAt))
}

func autoscalingText(a *store.Autoscaling) string {
	return fmt.Sprintf("%d to %d tasks at %s (measured over %s; cooldowns: out %s, in %s)",
		a.MinCount, a.MaxCount, a.TargetsText(), a.Window, a.ScaleOutCooldown, a.ScaleInCooldown)
}

// serviceURLs are where a service serves: its own listener, its host.
func serviceURLs(l *store.LoadBalancer) []string {
	if l == nil {
		return nil
	}
	var out []string
	if l.ListenerPort != 0 {
		out = append(out, fmt.Sprintf("http://127.0.0.1:%d/", l.ListenerPort))
	}
	if l.Host != "" {
		scheme := "http"
		if l.HTTPS {
			scheme = "https"
		}
		out = append(out, scheme+"://"+l.Host+l.PathPrefix)
	}
	return out
}
