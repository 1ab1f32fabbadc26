package workflow

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/slipway-dev/slipway/internal/workflow/expr"
)

// MaxActionFileSize is the largest action.yml ParseAction accepts, in bytes.
const MaxActionFileSize = 1 << 20

// Action is a validated composite action: an action.yml (or action.yaml)
// whose runs.using is composite.
type Action struct {
	File    string
	Name    string
	Inputs  []ActionInput // in file order
	Outputs []EnvVar      // name → value expression
	Steps   []*Step       // run steps always have Shell set
}

// ActionInput is one entry of an action's inputs:.
type ActionInput struct {
	Name, Default, Deprecation string
	Required                   bool
}

// Input returns the declared input named name (ignoring case, as GitHub
// does), or nil.
func (a *Action) Input(name string) *ActionInput {
	for i := range a.Inputs {
		if strings.EqualFold(a.Inputs[i].Name, name) {
			return &a.Inputs[i]
		}
	}
	return nil
}

// actionContexts are the contexts a composite action's steps and outputs
// may read (GitHub gives them no secrets: pass a secret as an input).
var actionContexts = []string{"github", "needs", "strategy", "matrix", "job", "runner", "env", "inputs", "steps"}

var actionStepKeys = []string{"id", "name", "if", "uses", "run", "shell", "with", "env", "working-directory", "continue-on-error"}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// ParseAction validates data, the content of file (a repository path such as
// ".github/actions/setup/action.yml"), as a composite action and returns it,
// or Errors naming the file, line and column of every problem found.
func ParseAction(file string, data []byte) (*Action, error) {
	if len(data) > MaxActionFileSize {
		return nil, Errors{{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf(
			"the action file is %d bytes; Slipway reads action files of at most %d bytes (1 MiB)", len(data), MaxActionFileSize)}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, Errors{{File: file, Line: line, Col: 1, Msg: "the action file is not valid YAML: " + err.Error()}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || deref(doc.Content[0]).Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: 1, Col: 1, Msg: "the action file is not a mapping with name:, inputs:, outputs: and runs:"}}
	}
	root := deref(doc.Content[0])
	if expandedSize(root, maxExpandedNodes) > maxExpandedNodes {
		return nil, Errors{{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf(
			"with its aliases expanded the action has more than %d YAML nodes: use fewer nested anchors and aliases", maxExpandedNodes)}}
	}
	p := &actionParser{a: &Action{File: file}}
	p.parse(root)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return p.a, nil
}

type actionParser struct {
	a    *Action
	errs Errors
}

func (p *actionParser) at(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.a.File, Line: max(n.Line, 1), Col: max(n.Column, 1), Msg: fmt.Sprintf(format, args...)})
}

// check reports a ${{ }} in n that does not parse or reads a context a
// composite action does not have.
func (p *actionParser) check(n *yaml.Node, where string, cond bool) {
	s := str(n)
	var err error
	if cond {
		err = expr.CheckIf(s, actionContexts)
	} else if strings.Contains(s, "${{") {
		err = expr.Check(s, actionContexts)
	}
	if err != nil {
		msg := err.Error()
		var ee *expr.Error
		if errors.As(err, &ee) {
			msg = ee.Msg
		}
		p.at(n, "%s: %s", where, msg)
	}
}

func (p *actionParser) scalar(n *yaml.Node, where string) bool {
	if n.Kind != yaml.ScalarNode {
		p.at(n, "%s must be a string", where)
		return false
	}
	return true
}

func (p *actionParser) parse(root *yaml.Node) {
	var runs *yaml.Node
	for _, kv := range pairs(root) {
		switch kv.key.Value {
		case "name":
			p.a.Name = str(kv.val)
		case "author", "description", "branding":
		case "inputs":
			p.inputs(kv.val)
		case "outputs":
			p.outputs(kv.val)
		case "runs":
			runs = kv.val
		default:
			p.at(kv.key, "unknown key %q in an action file; the keys are name, author, description, inputs, outputs, runs and branding", kv.key.Value)
		}
	}
	if runs == nil {
		p.at(root, "runs: is missing; a composite action has runs: {using: composite, steps: [...]}")
		return
	}
	using := lookup(runs, "using")
	if using == nil {
		p.at(runs, "runs.using is missing; Slipway runs composite actions (using: composite)")
		return
	}
	switch u := str(using); {
	case strings.EqualFold(u, "composite"):
	case strings.HasPrefix(strings.ToLower(u), "node"):
		p.at(using, "runs.using: %q is a JavaScript action, which Slipway does not run (it runs no action code it would have to fetch or execute outside a step); only composite actions (using: composite) run", u)
		return
	case strings.EqualFold(u, "docker"):
		p.at(using, "runs.using: docker actions are not supported by Slipway; only composite actions (using: composite) run")
		return
	default:
		p.at(using, "runs.using: %q is not an action type; Slipway runs composite actions (using: composite)", u)
		return
	}
	var steps *yaml.Node
	for _, kv := range pairs(runs) {
		switch kv.key.Value {
		case "using":
		case "steps":
			steps = kv.val
		default:
			p.at(kv.key, "runs.%s is not a key of a composite action; it has using: and steps:", kv.key.Value)
		}
	}
	if steps == nil || steps.Kind != yaml.SequenceNode || len(steps.Content) == 0 {
		n := runs
		if steps != nil {
			n = steps
		}
		p.at(n, "runs.steps: a composite action needs a list of steps")
		return
	}
	ids := map[string]bool{}
	for i, n := range steps.Content {
		n = deref(n)
		if n.Kind != yaml.MappingNode {
			p.at(n, "runs.steps[%d] must be a mapping with run: or uses:", i)
			continue
		}
		s := p.step(i, n)
		if s.ID != "" {
			if ids[strings.ToLower(s.ID)] {
				p.at(n, "runs.steps[%d]: the step id %q is used twice", i, s.ID)
			}
			ids[strings.ToLower(s.ID)] = true
		}
		p.a.Steps = append(p.a.Steps, s)
	}
}

var stepID = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (p *actionParser) step(i int, n *yaml.Node) *Step {
	s := buildStep(n)
	where := fmt.Sprintf("runs.steps[%d]", i)
	var run, uses, shell *yaml.Node
	for _, kv := range pairs(n) {
		k := kv.key.Value
		known := false
		for _, a := range actionStepKeys {
			known = known || a == k
		}
		if !known {
			p.at(kv.key, "%s: %q is not a key of a composite action's step; the keys are %s", where, k, strings.Join(actionStepKeys, ", "))
			continue
		}
		switch k {
		case "run":
			run = kv.val
			if p.scalar(kv.val, where+".run") {
				p.check(kv.val, where+".run", false)
			}
		case "uses":
			uses = kv.val
			p.scalar(kv.val, where+".uses")
		case "shell":
			shell = kv.val
			p.scalar(kv.val, where+".shell")
		case "if":
			if p.scalar(kv.val, where+".if") {
				p.check(kv.val, where+".if", true)
			}
		case "id":
			if p.scalar(kv.val, where+".id") && !stepID.MatchString(kv.val.Value) {
				p.at(kv.val, "%s.id: %q must start with a letter or _ and hold only letters, digits, - and _", where, kv.val.Value)
			}
		case "with", "env":
			if kv.val.Kind != yaml.MappingNode {
				p.at(kv.val, "%s.%s must be a mapping", where, k)
				continue
			}
			for _, e := range pairs(kv.val) {
				if p.scalar(e.val, where+"."+k+"."+e.key.Value) {
					p.check(e.val, where+"."+k+"."+e.key.Value, false)
				}
			}
		default:
			if p.scalar(kv.val, where+"."+k) {
				p.check(kv.val, where+"."+k, false)
			}
		}
	}
	switch {
	case run != nil && uses != nil:
		p.at(n, "%s has both run: and uses:; a step has one", where)
	case run == nil && uses == nil:
		p.at(n, "%s has neither run: nor uses:", where)
	case run != nil && (shell == nil || strings.TrimSpace(str(shell)) == ""):
		p.at(n, "%s: a run step in a composite action needs shell: (for example shell: bash), as GitHub requires", where)
	case uses != nil && shell != nil:
		p.at(shell, "%s: shell: is for run steps", where)
	}
	return s
}

func (p *actionParser) inputs(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.at(n, "inputs must be a mapping of input names")
		return
	}
	for _, kv := range pairs(n) {
		in := ActionInput{Name: kv.key.Value}
		if kv.val.Kind != yaml.MappingNode && !(kv.val.Kind == yaml.ScalarNode && kv.val.Tag == "!!null") {
			p.at(kv.val, "inputs.%s must be a mapping (description, required, default)", in.Name)
			continue
		}
		for _, f := range pairs(kv.val) {
			switch f.key.Value {
			case "description":
			case "default":
				if p.scalar(f.val, "inputs."+in.Name+".default") {
					in.Default = str(f.val)
					p.check(f.val, "inputs."+in.Name+".default", false)
				}
			case "required":
				switch v := strings.ToLower(str(f.val)); v {
				case "true":
					in.Required = true
				case "false", "":
				default:
					p.at(f.val, "inputs.%s.required: %q is neither true nor false", in.Name, str(f.val))
				}
			case "deprecationMessage":
				in.Deprecation = str(f.val)
			default:
				p.at(f.key, "inputs.%s: unknown key %q; an input has description, required, default and deprecationMessage", in.Name, f.key.Value)
			}
		}
		if p.a.Input(in.Name) != nil {
			p.at(kv.key, "inputs.%s is declared twice", in.Name)
			continue
		}
		p.a.Inputs = append(p.a.Inputs, in)
	}
}

func (p *actionParser) outputs(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.at(n, "outputs must be a mapping of output names")
		return
	}
	for _, kv := range pairs(n) {
		name := kv.key.Value
		value := lookup(kv.val, "value")
		if kv.val.Kind != yaml.MappingNode || value == nil {
			p.at(kv.val, "outputs.%s needs value: (for example ${{ steps.ID.outputs.NAME }}) in a composite action", name)
			continue
		}
		for _, f := range pairs(kv.val) {
			if f.key.Value != "value" && f.key.Value != "description" {
				p.at(f.key, "outputs.%s: unknown key %q; an output has description and value", name, f.key.Value)
			}
		}
		if p.scalar(value, "outputs."+name+".value") {
			p.check(value, "outputs."+name+".value", false)
		}
		p.a.Outputs = append(p.a.Outputs, EnvVar{Name: name, Value: str(value)})
	}
}
