package specfile

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a problem in a YAML file at a position.
type Error struct {
	File    string
	Line    int
	Column  int
	Field   string
	Message string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", loc, e.Message)
}

// Errors are all the problems of one file, so a team fixes them in one
// go rather than one push at a time. errors.As finds each as an *Error
// too: the first is the one a caller that looks for one gets.
type Errors []*Error

// maxListed bounds the message: a file that is wrong throughout still
// gives a message a run's page and a push's event can hold.
const maxListed = 50

// Error is one line per problem, in file order.
func (l Errors) Error() string {
	lines := make([]string, 0, min(len(l), maxListed+1))
	for i, e := range l {
		if i == maxListed {
			lines = append(lines, fmt.Sprintf("%s: and %d more errors", e.File, len(l)-maxListed))
			break
		}
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is look at each problem.
func (l Errors) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Err is nil when there is no problem, else the problems sorted by line
// and column with exact repeats dropped. It returns an error interface
// that is really nil, which a nil Errors converted to error is not.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	seen := map[Error]bool{}
	return slices.DeleteFunc(out, func(e *Error) bool {
		dup := seen[*e]
		seen[*e] = true
		return dup
	})
}

// Report gathers a file's problems: those Decode found in its keys and
// values, then those its caller finds in what the values mean.
type Report struct {
	file    string
	doc     *yaml.Node
	decoded Errors
	// refused holds the fields of Decode's errors: what lies under them
	// was not read.
	refused map[string]bool
	added   Errors
}

// NewReport starts the report of file, whose document and error Decode
// returned. doc must not be nil.
func NewReport(file string, doc *yaml.Node, decodeErr error) *Report {
	r := &Report{file: file, doc: doc, refused: map[string]bool{}}
	if decodeErr != nil {
		switch e := decodeErr.(type) {
		case Errors:
			r.decoded = e
		case *Error:
			r.decoded = Errors{e}
		default:
			r.decoded = Errors{{File: file, Message: decodeErr.Error()}}
		}
	}
	for _, e := range r.decoded {
		r.refused[e.Field] = true
	}
	return r
}

// covers reports whether field is, or lies under, a field Decode refused:
// "stages[0]" covers "stages[0].name" but not "stages[01]". An error about
// the document itself (no field) covers every field.
func (r *Report) covers(field string) bool {
	if len(r.refused) == 0 {
		return false
	}
	if r.refused[""] || r.refused[field] {
		return true
	}
	for i := 0; i < len(field); i++ {
		if (field[i] == '.' || field[i] == '[') && r.refused[field[:i]] {
			return true
		}
	}
	return false
}

// Addf records a problem with the value at path, mapping keys (string)
// and sequence indexes (int) from the document. The error is placed at
// the deepest node of path the file has, so a missing key points at the
// mapping that lacks it, and named by the whole path. A problem under a
// value Decode refused is dropped: that value was left zero, and what
// follows from it would only repeat the first error.
func (r *Report) Addf(path []any, format string, args ...any) {
	field := FieldOf(path...)
	if r.covers(field) {
		return
	}
	e := &Error{File: r.file, Field: field, Message: fmt.Sprintf(format, args...)}
	if n := NodeAt(r.doc, path...); n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	r.added = append(r.added, e)
}

// Unknown is the package's Unknown with candidates asked for only while
// the report holds fewer problems than a message lists: in a file wrong
// throughout, finding the closest of many names for each of many errors
// would cost the square of the file's size for lines no one sees.
func (r *Report) Unknown(problem, name string, candidates func() []string, allowed string) string {
	if len(r.decoded)+len(r.added) >= maxListed {
		return Unknown(problem, name, nil, allowed)
	}
	return Unknown(problem, name, candidates(), allowed)
}

// Err is every problem of the file as Errors, or nil.
func (r *Report) Err() error {
	return append(slices.Clone(r.decoded), r.added...).Err()
}

// FieldOf spells a path as errors name fields: stages[0].actions[1].name.
func FieldOf(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, k)
		}
	}
	return b.String()
}
