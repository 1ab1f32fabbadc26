// Package slipwayfile reads slipway.yaml, Slipway's own pipeline file:
// its stages and actions, validated whole before a run starts, and the
// push triggers that decide whether a push starts one.
package slipwayfile

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/specfile"
	"github.com/slipway-dev/slipway/internal/store"
	"gopkg.in/yaml.v3"
)

// FileName is the pipeline file at the repository root.
const FileName = "slipway.yaml"

// Spec is the parsed slipway.yaml.
type Spec struct {
	On     On      `yaml:"on"`
	Mode   string  `yaml:"mode"`
	Stages []Stage `yaml:"stages"`
}

// On holds the triggers.
type On struct {
	Push *PushTrigger `yaml:"push"`
}

// PushTrigger filters pushes like GitHub Actions' on.push.
type PushTrigger struct {
	Branches []string `yaml:"branches"`
	Tags     []string `yaml:"tags"`
	Paths    []string `yaml:"paths"`
}

// Stage is an ordered group of actions.
type Stage struct {
	Name    string   `yaml:"name"`
	Actions []Action `yaml:"actions"`
}

// Action is one unit of work in a stage.
type Action struct {
	Name      string            `yaml:"name"`
	Type      string            `yaml:"type"`
	RunOrder  int               `yaml:"run-order"`
	Inputs    []string          `yaml:"inputs"`
	Outputs   []string          `yaml:"outputs"`
	Timeout   Duration          `yaml:"timeout"`
	Env       map[string]string `yaml:"env"`
	Buildspec string            `yaml:"buildspec"`
	// Image runs a build or test action's phases in a container of this image.
	Image   string `yaml:"image"`
	Command string `yaml:"command"`
	URL     string `yaml:"url"`
	// Image action settings.
	Dockerfile    string            `yaml:"dockerfile"`
	Target        string            `yaml:"target"`
	BuildArgs     map[string]string `yaml:"build-args"`
	Tags          []string          `yaml:"tags"`
	Repository    string            `yaml:"repository"`
	ContainerName string            `yaml:"container-name"`
	// Deploy action settings.
	Environment      string `yaml:"environment"`
	Service          string `yaml:"service"`
	Strategy         string `yaml:"strategy"`
	DeployConfig     string `yaml:"deployment-config"`
	TaskDef          string `yaml:"taskdef"`
	AppSpec          string `yaml:"appspec"`
	DesiredCount     int    `yaml:"desired-count"`
	ContainerPort    int    `yaml:"container-port"`
	ListenerPort     int    `yaml:"listener-port"`
	TestListenerPort int    `yaml:"test-listener-port"`
	// Host (and the rest) claims a host on the shared listeners, as
	// `slipway service create --host` does (see docs/edge.md).
	Host            string `yaml:"host"`
	TestHost        string `yaml:"test-host"`
	PathPrefix      string `yaml:"path-prefix"`
	HTTPS           bool   `yaml:"https"`
	RedirectHTTPS   bool   `yaml:"redirect-https"`
	HSTS            bool   `yaml:"hsts"`
	HealthCheckPath string `yaml:"health-check-path"`
	// HealthCheckInterval is the load balancer's check interval (default 5s).
	HealthCheckInterval string `yaml:"health-check-interval"`
	TerminationWait     string `yaml:"termination-wait"`
	// Autoscaling, when set, is the service's auto scaling; every run of
	// the action applies it, so the file stays the source of truth.
	Autoscaling *AutoscalingSpec `yaml:"autoscaling"`
	// Approval action settings.
	Message   string   `yaml:"message"`
	ReviewURL string   `yaml:"review-url"`
	Notify    []string `yaml:"notify"`
}

// AutoscalingSpec is a deploy action's auto scaling, as `slipway service
// autoscale` sets it.
type AutoscalingSpec struct {
	Min                     int     `yaml:"min"`
	Max                     int     `yaml:"max"`
	TargetRequestsPerSecond float64 `yaml:"target-requests-per-second"`
	TargetCPUPercent        float64 `yaml:"target-cpu-percent"`
	TargetMemoryPercent     float64 `yaml:"target-memory-percent"`
	Window                  string  `yaml:"window"`
	ScaleOutCooldown        string  `yaml:"scale-out-cooldown"`
	ScaleInCooldown         string  `yaml:"scale-in-cooldown"`
}

// ScalingKeys are auto scaling's settings as slipway.yaml spells them.
// ScalingKeys names the auto scaling settings as slipway.yaml spells them.
var ScalingKeys = deploy.ScalingKeys{AddLB: "give the action a listener-port", Names: map[string]string{
	"min_count": "min", "max_count": "max", "target_requests_per_second": "target-requests-per-second",
	"target_cpu_percent": "target-cpu-percent", "target_memory_percent": "target-memory-percent",
	"scale_out_cooldown": "scale-out-cooldown", "scale_in_cooldown": "scale-in-cooldown"}}

// Settings checks the spec and returns it as the service's settings, with
// defaults filled; lb is the service's load balancer (nil: none). Errors
// speak the file's key names.
func (a AutoscalingSpec) Settings(lb *store.LoadBalancer) (store.Autoscaling, error) {
	set := store.Autoscaling{MinCount: a.Min, MaxCount: a.Max, TargetRequestsPerSecond: a.TargetRequestsPerSecond,
		TargetCPUPercent: a.TargetCPUPercent, TargetMemoryPercent: a.TargetMemoryPercent,
		Window: a.Window, ScaleOutCooldown: a.ScaleOutCooldown, ScaleInCooldown: a.ScaleInCooldown}
	if err := deploy.ValidateAutoscaling(&set, lb, ScalingKeys); err != nil {
		return set, err
	}
	return set, nil
}

// Approval timeouts, as in CodePipeline: seven days unless set, and at most
// sixty; at least five minutes so a person has a chance to answer.
const (
	DefaultApprovalTimeout = 7 * 24 * time.Hour
	MinApprovalTimeout     = 5 * time.Minute
	MaxApprovalTimeout     = 60 * 24 * time.Hour
)

// Duration accepts Go duration strings such as "90s" or "10m".
type Duration struct{ time.Duration }

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		return &Error{File: FileName, Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%q is not a positive duration such as 90s or 10m", n.Value)}
	}
	d.Duration = v
	return nil
}

// Pipeline modes.
const (
	ModeSuperseded = "superseded"
	ModeQueued     = "queued"
	ModeParallel   = "parallel"
)

// imageTag is a Docker image tag.
var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ActionTypes are the kinds of action a stage may hold.
var ActionTypes = []string{"build", "test", "image", "deploy", "approval", "invoke"}

// SourceArtifact is the implicit output of the source action.
const SourceArtifact = "SourceArtifact"

// Error is a problem in slipway.yaml at a position. Parse returns them all
// as specfile.Errors; errors.As finds the first as an *Error.
type Error = specfile.Error

// Limits of the settings an action may have, checked when the file is read.
const (
	// MaxCommandTimeout is CodeBuild's longest build timeout (36 hours);
	// it bounds the actions that run commands: build, test, image, invoke.
	MaxCommandTimeout = 36 * time.Hour
	// MinListenerPort is the lowest port the load balancer listens on
	// (see deploy.ValidateLB): the ones below need privileges.
	MinListenerPort = 1024
	// Health checks more often than every second leave each check (4/5
	// of the interval) less time than a busy task takes to answer; less
	// often than every five minutes (ELB's longest) and a failing task
	// serves for ten.
	MinHealthCheckInterval = time.Second
	MaxHealthCheckInterval = 5 * time.Minute
)

var (
	modes      = []string{ModeSuperseded, ModeQueued, ModeParallel}
	strategies = []string{"rolling", "blue-green"}
	// exporters are the action types whose variables #{Action.VAR} reads:
	// a build or test action's env.exported-variables, an image action's
	// imageVars.
	exporters = []string{"build", "test", "image"}
	imageVars = []string{"IMAGE_URI", "IMAGE_DIGEST"}
)

// Parse reads and completely validates slipway.yaml: everything that can be
// checked before a run starts is, and every problem found is reported at
// once, as specfile.Errors (one line each, in file order).
func Parse(data []byte) (*Spec, error) {
	var spec Spec
	doc, err := specfile.Decode(FileName, data, &spec)
	if doc == nil {
		return nil, err
	}
	r := specfile.NewReport(FileName, doc, err)
	spec.validate(r)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return &spec, nil
}

// validate checks the meaning of a decoded spec and fills its defaults.
func (s *Spec) validate(r *specfile.Report) {
	switch s.Mode {
	case "":
		s.Mode = ModeSuperseded
	case ModeSuperseded, ModeQueued, ModeParallel:
	default:
		r.Addf([]any{"mode"}, "%s", specfile.Unknown(fmt.Sprintf("%q is not a mode", s.Mode), s.Mode, modes, "use superseded, queued or parallel"))
	}
	if p := s.On.Push; p != nil {
		for _, list := range []struct {
			key   string
			globs []string
		}{{"branches", p.Branches}, {"tags", p.Tags}, {"paths", p.Paths}} {
			for i, g := range list.globs {
				if _, err := specfile.Glob(strings.TrimPrefix(g, "!")); err != nil || strings.TrimPrefix(g, "!") == "" {
					r.Addf([]any{"on", "push", list.key, i}, "%q is not a valid glob", g)
				}
			}
		}
	}
	if len(s.Stages) == 0 {
		r.Addf([]any{"stages"}, "at least one stage is required")
	}
	stageNames := map[string]bool{}
	for si := range s.Stages {
		st := &s.Stages[si]
		switch {
		case st.Name == "":
			r.Addf([]any{"stages", si, "name"}, "every stage needs a name")
		case stageNames[st.Name]:
			r.Addf([]any{"stages", si, "name"}, "stage name %q is used twice; stage names must be unique", st.Name)
		}
		stageNames[st.Name] = true
		if len(st.Actions) == 0 {
			r.Addf([]any{"stages", si, "actions"}, "stage %q needs at least one action", st.Name)
		}
		actionNames := map[string]bool{}
		for ai := range st.Actions {
			a := &st.Actions[ai]
			at := func(rest ...any) []any { return append([]any{"stages", si, "actions", ai}, rest...) }
			switch {
			case a.Name == "":
				r.Addf(at("name"), "every action needs a name")
			case actionNames[a.Name]:
				r.Addf(at("name"), "action name %q is used twice in stage %q", a.Name, st.Name)
			}
			actionNames[a.Name] = true
			a.validate(r, at)
		}
	}
	s.crossCheck(r)
}

// validate checks one action on its own and fills its defaults; at gives
// the path of one of its settings.
func (a *Action) validate(r *specfile.Report, at func(...any) []any) {
	if !slices.Contains(ActionTypes, a.Type) {
		r.Addf(at("type"), "%s", specfile.Unknown(fmt.Sprintf("%q is not an action type", a.Type), a.Type, ActionTypes, "use one of "+strings.Join(ActionTypes, ", ")))
	}
	// Artifact names become directory names in work directories:
	// CodePipeline's rule keeps them from naming a path.
	for _, list := range []struct {
		key   string
		names []string
	}{{"inputs", a.Inputs}, {"outputs", a.Outputs}} {
		for i, n := range list.names {
			if err := artifact.ValidName(n); err != nil {
				r.Addf(at(list.key, i), "%v", err)
			}
		}
	}
	if a.RunOrder == 0 {
		a.RunOrder = 1
	}
	if a.RunOrder < 1 || a.RunOrder > 999 {
		r.Addf(at("run-order"), "must be between 1 and 999")
	}
	switch a.Type {
	case "build", "test", "image", "invoke":
		if a.Timeout.Duration > MaxCommandTimeout {
			r.Addf(at("timeout"), "must be at most %s (36 hours, CodeBuild's longest build timeout); got %s", MaxCommandTimeout, a.Timeout.Duration)
		}
	}
	if (a.Type == "build" || a.Type == "test") && a.Buildspec == "" {
		a.Buildspec = "buildspec.yml"
	}
	if a.Type == "image" {
		for ti, tag := range a.Tags {
			if !imageTag.MatchString(tag) {
				r.Addf(at("tags", ti), "%q is not a valid image tag (letters, digits, _ . -; at most 128)", tag)
			}
		}
		if a.Dockerfile == "" {
			a.Dockerfile = "Dockerfile"
		}
	}
	if a.Type == "deploy" {
		a.validateDeploy(r, at)
	} else if a.Autoscaling != nil {
		r.Addf(at("autoscaling"), "autoscaling belongs to deploy actions only")
	}
	if a.Type == "approval" {
		if a.Timeout.Duration == 0 {
			a.Timeout.Duration = DefaultApprovalTimeout
		}
		if a.Timeout.Duration < MinApprovalTimeout || a.Timeout.Duration > MaxApprovalTimeout {
			r.Addf(at("timeout"), "an approval timeout must be between 5m and 1440h (60 days); got %s", a.Timeout.Duration)
		}
		if len(a.Inputs) > 0 || len(a.Outputs) > 0 {
			r.Addf(at(), "an approval action takes no inputs or outputs")
		}
	} else if a.Message != "" || a.ReviewURL != "" || len(a.Notify) > 0 {
		r.Addf(at(), "message, review-url and notify belong to approval actions only")
	}
	if a.Type == "invoke" && a.Command == "" && a.URL == "" {
		r.Addf(at(), "an invoke action needs command or url")
	}
}

// validateDeploy checks a deploy action's settings as the deployment will:
// a mistake here would otherwise show only when the action runs, in a
// production stage after its approval.
func (a *Action) validateDeploy(r *specfile.Report, at func(...any) []any) {
	if a.Environment == "" || a.Service == "" {
		r.Addf(at(), "a deploy action needs environment and service")
	}
	if a.TaskDef == "" {
		a.TaskDef = "taskdef.json"
	}
	if a.Strategy != "" && !slices.Contains(strategies, a.Strategy) {
		r.Addf(at("strategy"), "%s", specfile.Unknown(fmt.Sprintf("%q must be rolling or blue-green", a.Strategy), a.Strategy, strategies, ""))
	}
	if len(a.Inputs) == 0 {
		r.Addf(at("inputs"), "a deploy action needs inputs holding imageDetail.json (or imagedefinitions.json) and %s", a.TaskDef)
	}
	if shift, err := deploy.ParseConfig(a.DeployConfig); err != nil {
		r.Addf(at("deployment-config"), "%v", err)
	} else if len(shift.Steps()) > 1 && (a.Strategy == "rolling" || a.Strategy == "" && a.AppSpec == "") {
		// A rolling deployment replaces tasks and shifts no traffic: the
		// canary or linear steps would be ignored without a word.
		r.Addf(at("deployment-config"), "%q shifts traffic in steps, which only a blue-green deployment does; set strategy: blue-green (an appspec makes it the default), or use CodeDeployDefault.ECSAllAtOnce", a.DeployConfig)
	}
	if a.Autoscaling != nil {
		// Whether the service has a load balancer is known at run time only.
		if _, err := a.Autoscaling.Settings(&store.LoadBalancer{}); err != nil {
			r.Addf(at("autoscaling"), "%v", err)
		}
	}
	if a.DesiredCount < 0 || a.DesiredCount > 100 {
		r.Addf(at("desired-count"), "must be 1 to 100 (left out: 1); got %d", a.DesiredCount)
	}
	if a.ContainerPort != 0 && (a.ContainerPort < 1 || a.ContainerPort > 65535) {
		r.Addf(at("container-port"), "must be a port from 1 to 65535; got %d", a.ContainerPort)
	}
	listenerOK := a.ListenerPort == 0 || validListenerPort(a.ListenerPort)
	if !listenerOK {
		r.Addf(at("listener-port"), "must be a port from %d to 65535; got %d", MinListenerPort, a.ListenerPort)
	}
	switch {
	case a.TestListenerPort == 0:
	case !validListenerPort(a.TestListenerPort):
		r.Addf(at("test-listener-port"), "must be a port from %d to 65535; got %d", MinListenerPort, a.TestListenerPort)
	case a.ListenerPort == 0:
		r.Addf(at("test-listener-port"), "needs a listener-port: the test listener is the load balancer's second port, for blue-green tests of green")
	case a.TestListenerPort == a.ListenerPort && listenerOK:
		r.Addf(at("test-listener-port"), "must differ from listener-port (both %d): the test listener serves green while the listener serves blue", a.ListenerPort)
	}
	if a.Host != "" {
		if err := lb.ValidHost(a.Host); err != nil {
			r.Addf(at("host"), "%v", err)
		}
	}
	switch {
	case a.TestHost == "":
	case a.Host == "":
		r.Addf(at("test-host"), "needs a host: the test host serves green while the host serves blue")
	case a.TestHost == a.Host:
		r.Addf(at("test-host"), "must differ from host (both %s)", a.Host)
	default:
		if err := lb.ValidHost(a.TestHost); err != nil {
			r.Addf(at("test-host"), "%v", err)
		}
	}
	for _, f := range []struct {
		key string
		set bool
	}{{"path-prefix", a.PathPrefix != ""}, {"https", a.HTTPS}} {
		if f.set && a.Host == "" {
			r.Addf(at(f.key), "needs a host to claim on the shared listeners")
		}
	}
	if err := lb.ValidPathPrefix(a.PathPrefix); err != nil {
		r.Addf(at("path-prefix"), "%v", err)
	}
	for _, f := range []struct {
		key string
		set bool
	}{{"redirect-https", a.RedirectHTTPS}, {"hsts", a.HSTS}} {
		if f.set && !a.HTTPS {
			r.Addf(at(f.key), "needs https: true")
		}
	}
	if a.HealthCheckPath != "" && !strings.HasPrefix(a.HealthCheckPath, "/") {
		r.Addf(at("health-check-path"), "%q must start with /, such as /health", a.HealthCheckPath)
	}
	if a.HealthCheckInterval != "" {
		if d, err := time.ParseDuration(a.HealthCheckInterval); err != nil || d < MinHealthCheckInterval || d > MaxHealthCheckInterval {
			r.Addf(at("health-check-interval"), "%q must be a duration from %s to %s, such as 5s", a.HealthCheckInterval, MinHealthCheckInterval, MaxHealthCheckInterval)
		}
	}
	if a.TerminationWait != "" {
		if d, err := time.ParseDuration(a.TerminationWait); err != nil || d < 0 || d > deploy.MaxTerminationWait {
			r.Addf(at("termination-wait"), "%q must be a duration from 0s to %s (2880 minutes), such as 5m", a.TerminationWait, deploy.MaxTerminationWait)
		}
	}
}

func validListenerPort(p int) bool { return p >= MinListenerPort && p <= 65535 }

// placed is an action with its place in the file.
type placed struct {
	si, ai int
	stage  string
	a      *Action
}

func (p placed) path(rest ...any) []any {
	return append([]any{"stages", p.si, "actions", p.ai}, rest...)
}

// before reports whether p has ended before q starts: it is in an earlier
// stage, or earlier in q's stage by run-order, as in CodePipeline.
func (p placed) before(q placed) bool {
	return p.si < q.si || p.si == q.si && p.a.RunOrder < q.a.RunOrder
}

func (p placed) String() string { return fmt.Sprintf("action %q of stage %q", p.a.Name, p.stage) }

// earliest keeps, of the actions given to it, the one that starts first:
// if any of them runs before an action, that one does.
type earliest map[string]placed

func (e earliest) add(key string, p placed) {
	if q, ok := e[key]; !ok || p.si < q.si || p.si == q.si && p.a.RunOrder < q.a.RunOrder {
		e[key] = p
	}
}

// runsBefore reports whether an action kept under key runs before p.
func (e earliest) runsBefore(key string, p placed) bool {
	q, ok := e[key]
	return ok && q.before(p)
}

// crossCheck checks what actions say of each other: the artifacts they
// pass, the variables they read and the ports of the services they create.
// It indexes the actions by name, so a file of many actions costs little
// more than their number.
func (s *Spec) crossCheck(r *specfile.Report) {
	var all []placed
	for si := range s.Stages {
		for ai := range s.Stages[si].Actions {
			all = append(all, placed{si, ai, s.Stages[si].Name, &s.Stages[si].Actions[ai]})
		}
	}
	// firstOutput is, by output name, its first action in the file;
	// producer the one that runs first.
	firstOutput := map[string]placed{}
	producer := earliest{}
	for _, p := range all {
		for oi, out := range p.a.Outputs {
			if artifact.ValidName(out) != nil {
				continue // said already
			}
			if out == SourceArtifact {
				r.Addf(p.path("outputs", oi), "artifact %q is already an output of the source action; output names must be unique", out)
			} else if prev, ok := firstOutput[out]; ok {
				r.Addf(p.path("outputs", oi), "artifact %q is already an output of %s; output names must be unique", out, prev)
			} else {
				firstOutput[out] = p
			}
			producer.add(out, p)
		}
	}
	// By action name: the first to run, and the first of each kind of
	// what it exports.
	named, buildOrTest, image, untyped := earliest{}, earliest{}, earliest{}, earliest{}
	for _, p := range all {
		named.add(p.a.Name, p)
		switch {
		case p.a.Type == "build" || p.a.Type == "test":
			buildOrTest.add(p.a.Name, p)
		case p.a.Type == "image":
			image.add(p.a.Name, p)
		case !slices.Contains(ActionTypes, p.a.Type):
			untyped.add(p.a.Name, p)
		}
	}
	// earlierOf lists what the actions running before p give by f.
	earlierOf := func(p placed, f func(q placed) []string) func() []string {
		return func() []string {
			var out []string
			for _, q := range all {
				if q.before(p) {
					out = append(out, f(q)...)
				}
			}
			return out
		}
	}
	for _, p := range all {
		for ii, in := range p.a.Inputs {
			if in == SourceArtifact || artifact.ValidName(in) != nil || producer.runsBefore(in, p) {
				continue
			}
			if q, ok := producer[in]; ok {
				r.Addf(p.path("inputs", ii), "no earlier action outputs artifact %q: %s outputs it but does not run before this action; an input must come from an earlier stage or a lower run-order", in, q)
				continue
			}
			visible := earlierOf(p, func(q placed) []string { return q.a.Outputs })
			r.Addf(p.path("inputs", ii), "%s", r.Unknown(fmt.Sprintf("no earlier action outputs artifact %q", in), in,
				func() []string { return append(visible(), SourceArtifact) }, "name an output of an earlier stage or run-order, or "+SourceArtifact))
		}
		for _, f := range refFields(p) {
			for _, m := range VarRef.FindAllStringSubmatch(f.value, -1) {
				ref, name, variable := m[0], m[1], m[2]
				const which = "a reference names a build, test or image action of an earlier stage or a lower run-order"
				first, ok := named[name]
				switch {
				case buildOrTest.runsBefore(name, p), untyped.runsBefore(name, p):
					// What a buildspec exports is known when it runs; an
					// action of no known type is refused already.
				case image.runsBefore(name, p) && slices.Contains(imageVars, variable):
				case !ok:
					exporting := earlierOf(p, func(q placed) []string {
						if slices.Contains(exporters, q.a.Type) {
							return []string{q.a.Name}
						}
						return nil
					})
					r.Addf(f.path, "%s", r.Unknown(fmt.Sprintf("%s: no action is named %q", ref, name), name, exporting, which))
				case !first.before(p):
					r.Addf(f.path, "%s: %s does not run before this action; %s", ref, first, which)
				case image.runsBefore(name, p):
					r.Addf(f.path, "%s", specfile.Unknown(fmt.Sprintf("%s: image %s exports IMAGE_URI and IMAGE_DIGEST only", ref, image[name]), variable, imageVars, ""))
				default:
					article := "a"
					if strings.ContainsRune("aeiou", rune(first.a.Type[0])) {
						article = "an"
					}
					r.Addf(f.path, "%s: %s is %s %s action, which exports no variables; %s", ref, first, article, first.a.Type, which)
				}
			}
		}
	}
	s.checkPorts(r, all)
}

type refField struct {
	path  []any
	value string
}

// refFields are the settings of p in which the engine replaces #{Action.VAR}.
func refFields(p placed) []refField {
	var out []refField
	switch p.a.Type {
	case "build", "test", "invoke":
		keys := slices.Sorted(maps.Keys(p.a.Env))
		for _, k := range keys {
			out = append(out, refField{p.path("env", k), p.a.Env[k]})
		}
	}
	switch p.a.Type {
	case "invoke":
		out = append(out, refField{p.path("command"), p.a.Command}, refField{p.path("url"), p.a.URL})
	case "approval":
		out = append(out, refField{p.path("review-url"), p.a.ReviewURL})
	}
	return out
}

// checkPorts refuses a listener port two services of the file would share:
// the second would fail to listen when its deploy action creates it.
func (s *Spec) checkPorts(r *specfile.Report, all []placed) {
	type claim struct {
		env, service, key string
		by                placed
	}
	claims := map[int]claim{}
	for _, p := range all {
		a := p.a
		if a.Type != "deploy" {
			continue
		}
		for _, c := range []struct {
			key  string
			port int
		}{{"listener-port", a.ListenerPort}, {"test-listener-port", a.TestListenerPort}} {
			if !validListenerPort(c.port) || c.key == "test-listener-port" && (a.ListenerPort == 0 || c.port == a.ListenerPort) {
				continue // refused already
			}
			prev, taken := claims[c.port]
			if !taken {
				claims[c.port] = claim{a.Environment, a.Service, c.key, p}
				continue
			}
			if prev.env != a.Environment || prev.service != a.Service || prev.key != c.key {
				r.Addf(p.path(c.key), "port %d is already the %s of service %s in %s (%s); each service needs ports of its own",
					c.port, prev.key, prev.service, prev.env, prev.by)
			}
		}
	}
}

// IsImageTag reports whether s can be an image's tag as Docker spells one.
func IsImageTag(s string) bool { return imageTag.MatchString(s) }

// VarRef is a reference #{Action.VAR} to a variable an earlier action of
// the run exported.
var VarRef = regexp.MustCompile(`#\{([A-Za-z0-9_.-]+)\.([A-Za-z_][A-Za-z0-9_]*)\}`)
