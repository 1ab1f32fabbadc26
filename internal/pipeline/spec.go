// Package pipeline reads slipway.yaml and runs pipelines.
package pipeline

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/deploy"
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
	HealthCheckPath  string `yaml:"health-check-path"`
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

// scalingKeys are auto scaling's settings as slipway.yaml spells them.
var scalingKeys = deploy.ScalingKeys{AddLB: "give the action a listener-port", Names: map[string]string{
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
	if err := deploy.ValidateAutoscaling(&set, lb, scalingKeys); err != nil {
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

var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ActionTypes are the kinds of action a stage may hold.
var ActionTypes = []string{"build", "test", "image", "deploy", "approval", "invoke"}

// SourceArtifact is the implicit output of the source action.
const SourceArtifact = "SourceArtifact"

// Error is a problem in slipway.yaml at a position.
type Error = specfile.Error

// Parse reads and completely validates slipway.yaml.
func Parse(data []byte) (*Spec, error) {
	var spec Spec
	doc, err := specfile.Decode(FileName, data, &spec)
	if err != nil {
		return nil, err
	}
	if err := spec.validate(doc); err != nil {
		return nil, err
	}
	return &spec, nil
}

// validate checks the meaning of a decoded spec; doc gives error positions.
func (s *Spec) validate(doc *yaml.Node) error {
	at := func(path ...any) *yaml.Node { return specfile.NodeAt(doc, path...) }
	fail := func(n *yaml.Node, field, format string, args ...any) error {
		e := &Error{File: FileName, Field: field, Message: fmt.Sprintf(format, args...)}
		if n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
		return e
	}
	switch s.Mode {
	case "":
		s.Mode = ModeSuperseded
	case ModeSuperseded, ModeQueued, ModeParallel:
	default:
		return fail(at("mode"), "mode", "%q is not a mode; use superseded, queued or parallel", s.Mode)
	}
	if p := s.On.Push; p != nil {
		for key, globs := range map[string][]string{"branches": p.Branches, "tags": p.Tags, "paths": p.Paths} {
			for i, g := range globs {
				if _, err := specfile.Glob(strings.TrimPrefix(g, "!")); err != nil || strings.TrimPrefix(g, "!") == "" {
					return fail(at("on", "push", key, i), "on.push."+key, "%q is not a valid glob", g)
				}
			}
		}
	}
	if len(s.Stages) == 0 {
		return fail(doc, "stages", "at least one stage is required")
	}
	outputs := map[string]string{SourceArtifact: "source"}
	stageNames := map[string]bool{}
	for si, st := range s.Stages {
		field := fmt.Sprintf("stages[%d]", si)
		if st.Name == "" {
			return fail(at("stages", si), field+".name", "every stage needs a name")
		}
		if stageNames[st.Name] {
			return fail(at("stages", si, "name"), field+".name", "stage name %q is used twice; stage names must be unique", st.Name)
		}
		stageNames[st.Name] = true
		if len(st.Actions) == 0 {
			return fail(at("stages", si), field+".actions", "stage %q needs at least one action", st.Name)
		}
		actionNames := map[string]bool{}
		// Outputs of this stage become visible to later run-orders only, as in CodePipeline.
		stageOutputs := map[int][]string{}
		for ai := range st.Actions {
			a := &s.Stages[si].Actions[ai]
			af := fmt.Sprintf("%s.actions[%d]", field, ai)
			if a.Name == "" {
				return fail(at("stages", si, "actions", ai), af+".name", "every action needs a name")
			}
			if actionNames[a.Name] {
				return fail(at("stages", si, "actions", ai, "name"), af+".name", "action name %q is used twice in stage %q", a.Name, st.Name)
			}
			actionNames[a.Name] = true
			if !slices.Contains(ActionTypes, a.Type) {
				return fail(at("stages", si, "actions", ai, "type"), af+".type", "%q is not an action type; use one of %s", a.Type, strings.Join(ActionTypes, ", "))
			}
			// Artifact names become directory names in work directories:
			// CodePipeline's rule keeps them from naming a path.
			for _, list := range []struct {
				key   string
				names []string
			}{{"inputs", a.Inputs}, {"outputs", a.Outputs}} {
				for i, n := range list.names {
					if err := artifact.ValidName(n); err != nil {
						return fail(at("stages", si, "actions", ai, list.key, i), fmt.Sprintf("%s.%s[%d]", af, list.key, i), "%v", err)
					}
				}
			}
			if a.RunOrder == 0 {
				a.RunOrder = 1
			}
			if a.RunOrder < 1 || a.RunOrder > 999 {
				return fail(at("stages", si, "actions", ai, "run-order"), af+".run-order", "must be between 1 and 999")
			}
			if (a.Type == "build" || a.Type == "test") && a.Buildspec == "" {
				a.Buildspec = "buildspec.yml"
			}
			if a.Type == "image" {
				for ti, tag := range a.Tags {
					if !imageTag.MatchString(tag) {
						return fail(at("stages", si, "actions", ai, "tags", ti), fmt.Sprintf("%s.tags[%d]", af, ti), "%q is not a valid image tag (letters, digits, _ . -; at most 128)", tag)
					}
				}
				if a.Dockerfile == "" {
					a.Dockerfile = "Dockerfile"
				}
			}
			if a.Type == "deploy" {
				if a.Environment == "" || a.Service == "" {
					return fail(at("stages", si, "actions", ai), af, "a deploy action needs environment and service")
				}
				if a.TaskDef == "" {
					a.TaskDef = "taskdef.json"
				}
				if a.Strategy != "" && a.Strategy != "rolling" && a.Strategy != "blue-green" {
					return fail(at("stages", si, "actions", ai, "strategy"), af+".strategy", "%q must be rolling or blue-green", a.Strategy)
				}
				if len(a.Inputs) == 0 {
					return fail(at("stages", si, "actions", ai), af+".inputs", "a deploy action needs inputs holding imageDetail.json (or imagedefinitions.json) and %s", a.TaskDef)
				}
				if a.Autoscaling != nil {
					// Whether the service has a load balancer is known at run time only.
					if _, err := a.Autoscaling.Settings(&store.LoadBalancer{}); err != nil {
						return fail(at("stages", si, "actions", ai, "autoscaling"), af+".autoscaling", "%v", err)
					}
				}
			} else if a.Autoscaling != nil {
				return fail(at("stages", si, "actions", ai, "autoscaling"), af+".autoscaling", "autoscaling belongs to deploy actions only")
			}
			if a.Type == "approval" {
				if a.Timeout.Duration == 0 {
					a.Timeout.Duration = DefaultApprovalTimeout
				}
				if a.Timeout.Duration < MinApprovalTimeout || a.Timeout.Duration > MaxApprovalTimeout {
					return fail(at("stages", si, "actions", ai, "timeout"), af+".timeout", "an approval timeout must be between 5m and 1440h (60 days); got %s", a.Timeout.Duration)
				}
				if len(a.Inputs) > 0 || len(a.Outputs) > 0 {
					return fail(at("stages", si, "actions", ai), af, "an approval action takes no inputs or outputs")
				}
			} else if a.Message != "" || a.ReviewURL != "" || len(a.Notify) > 0 {
				return fail(at("stages", si, "actions", ai), af, "message, review-url and notify belong to approval actions only")
			}
			if a.Type == "invoke" && a.Command == "" && a.URL == "" {
				return fail(at("stages", si, "actions", ai), af, "an invoke action needs command or url")
			}
		}
		for ai := range st.Actions {
			a := st.Actions[ai]
			for ii, in := range a.Inputs {
				_, ok := outputs[in]
				if !ok {
					for ro, outs := range stageOutputs {
						if ro < a.RunOrder && slices.Contains(outs, in) {
							ok = true
						}
					}
				}
				if !ok {
					return fail(at("stages", si, "actions", ai, "inputs", ii), fmt.Sprintf("%s.actions[%d].inputs[%d]", field, ai, ii),
						"no earlier action outputs artifact %q; name an output of an earlier stage or run-order, or %s", in, SourceArtifact)
				}
			}
			for oi, out := range a.Outputs {
				if _, dup := outputs[out]; dup || containsAny(stageOutputs, out) {
					return fail(at("stages", si, "actions", ai, "outputs", oi), fmt.Sprintf("%s.actions[%d].outputs[%d]", field, ai, oi),
						"artifact %q is already an output of another action; output names must be unique", out)
				}
				stageOutputs[a.RunOrder] = append(stageOutputs[a.RunOrder], out)
			}
		}
		for _, outs := range stageOutputs {
			for _, o := range outs {
				outputs[o] = st.Name
			}
		}
	}
	return nil
}
func containsAny(m map[int][]string, s string) bool {
	for _, l := range m {
		if slices.Contains(l, s) {
			return true
		}
	}
	return false
}
