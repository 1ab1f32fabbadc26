// Package workflow reads GitHub Actions workflow files (.github/workflows/*.yml),
// validates them completely with actionlint before any run starts, and turns
// them into a plain model that the run engine consumes.
//
// Validation never runs an external program (shellcheck and pyflakes are
// disabled) and never reads a file: the linter is given the file's bytes and
// no project, so neither an actionlint configuration nor local actions or
// reusable workflows are looked up on disk.
package workflow

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Dir is where workflows live in a repository.
const Dir = ".github/workflows"

// MaxFileSize is the largest workflow file Parse accepts, in bytes.
const MaxFileSize = 1 << 20

// IsWorkflowFile reports whether a repository path is a workflow file
// (Dir/*.yml or Dir/*.yaml, not in subdirectories). Paths are slash-separated
// and relative to the repository root, as Git lists them.
func IsWorkflowFile(p string) bool {
	dir, name := path.Split(p)
	if dir != Dir+"/" {
		return false
	}
	for _, ext := range []string{".yml", ".yaml"} {
		if strings.HasSuffix(name, ext) && len(name) > len(ext) {
			return true
		}
	}
	return false
}

// Error is one problem in a workflow file, at a 1-based line and column.
type Error struct {
	File      string
	Line, Col int
	Msg       string // includes the fix where one is known
}

// Error returns "FILE:LINE:COL: MSG".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found; Error() joins them with newlines.
type Errors []*Error

func (e Errors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "\n")
}

func (e Errors) sort() {
	slices.SortStableFunc(e, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
}

// Workflow is a validated workflow file.
type Workflow struct {
	File        string
	Name        string      // the name: key, or the file path when absent
	Push        *PushFilter // nil: on.push not set
	Dispatch    *Dispatch   // nil: on.workflow_dispatch not set
	Env         Env
	Defaults    Defaults
	Concurrency *Concurrency
	Jobs        []*Job // in file order
}

// Env keeps names as written and values as strings (YAML numbers/bools
// stringified as written); values may hold ${{ }}.
type Env []EnvVar

// EnvVar is one name/value pair.
type EnvVar struct{ Name, Value string }

// PushFilter is on.push. A nil slice means the filter is not set.
type PushFilter struct {
	Branches, BranchesIgnore, Tags, TagsIgnore, Paths, PathsIgnore []string
}

// Dispatch is on.workflow_dispatch.
type Dispatch struct{ Inputs []Input }

// Input is one workflow_dispatch input, in file order.
type Input struct {
	Name, Description, Type, Default string // Type: string (default), boolean, choice, number, environment
	Required                         bool
	Options                          []string
}

// Defaults is defaults.run.
type Defaults struct{ Shell, WorkingDirectory string }

// Concurrency is a concurrency: section.
type Concurrency struct {
	Group            string // may hold ${{ }}
	CancelInProgress string // "true", "false", "" or an expression
}

// Job is one job, a jobs.<id> entry.
type Job struct {
	ID, Name        string // Name: the name: key (may hold ${{ }}), else ID
	Line, Col       int
	Needs           []string
	If              string
	RunsOn          []string // labels as written (a string or a list); may hold ${{ }}
	TimeoutMinutes  string   // "" or a number or an expression
	ContinueOnError string
	Environment     *JobEnvironment
	Env             Env
	Defaults        Defaults
	Outputs         []EnvVar // name → value expression
	Strategy        *Strategy
	Concurrency     *Concurrency
	Steps           []*Step
}

// JobEnvironment is jobs.<id>.environment.
type JobEnvironment struct{ Name, URL string }

// Strategy is jobs.<id>.strategy.
type Strategy struct {
	// Matrix: nil; or the matrix as decoded YAML values (map[string]any whose
	// values are []any of scalars/maps, plus "include"/"exclude" as []any of
	// map[string]any); or, when the matrix is an expression (e.g. ${{ fromJSON(needs.a.outputs.m) }}), a string.
	// Strings inside may hold ${{ }}: the engine evaluates them.
	// Scalars are decoded as YAML decodes them: string, int, float64, bool or nil.
	// A key whose whole value is an expression holds a string instead of a []any,
	// and so may an include or exclude list or one of its entries.
	Matrix      any
	FailFast    string // "" (default true), "true", "false" or an expression
	MaxParallel string

	keys []string // the matrix's own keys in file order
}

// MatrixKeys returns the matrix's own keys (not include/exclude) in file
// order, for ExpandMatrix; for a matrix that is an expression this is nil.
func (s *Strategy) MatrixKeys() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.keys)
}

// Step is one entry of jobs.<id>.steps.
type Step struct {
	ID, Name         string
	Line, Col        int
	If               string
	Uses             string // e.g. "actions/checkout@v4", "./local", "docker://…"; "" for run steps
	Run              string
	Shell            string
	WorkingDirectory string
	With             []EnvVar // input name → value (strings; may hold ${{ }})
	Env              Env
	ContinueOnError  string
	TimeoutMinutes   string
}

// Order returns the jobs in an order where every job comes after the jobs it
// needs (stable: file order otherwise). Job IDs in needs are matched without
// regard to case, as GitHub does. Should the jobs form a cycle (Parse rejects
// that), the jobs on it keep their file order at the end.
func (w *Workflow) Order() []*Job {
	index := make(map[string]int, len(w.Jobs))
	for i, j := range w.Jobs {
		index[strings.ToLower(j.ID)] = i
	}
	waiting := make([]int, len(w.Jobs))      // how many needed jobs are not placed yet
	dependents := make([][]int, len(w.Jobs)) // job index → jobs that need it
	for i, j := range w.Jobs {
		seen := map[int]bool{}
		for _, n := range j.Needs {
			d, ok := index[strings.ToLower(n)]
			if !ok || seen[d] {
				continue
			}
			seen[d] = true
			waiting[i]++
			dependents[d] = append(dependents[d], i)
		}
	}
	placed := make([]bool, len(w.Jobs))
	out := make([]*Job, 0, len(w.Jobs))
	for len(out) < len(w.Jobs) {
		next := -1
		for i := range w.Jobs {
			if !placed[i] && waiting[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 { // a cycle: keep the rest in file order
			for i, j := range w.Jobs {
				if !placed[i] {
					out = append(out, j)
				}
			}
			break
		}
		placed[next] = true
		out = append(out, w.Jobs[next])
		for _, d := range dependents[next] {
			waiting[d]--
		}
	}
	return out
}
