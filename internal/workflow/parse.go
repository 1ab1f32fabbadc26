package workflow

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v4" // the YAML library actionlint parses with, so both see the same tree
)

// maxExpandedNodes bounds the YAML tree once aliases are expanded: actionlint
// and the model both walk through aliases, so a few anchors referring to each
// other ("billion laughs") could otherwise make a small file enormous.
const maxExpandedNodes = 1 << 20

// Parse validates data (the content of file, a repository path such as
// ".github/workflows/deploy.yml") and returns the workflow, or Errors.
// Every problem actionlint finds is reported, together with the features
// Slipway does not support, sorted by line and column.
func Parse(file string, data []byte) (*Workflow, error) {
	if len(data) > MaxFileSize {
		return nil, Errors{{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf(
			"the workflow file is %d bytes; Slipway reads workflow files of at most %d bytes (1 MiB): make it smaller, for example by moving scripts into files in the repository",
			len(data), MaxFileSize)}}
	}

	var root *yaml.Node
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil && doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
		if expandedSize(root, maxExpandedNodes) > maxExpandedNodes {
			return nil, Errors{{File: file, Line: 1, Col: 1, Msg: fmt.Sprintf(
				"with its aliases expanded the workflow has more than %d YAML nodes: use fewer nested anchors and aliases", maxExpandedNodes)}}
		}
	}
	// When the YAML does not parse, actionlint reports why.

	errs := lint(file, data)
	if root != nil {
		errs = append(errs, unsupported(file, root)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	if root == nil { // not reachable: actionlint reports an empty workflow
		return nil, Errors{{File: file, Line: 1, Col: 1, Msg: "workflow is empty"}}
	}
	return build(file, root), nil
}

// expandedSize counts the nodes under n with aliases expanded, stopping once
// the count passes limit. A recursive alias counts once (actionlint reports it).
func expandedSize(n *yaml.Node, limit int) int {
	memo := map[*yaml.Node]int{}
	var size func(n *yaml.Node) int
	size = func(n *yaml.Node) int {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if s, ok := memo[n]; ok {
			return s
		}
		memo[n] = 1 // while in progress
		total := 1
		for _, c := range n.Content {
			total += size(c)
			if total > limit {
				total = limit + 1
				break
			}
		}
		memo[n] = total
		return total
	}
	return size(n)
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries in file order (nothing for other nodes).
func pairs(n *yaml.Node) []pair {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	ps := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		ps = append(ps, pair{k, v})
	}
	return ps
}

// lookup returns the value of key in a mapping, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.val
		}
	}
	return nil
}

// str returns a scalar as written ("" for null and for anything but a scalar).
func str(n *yaml.Node) string {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// strs returns a string or a list of strings as a list; never nil.
func strs(n *yaml.Node) []string {
	n = deref(n)
	out := []string{}
	if n == nil {
		return out
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			out = append(out, n.Value)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, str(c))
		}
	}
	return out
}

// value decodes a node into plain Go values: map[string]any, []any, and
// scalars as YAML decodes them (string, int, float64, bool or nil).
func value(n *yaml.Node) any {
	n = deref(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, p := range pairs(n) {
			m[p.key.Value] = value(p.val)
		}
		return m
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			a = append(a, value(c))
		}
		return a
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err == nil {
				return v
			}
		}
		return n.Value
	}
	return nil
}

// unsupported reports what validates as GitHub Actions but Slipway cannot run.
func unsupported(file string, root *yaml.Node) Errors {
	var errs Errors
	at := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, &Error{File: file, Line: max(n.Line, 1), Col: max(n.Column, 1), Msg: fmt.Sprintf(format, args...)})
	}
	wholeEnv := func(key, val *yaml.Node, where string) {
		if val.Kind == yaml.ScalarNode && strings.Contains(val.Value, "${{") {
			at(key, "an expression for a whole env: section (%s) is not supported by Slipway yet: list the variables one by one, each with its own ${{ }} value", where)
		}
	}
	for _, p := range pairs(root) {
		switch p.key.Value {
		case "env":
			wholeEnv(p.key, p.val, "env")
		case "jobs":
			for _, j := range pairs(p.val) {
				id := j.key.Value
				for _, f := range pairs(j.val) {
					switch f.key.Value {
					case "uses":
						at(f.key, "reusable workflow calls (jobs.%s.uses) are not supported by Slipway yet: copy the called workflow's jobs into this workflow", id)
					case "container":
						at(f.key, "job containers (jobs.%s.container) are not supported by Slipway yet: remove container: and set up what the job needs in its steps", id)
					case "services":
						at(f.key, "service containers (jobs.%s.services) are not supported by Slipway yet: remove services: and start what the job needs from a step", id)
					case "snapshot":
						at(f.key, "custom image snapshots (jobs.%s.snapshot) are not supported by Slipway: remove snapshot:", id)
					case "runs-on":
						if g := lookupKey(f.val, "group"); g != nil {
							at(g, "runner groups (jobs.%s.runs-on.group) are not supported by Slipway: remove group: and choose the runner with labels:", id)
						}
					case "env":
						wholeEnv(f.key, f.val, "jobs."+id+".env")
					case "steps":
						if f.val.Kind != yaml.SequenceNode {
							continue
						}
						for i, s := range f.val.Content {
							for _, sf := range pairs(s) {
								if sf.key.Value == "env" {
									wholeEnv(sf.key, sf.val, fmt.Sprintf("jobs.%s.steps[%d].env", id, i))
								}
							}
						}
					}
				}
			}
		}
	}
	return errs
}

// lookupKey returns the key node of key in a mapping, or nil.
func lookupKey(n *yaml.Node, key string) *yaml.Node {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.key
		}
	}
	return nil
}

// build turns a validated YAML tree into the model.
func build(file string, root *yaml.Node) *Workflow {
	w := &Workflow{File: file, Name: file}
	for _, p := range pairs(root) {
		switch p.key.Value {
		case "name":
			if s := str(p.val); s != "" {
				w.Name = s
			}
		case "on":
			buildOn(w, p.val)
		case "env":
			w.Env = buildEnv(p.val)
		case "defaults":
			w.Defaults = buildDefaults(p.val)
		case "concurrency":
			w.Concurrency = buildConcurrency(p.val)
		case "jobs":
			for _, j := range pairs(p.val) {
				w.Jobs = append(w.Jobs, buildJob(j.key, j.val))
			}
		}
	}
	return w
}

func buildOn(w *Workflow, n *yaml.Node) {
	event := func(name string, config *yaml.Node) {
		switch name {
		case "push":
			w.Push = buildPush(config)
		case "workflow_dispatch":
			w.Dispatch = buildDispatch(config)
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		event(n.Value, nil)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			event(str(c), nil)
		}
	case yaml.MappingNode:
		for _, p := range pairs(n) {
			event(p.key.Value, p.val)
		}
	}
}

func buildPush(n *yaml.Node) *PushFilter {
	f := &PushFilter{}
	for _, p := range pairs(n) {
		switch p.key.Value {
		case "branches":
			f.Branches = strs(p.val)
		case "branches-ignore":
			f.BranchesIgnore = strs(p.val)
		case "tags":
			f.Tags = strs(p.val)
		case "tags-ignore":
			f.TagsIgnore = strs(p.val)
		case "paths":
			f.Paths = strs(p.val)
		case "paths-ignore":
			f.PathsIgnore = strs(p.val)
		}
	}
	return f
}

func buildDispatch(n *yaml.Node) *Dispatch {
	d := &Dispatch{}
	for _, p := range pairs(lookup(n, "inputs")) {
		in := Input{Name: p.key.Value, Type: "string"}
		for _, q := range pairs(p.val) {
			switch q.key.Value {
			case "description":
				in.Description = str(q.val)
			case "required":
				in.Required = str(q.val) == "true"
			case "default":
				in.Default = str(q.val)
			case "type":
				if t := str(q.val); t != "" {
					in.Type = t
				}
			case "options":
				in.Options = strs(q.val)
			}
		}
		d.Inputs = append(d.Inputs, in)
	}
	return d
}

func buildEnv(n *yaml.Node) Env {
	var env Env
	for _, p := range pairs(n) {
		env = append(env, EnvVar{Name: p.key.Value, Value: str(p.val)})
	}
	return env
}

func buildDefaults(n *yaml.Node) Defaults {
	run := lookup(n, "run")
	return Defaults{Shell: str(lookup(run, "shell")), WorkingDirectory: str(lookup(run, "working-directory"))}
}

func buildConcurrency(n *yaml.Node) *Concurrency {
	if n.Kind == yaml.ScalarNode {
		return &Concurrency{Group: str(n)}
	}
	return &Concurrency{Group: str(lookup(n, "group")), CancelInProgress: str(lookup(n, "cancel-in-progress"))}
}

func buildJob(key, n *yaml.Node) *Job {
	j := &Job{ID: key.Value, Name: key.Value, Line: key.Line, Col: key.Column}
	for _, p := range pairs(n) {
		switch p.key.Value {
		case "name":
			if s := str(p.val); s != "" {
				j.Name = s
			}
		case "needs":
			j.Needs = strs(p.val)
		case "if":
			j.If = str(p.val)
		case "runs-on":
			if p.val.Kind == yaml.MappingNode {
				j.RunsOn = strs(lookup(p.val, "labels"))
			} else {
				j.RunsOn = strs(p.val)
			}
		case "timeout-minutes":
			j.TimeoutMinutes = str(p.val)
		case "continue-on-error":
			j.ContinueOnError = str(p.val)
		case "environment":
			if p.val.Kind == yaml.ScalarNode {
				j.Environment = &JobEnvironment{Name: str(p.val)}
			} else {
				j.Environment = &JobEnvironment{Name: str(lookup(p.val, "name")), URL: str(lookup(p.val, "url"))}
			}
		case "env":
			j.Env = buildEnv(p.val)
		case "defaults":
			j.Defaults = buildDefaults(p.val)
		case "outputs":
			j.Outputs = buildEnv(p.val)
		case "strategy":
			j.Strategy = buildStrategy(p.val)
		case "concurrency":
			j.Concurrency = buildConcurrency(p.val)
		case "steps":
			if p.val.Kind == yaml.SequenceNode {
				for _, c := range p.val.Content {
					j.Steps = append(j.Steps, buildStep(deref(c)))
				}
			}
		}
	}
	return j
}

func buildStrategy(n *yaml.Node) *Strategy {
	s := &Strategy{}
	for _, p := range pairs(n) {
		switch p.key.Value {
		case "matrix":
			s.Matrix, s.keys = buildMatrix(p.val)
		case "fail-fast":
			s.FailFast = str(p.val)
		case "max-parallel":
			s.MaxParallel = str(p.val)
		}
	}
	return s
}

// buildMatrix returns the matrix and its own keys in file order.
func buildMatrix(n *yaml.Node) (any, []string) {
	if n.Kind == yaml.ScalarNode { // ${{ fromJSON(...) }}
		return str(n), nil
	}
	m := map[string]any{}
	keys := []string{}
	for _, p := range pairs(n) {
		k := p.key.Value
		switch {
		case strings.EqualFold(k, "include"), strings.EqualFold(k, "exclude"):
			// actionlint, like GitHub, reads matrix keys without regard to case.
			if p.val.Kind == yaml.ScalarNode {
				m[strings.ToLower(k)] = str(p.val)
			} else {
				m[strings.ToLower(k)] = value(p.val)
			}
		case p.val.Kind == yaml.ScalarNode: // a whole row as an expression
			keys = append(keys, k)
			m[k] = str(p.val)
		default:
			keys = append(keys, k)
			m[k] = value(p.val)
		}
	}
	return m, keys
}

func buildStep(n *yaml.Node) *Step {
	s := &Step{Line: n.Line, Col: n.Column}
	for _, p := range pairs(n) {
		switch p.key.Value {
		case "id":
			s.ID = str(p.val)
		case "name":
			s.Name = str(p.val)
		case "if":
			s.If = str(p.val)
		case "uses":
			s.Uses = str(p.val)
		case "run":
			s.Run = str(p.val)
		case "shell":
			s.Shell = str(p.val)
		case "working-directory":
			s.WorkingDirectory = str(p.val)
		case "with":
			s.With = buildEnv(p.val)
		case "env":
			s.Env = buildEnv(p.val)
		case "continue-on-error":
			s.ContinueOnError = str(p.val)
		case "timeout-minutes":
			s.TimeoutMinutes = str(p.val)
		}
	}
	return s
}
