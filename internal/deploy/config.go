package deploy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/specfile"
	"gopkg.in/yaml.v3"
)

// Shift is how production traffic moves to green.
type Shift struct {
	Kind     string        `json:"kind"` // all-at-once, canary, linear
	Percent  int           `json:"percent"`
	Interval time.Duration `json:"interval"`
}

// Steps lists the green weights in order and how long each is held.
func (s Shift) Steps() []struct {
	Weight int
	Hold   time.Duration
} {
	type step = struct {
		Weight int
		Hold   time.Duration
	}
	switch s.Kind {
	case "canary":
		return []step{{s.Percent, s.Interval}, {100, 0}}
	case "linear":
		var out []step
		for w := s.Percent; w < 100; w += s.Percent {
			out = append(out, step{w, s.Interval})
		}
		return append(out, step{100, 0})
	}
	return []step{{100, 0}}
}

// Predefined are CodeDeploy's ECS deployment configurations.
var Predefined = map[string]Shift{
	"CodeDeployDefault.ECSAllAtOnce":                    {Kind: "all-at-once"},
	"CodeDeployDefault.ECSCanary10Percent5Minutes":      {Kind: "canary", Percent: 10, Interval: 5 * time.Minute},
	"CodeDeployDefault.ECSCanary10Percent15Minutes":     {Kind: "canary", Percent: 10, Interval: 15 * time.Minute},
	"CodeDeployDefault.ECSLinear10PercentEvery1Minutes": {Kind: "linear", Percent: 10, Interval: time.Minute},
	"CodeDeployDefault.ECSLinear10PercentEvery3Minutes": {Kind: "linear", Percent: 10, Interval: 3 * time.Minute},
}

var custom = regexp.MustCompile(`^(Canary|Linear)(\d{1,2})Percent(?:Every)?(\d+)(Seconds|Minutes)$`)

// customFold is custom written in any case, to suggest its spelling.
var customFold = regexp.MustCompile(`(?i)^(canary|linear)(\d{1,2})percent(every)?(\d+)(seconds|minutes)$`)

// MaxShiftInterval bounds a custom configuration's interval, as the
// termination wait is bounded: a longer hold is a mistake, and a long
// number would overflow the interval.
const MaxShiftInterval = 2880 * time.Minute

// ConfigError is a deployment configuration name that names none.
type ConfigError struct {
	Name string
	// Suggestion is the valid name closest to Name, when one is close.
	Suggestion string
	// Reason says what is wrong with a custom name of the right form; it
	// is empty for a name that is not one.
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("deployment configuration %q: %s", e.Name, e.Reason)
	}
	msg := fmt.Sprintf("unknown deployment configuration %q", e.Name)
	allowed := "use one of " + strings.Join(ConfigNames(), ", ") + ", or a custom Canary<P>Percent<N>Seconds or Linear<P>PercentEvery<N>Minutes"
	if e.Suggestion != "" {
		return fmt.Sprintf("%s; did you mean %s? (%s)", msg, e.Suggestion, allowed)
	}
	return msg + "; " + allowed
}

// ConfigNames are the predefined configurations' names, sorted.
func ConfigNames() []string {
	names := make([]string, 0, len(Predefined))
	for n := range Predefined {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ValidateConfig checks a deployment configuration name ("" is the
// default, all at once) before a deployment needs it: the pipeline file
// is checked with it when it is read. Its error is a *ConfigError.
func ValidateConfig(name string) error {
	_, err := ParseConfig(name)
	return err
}

// ParseConfig resolves a configuration name: a predefined one, or a custom
// Canary<P>Percent<N>Seconds|Minutes / Linear<P>PercentEvery<N>Seconds|Minutes.
// Its error is a *ConfigError.
func ParseConfig(name string) (Shift, error) {
	if name == "" {
		name = "CodeDeployDefault.ECSAllAtOnce"
	}
	if s, ok := Predefined[name]; ok {
		return s, nil
	}
	m := custom.FindStringSubmatch(name)
	if m == nil {
		suggestion := specfile.Suggest(name, ConfigNames())
		if f := customFold.FindStringSubmatch(name); f != nil {
			// The custom form in the wrong case: its spelling is known.
			kind := strings.ToUpper(f[1][:1]) + strings.ToLower(f[1][1:])
			every := ""
			if kind == "Linear" {
				every = "Every"
			}
			spelt := kind + f[2] + "Percent" + every + f[4] + strings.ToUpper(f[5][:1]) + strings.ToLower(f[5][1:])
			if _, err := ParseConfig(spelt); err == nil {
				suggestion = spelt
			}
		}
		return Shift{}, &ConfigError{Name: name, Suggestion: suggestion}
	}
	pct, _ := strconv.Atoi(m[2])
	unit := time.Second
	if m[4] == "Minutes" {
		unit = time.Minute
	}
	// ParseInt fails for a number past int64; it is past the bound too.
	n, err := strconv.ParseInt(m[3], 10, 64)
	if pct < 1 || pct > 99 || err != nil || n < 1 || n > int64(MaxShiftInterval/unit) {
		return Shift{}, &ConfigError{Name: name, Reason: fmt.Sprintf("the percent must be 1–99 and the interval 1 to %d minutes (%d seconds)",
			int64(MaxShiftInterval/time.Minute), int64(MaxShiftInterval/time.Second))}
	}
	return Shift{Kind: strings.ToLower(m[1]), Percent: pct, Interval: time.Duration(n) * unit}, nil
}

// Hook is a lifecycle hook: a command (on the host, or in a container when
// Image is set) or an HTTP check, each with a timeout.
type Hook struct {
	Command      string   `json:"command,omitempty" yaml:"command"`
	Image        string   `json:"image,omitempty" yaml:"image"`
	URL          string   `json:"url,omitempty" yaml:"url"`
	ExpectStatus int      `json:"expect_status,omitempty" yaml:"expect-status"`
	Timeout      Duration `json:"timeout,omitempty" yaml:"timeout"`
}

// Duration reads "30s" from JSON and YAML.
type Duration struct{ time.Duration }

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	d.Duration = v
	return err
}

// UnmarshalYAML reads "30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// Alarm rolls a deployment back when green's traffic misbehaves.
type Alarm struct {
	Metric    string   `json:"metric"` // error_rate (0–1) or p99_ms
	Threshold float64  `json:"threshold"`
	Window    Duration `json:"window"`
	// MinRequests avoids judging a window with too little traffic.
	MinRequests int64 `json:"min_requests"`
}

// Settings tune a deployment.
type Settings struct {
	MinHealthyPercent int             `json:"minimum_healthy_percent"`
	MaxPercent        int             `json:"maximum_percent"`
	CircuitBreaker    bool            `json:"circuit_breaker"`
	Rollback          bool            `json:"rollback"`
	TerminationWait   Duration        `json:"termination_wait"`
	Timeout           Duration        `json:"timeout"`
	Hooks             map[string]Hook `json:"hooks,omitempty"`
	Alarms            []Alarm         `json:"alarms,omitempty"`
}

// MaxTerminationWait is the longest blue is kept after a blue/green
// deployment, as on CodeDeploy (2880 minutes).
const MaxTerminationWait = 2880 * time.Minute

// LifecycleEvents that run hooks, in order.
var LifecycleEvents = []string{"BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"}

// Defaults fills ECS and CodeDeploy defaults and checks ranges.
func (s *Settings) Defaults(strategy string) error {
	if s.MinHealthyPercent == 0 && s.MaxPercent == 0 {
		s.MinHealthyPercent, s.MaxPercent = 100, 200
	}
	if s.MaxPercent == 0 {
		s.MaxPercent = 200
	}
	if s.MinHealthyPercent < 0 || s.MinHealthyPercent > 100 {
		return fmt.Errorf("minimum_healthy_percent must be 0 to 100")
	}
	if s.MaxPercent < 100 || s.MaxPercent > 200 {
		return fmt.Errorf("maximum_percent must be 100 to 200")
	}
	if s.MinHealthyPercent == 100 && s.MaxPercent == 100 {
		return fmt.Errorf("minimum_healthy_percent 100 with maximum_percent 100 leaves no room to replace a task; raise maximum_percent or lower minimum_healthy_percent")
	}
	if strategy == "blue-green" && s.TerminationWait.Duration == 0 {
		s.TerminationWait.Duration = 5 * time.Minute
	}
	if s.TerminationWait.Duration < 0 || s.TerminationWait.Duration > MaxTerminationWait {
		return fmt.Errorf("termination_wait must be 0 to 2880 minutes")
	}
	if s.Timeout.Duration == 0 {
		s.Timeout.Duration = 15 * time.Minute
	}
	for ev := range s.Hooks {
		if !slices.Contains(LifecycleEvents, ev) {
			return fmt.Errorf("hook %q is not a lifecycle event; use %s", ev, strings.Join(LifecycleEvents, ", "))
		}
	}
	for i, a := range s.Alarms {
		if a.Metric != "error_rate" && a.Metric != "p99_ms" {
			return fmt.Errorf("alarms[%d].metric %q must be error_rate or p99_ms", i, a.Metric)
		}
		if a.Window.Duration == 0 {
			s.Alarms[i].Window.Duration = 10 * time.Second
		}
	}
	return nil
}

// AppSpec is the part of CodeDeploy's appspec.yaml for ECS that Slipway reads.
type AppSpec struct {
	ContainerName string
	ContainerPort int
	TaskDef       string
	Hooks         map[string]Hook
}

// ParseAppSpec reads appspec.yaml (or its JSON form). A hook's value is, as
// on CodeDeploy, a name — run here as a shell command — or, Slipway's
// extension, a map with command, image, url, expect-status and timeout.
func ParseAppSpec(data []byte) (*AppSpec, error) {
	var doc struct {
		Version   any `yaml:"version"`
		Resources []map[string]struct {
			Type       string `yaml:"Type"`
			Properties struct {
				TaskDefinition   string `yaml:"TaskDefinition"`
				LoadBalancerInfo struct {
					ContainerName string `yaml:"ContainerName"`
					ContainerPort int    `yaml:"ContainerPort"`
				} `yaml:"LoadBalancerInfo"`
			} `yaml:"Properties"`
		} `yaml:"Resources"`
		Hooks []map[string]yaml.Node `yaml:"Hooks"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("appspec: %w", err)
	}
	out := &AppSpec{Hooks: map[string]Hook{}}
	for _, res := range doc.Resources {
		for _, r := range res {
			if r.Type != "AWS::ECS::Service" {
				return nil, fmt.Errorf("appspec: Resources: Type %q must be AWS::ECS::Service", r.Type)
			}
			out.TaskDef = r.Properties.TaskDefinition
			out.ContainerName = r.Properties.LoadBalancerInfo.ContainerName
			out.ContainerPort = r.Properties.LoadBalancerInfo.ContainerPort
		}
	}
	if out.ContainerName == "" || out.ContainerPort == 0 {
		return nil, fmt.Errorf("appspec: Resources[0].TargetService.Properties.LoadBalancerInfo needs ContainerName and ContainerPort")
	}
	for _, h := range doc.Hooks {
		for ev, node := range h {
			if !slices.Contains(LifecycleEvents, ev) {
				return nil, fmt.Errorf("appspec: line %d: hook %q is not an ECS lifecycle event (%s)", node.Line, ev, strings.Join(LifecycleEvents, ", "))
			}
			var hook Hook
			if node.Kind == yaml.ScalarNode {
				hook.Command = node.Value
			} else if err := node.Decode(&hook); err != nil {
				return nil, fmt.Errorf("appspec: hook %s: %w", ev, err)
			}
			if hook.Command == "" && hook.URL == "" {
				return nil, fmt.Errorf("appspec: line %d: hook %s needs a command or a url", node.Line, ev)
			}
			out.Hooks[ev] = hook
		}
	}
	return out, nil
}
