// Package taskdef reads ECS task definitions as teams keep them
// (taskdef.json): fields Slipway uses are validated with their JSON path,
// ECS fields that make no sense on one machine are accepted and reported as
// ignored, and anything else is refused as a likely typo.
package taskdef

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/slipway-dev/slipway/internal/jsonpath"
)

// TaskDef is an ECS task definition.
type TaskDef struct {
	Family               string         `json:"family"`
	ContainerDefinitions []Container    `json:"containerDefinitions"`
	CPU                  string         `json:"cpu,omitempty"`
	Memory               string         `json:"memory,omitempty"`
	Extra                map[string]any `json:"-"` // ignored ECS fields, kept for rendering
}

// Container is one container definition.
type Container struct {
	Name              string         `json:"name"`
	Image             string         `json:"image"`
	Essential         *bool          `json:"essential,omitempty"`
	CPU               int            `json:"cpu,omitempty"`
	Memory            int            `json:"memory,omitempty"`
	MemoryReservation int            `json:"memoryReservation,omitempty"`
	PortMappings      []PortMapping  `json:"portMappings,omitempty"`
	Environment       []KeyValue     `json:"environment,omitempty"`
	Secrets           []Secret       `json:"secrets,omitempty"`
	Command           []string       `json:"command,omitempty"`
	EntryPoint        []string       `json:"entryPoint,omitempty"`
	WorkingDirectory  string         `json:"workingDirectory,omitempty"`
	User              string         `json:"user,omitempty"`
	HealthCheck       *HealthCheck   `json:"healthCheck,omitempty"`
	DependsOn         []Dependency   `json:"dependsOn,omitempty"`
	StopTimeout       int            `json:"stopTimeout,omitempty"`
	Extra             map[string]any `json:"-"`
}

// IsEssential applies ECS's default: a container is essential unless it says not.
func (c Container) IsEssential() bool { return c.Essential == nil || *c.Essential }

// PortMapping publishes a container port.
type PortMapping struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	Name          string `json:"name,omitempty"`
	AppProtocol   string `json:"appProtocol,omitempty"`
}

// Port is the mapping's port as Docker names it: "8080/tcp" (tcp when the
// protocol is left out, as in ECS).
func (pm PortMapping) Port() string {
	proto := pm.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%d/%s", pm.ContainerPort, proto)
}

// KeyValue is one environment variable.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Secret injects a stored secret as an environment variable.
type Secret struct {
	Name      string `json:"name"`
	ValueFrom string `json:"valueFrom"`
}

// HealthCheck is ECS's container health check (seconds).
type HealthCheck struct {
	Command     []string `json:"command"`
	Interval    int      `json:"interval,omitempty"`
	Timeout     int      `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod int      `json:"startPeriod,omitempty"`
}

// Dependency orders container start-up.
type Dependency struct {
	ContainerName string `json:"containerName"`
	Condition     string `json:"condition"`
}

var (
	topSupported = set("family", "containerDefinitions", "cpu", "memory")
	topIgnored   = set("executionRoleArn", "taskRoleArn", "requiresCompatibilities", "networkMode", "volumes",
		"placementConstraints", "tags", "runtimePlatform", "ipcMode", "pidMode", "proxyConfiguration", "inferenceAccelerators",
		"ephemeralStorage", "taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
		"registeredAt", "registeredBy", "deregisteredAt", "enableFaultInjection")
	ctrSupported = set("name", "image", "essential", "cpu", "memory", "memoryReservation", "portMappings", "environment",
		"secrets", "command", "entryPoint", "workingDirectory", "user", "healthCheck", "dependsOn", "stopTimeout")
	ctrIgnored = set("logConfiguration", "links", "mountPoints", "volumesFrom", "linuxParameters", "ulimits", "dockerLabels",
		"privileged", "readonlyRootFilesystem", "dnsServers", "dnsSearchDomains", "extraHosts", "startTimeout", "systemControls",
		"resourceRequirements", "firelensConfiguration", "environmentFiles", "repositoryCredentials", "interactive",
		"pseudoTerminal", "disableNetworking", "hostname", "dockerSecurityOptions", "restartPolicy", "credentialSpecs",
		"versionConsistency")
	familyRule = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)
	nameRule   = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)
)

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Error is a problem at a JSON path of the task definition.
type Error struct {
	Path    string
	Message string
}

func (e *Error) Error() string { return e.Path + ": " + e.Message }

func errAt(path, format string, args ...any) error {
	return &Error{Path: path, Message: fmt.Sprintf(format, args...)}
}

// Parse reads and validates a task definition. ignored lists the JSON paths
// of ECS fields Slipway accepts but does not use.
func Parse(data []byte) (td *TaskDef, ignored []string, err error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, nil, errAt("$", "not a JSON object: %v", err)
	}
	td = &TaskDef{Extra: map[string]any{}}
	for k, v := range raw {
		switch {
		case topSupported[k]:
		case topIgnored[k]:
			ignored = append(ignored, k)
			var x any
			_ = json.Unmarshal(v, &x)
			td.Extra[k] = x
		default:
			return nil, nil, errAt(k, "unknown field; a task definition has family, containerDefinitions, cpu, memory and the ECS fields Slipway ignores")
		}
	}
	type plain TaskDef
	if err := decodeTyped(data, (*plain)(td)); err != nil {
		return nil, nil, err
	}
	var rawCtrs struct {
		ContainerDefinitions []map[string]json.RawMessage `json:"containerDefinitions"`
	}
	_ = json.Unmarshal(data, &rawCtrs)
	for i, rc := range rawCtrs.ContainerDefinitions {
		td.ContainerDefinitions[i].Extra = map[string]any{}
		for k, v := range rc {
			path := fmt.Sprintf("containerDefinitions[%d].%s", i, k)
			switch {
			case ctrSupported[k]:
			case ctrIgnored[k]:
				ignored = append(ignored, path)
				var x any
				_ = json.Unmarshal(v, &x)
				td.ContainerDefinitions[i].Extra[k] = x
			default:
				return nil, nil, errAt(path, "unknown container field")
			}
		}
	}
	sort.Strings(ignored)
	return td, ignored, td.Validate()
}

// decodeTyped decodes, reporting a wrong JSON type by its path.
func decodeTyped(data []byte, v any) error {
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			path, problem := jsonpath.TypeError(data, te)
			return errAt(path, "%s", problem)
		}
		return errAt("$", "%v", err)
	}
	return nil
}

// Validate checks every field Slipway uses.
func (td *TaskDef) Validate() error {
	if !familyRule.MatchString(td.Family) {
		return errAt("family", "%q must be 1–255 letters, digits, _ or -", td.Family)
	}
	if len(td.ContainerDefinitions) == 0 {
		return errAt("containerDefinitions", "at least one container is required")
	}
	names := map[string]int{}
	essential := false
	ports := map[string]string{} // "8080/tcp" → the JSON path that maps it
	for i, c := range td.ContainerDefinitions {
		p := fmt.Sprintf("containerDefinitions[%d]", i)
		if !nameRule.MatchString(c.Name) {
			return errAt(p+".name", "%q must be 1–255 letters, digits, _ or -", c.Name)
		}
		if j, dup := names[c.Name]; dup {
			return errAt(p+".name", "%q is also the name of containerDefinitions[%d]", c.Name, j)
		}
		names[c.Name] = i
		if strings.TrimSpace(c.Image) == "" {
			return errAt(p+".image", "an image is required")
		}
		essential = essential || c.IsEssential()
		if c.CPU < 0 || c.CPU > 10240 {
			return errAt(p+".cpu", "must be 0 to 10240 units (1024 = 1 vCPU)")
		}
		if c.Memory < 0 || (c.Memory > 0 && c.Memory < 6) {
			return errAt(p+".memory", "must be at least 6 MiB")
		}
		if c.Memory > 0 && c.MemoryReservation > c.Memory {
			return errAt(p+".memoryReservation", "%d MiB is above the hard limit memory %d MiB", c.MemoryReservation, c.Memory)
		}
		for j, pm := range c.PortMappings {
			pp := fmt.Sprintf("%s.portMappings[%d]", p, j)
			if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
				return errAt(pp+".containerPort", "must be 1 to 65535")
			}
			if pm.Protocol != "" && pm.Protocol != "tcp" && pm.Protocol != "udp" {
				return errAt(pp+".protocol", "%q must be tcp or udp", pm.Protocol)
			}
			// The containers of a task share one network namespace (ECS's awsvpc mode).
			k := pm.Port()
			if at, dup := ports[k]; dup {
				return errAt(pp+".containerPort", "%s is also the port of %s: the containers of a task share one network namespace, so each port can be one container's only; change one of them", k, at)
			}
			ports[k] = pp
		}
		for j, e := range c.Environment {
			if e.Name == "" {
				return errAt(fmt.Sprintf("%s.environment[%d].name", p, j), "a name is required")
			}
		}
		for j, s := range c.Secrets {
			sp := fmt.Sprintf("%s.secrets[%d]", p, j)
			if s.Name == "" || s.ValueFrom == "" {
				return errAt(sp, "name and valueFrom are required")
			}
		}
		if hc := c.HealthCheck; hc != nil {
			hp := p + ".healthCheck"
			if len(hc.Command) < 2 || (hc.Command[0] != "CMD" && hc.Command[0] != "CMD-SHELL") {
				return errAt(hp+".command", `must be ["CMD-SHELL", "…"] or ["CMD", "executable", …]`)
			}
			for _, r := range []struct {
				field    string
				v        int
				min, max int
			}{{"interval", hc.Interval, 5, 300}, {"timeout", hc.Timeout, 2, 60}, {"retries", hc.Retries, 1, 10}, {"startPeriod", hc.StartPeriod, 0, 300}} {
				if r.v != 0 && (r.v < r.min || r.v > r.max) {
					return errAt(hp+"."+r.field, "must be %d to %d", r.min, r.max)
				}
			}
		}
		if c.StopTimeout != 0 && (c.StopTimeout < 2 || c.StopTimeout > 120) {
			return errAt(p+".stopTimeout", "must be 2 to 120 seconds")
		}
	}
	if !essential {
		return errAt("containerDefinitions", "at least one container must be essential")
	}
	for i, c := range td.ContainerDefinitions {
		for j, d := range c.DependsOn {
			dp := fmt.Sprintf("containerDefinitions[%d].dependsOn[%d]", i, j)
			k, ok := names[d.ContainerName]
			if !ok || d.ContainerName == c.Name {
				return errAt(dp+".containerName", "%q is not another container of this task definition", d.ContainerName)
			}
			switch d.Condition {
			case "START", "COMPLETE", "SUCCESS":
			case "HEALTHY":
				if td.ContainerDefinitions[k].HealthCheck == nil {
					return errAt(dp+".condition", "HEALTHY needs a healthCheck on container %s", d.ContainerName)
				}
			default:
				return errAt(dp+".condition", "%q must be START, COMPLETE, SUCCESS or HEALTHY", d.Condition)
			}
		}
	}
	return nil
}

// Container returns the named container definition.
func (td *TaskDef) Container(name string) (*Container, bool) {
	for i := range td.ContainerDefinitions {
		if td.ContainerDefinitions[i].Name == name {
			return &td.ContainerDefinitions[i], true
		}
	}
	return nil, false
}

// MarshalJSON writes the definition with the ignored fields it came with.
func (td TaskDef) MarshalJSON() ([]byte, error) {
	type plain TaskDef
	return merge(plain(td), td.Extra)
}

// MarshalJSON writes the container with its ignored fields.
func (c Container) MarshalJSON() ([]byte, error) {
	type plain Container
	return merge(plain(c), c.Extra)
}

func merge(v any, extra map[string]any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, x := range extra {
		m[k] = x
	}
	return json.Marshal(m)
}

// Render replaces the image of the named container (the
// amazon-ecs-render-task-definition step).
func Render(td *TaskDef, container, image string) error {
	c, ok := td.Container(container)
	if !ok {
		var names []string
		for _, c := range td.ContainerDefinitions {
			names = append(names, c.Name)
		}
		return fmt.Errorf("task definition %s has no container %q (it has %s)", td.Family, container, strings.Join(names, ", "))
	}
	c.Image = image
	return nil
}

var placeholder = regexp.MustCompile(`<IMAGE[0-9]*_NAME>`)

// FillPlaceholders replaces <IMAGE1_NAME>-style placeholders in a task
// definition template with an image URI, as CodeDeploy blue/green does.
func FillPlaceholders(data []byte, imageURI string) []byte {
	return placeholder.ReplaceAll(data, []byte(imageURI))
}

// Adjustments say what Slipway changes in running the task definition, for
// logs. A task has its own address, where the load balancer reaches its
// container ports, so a hostPort equal to the container port (as awsvpc
// task definitions write it) needs no publishing; a distinct hostPort is
// published, on 127.0.0.1 only.
func (td *TaskDef) Adjustments() []string {
	var out []string
	for i, c := range td.ContainerDefinitions {
		for j, pm := range c.PortMappings {
			switch {
			case pm.HostPort != 0 && pm.HostPort == pm.ContainerPort:
				out = append(out, fmt.Sprintf("containerDefinitions[%d].portMappings[%d]: hostPort %d is not published on the host: each task has its own address, where the load balancer reaches the port", i, j, pm.HostPort))
			case pm.HostPort != 0:
				out = append(out, fmt.Sprintf("containerDefinitions[%d].portMappings[%d]: hostPort %d is published on 127.0.0.1 only; a second task of the service cannot take the same port", i, j, pm.HostPort))
			}
		}
	}
	return out
}
