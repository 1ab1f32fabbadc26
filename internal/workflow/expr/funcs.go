package expr

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rhysd/actionlint"
)

// function is a built-in function. Names are matched ignoring case.
type function struct {
	name     string // as GitHub spells it, for messages
	min, max int    // max < 0: no limit
	status   bool   // a status check function (success, failure, ...)
	call     func(ev *evaluator, args []any) (any, error)
}

func (f *function) checkArgs(n int) string {
	switch {
	case f.min == f.max && n != f.min:
		return fmt.Sprintf("%s() takes %d argument%s, got %d", f.name, f.min, plural(f.min), n)
	case n < f.min && f.max < 0:
		return fmt.Sprintf("%s() takes at least %d argument%s, got %d", f.name, f.min, plural(f.min), n)
	case n < f.min || f.max >= 0 && n > f.max:
		return fmt.Sprintf("%s() takes %d to %d arguments, got %d", f.name, f.min, f.max, n)
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

var functions map[string]*function

func init() {
	functions = map[string]*function{}
	for _, f := range []*function{
		{name: "contains", min: 2, max: 2, call: fnContains},
		{name: "startsWith", min: 2, max: 2, call: fnStartsWith},
		{name: "endsWith", min: 2, max: 2, call: fnEndsWith},
		{name: "format", min: 1, max: -1, call: fnFormat},
		{name: "join", min: 1, max: 2, call: fnJoin},
		{name: "toJSON", min: 1, max: 1, call: fnToJSON},
		{name: "fromJSON", min: 1, max: 1, call: fnFromJSON},
		{name: "hashFiles", min: 1, max: -1, call: fnHashFiles},
		{name: "success", status: true, call: func(ev *evaluator, _ []any) (any, error) {
			return ev.env.Status.success(), nil
		}},
		{name: "always", status: true, call: func(*evaluator, []any) (any, error) { return true, nil }},
		{name: "cancelled", status: true, call: func(ev *evaluator, _ []any) (any, error) {
			return ev.env.Status.Cancelled, nil
		}},
		{name: "failure", status: true, call: func(ev *evaluator, _ []any) (any, error) {
			return ev.env.Status.Failed, nil
		}},
	} {
		functions[strings.ToLower(f.name)] = f
	}
}

func (s Status) success() bool { return !s.Failed && !s.Cancelled }

// funcError is an error raised by a function; call adds the position.
type funcError struct{ msg string }

func (e *funcError) Error() string { return e.msg }

// MaxValueBytes bounds a string an expression makes (format, join, toJSON,
// an interpolated text): a short expression nesting them could otherwise
// grow without end in the server's memory.
const MaxValueBytes = 1 << 20

func errTooLarge(what string) error {
	return funcErrorf("%s: the result would be over %d bytes, the most an expression may make", what, MaxValueBytes)
}

func funcErrorf(format string, args ...any) error {
	return &funcError{msg: fmt.Sprintf(format, args...)}
}

func (ev *evaluator) call(n *actionlint.FuncCallNode) (any, error) {
	f := functions[strings.ToLower(n.Callee)] // parse checked name and arity
	args := make([]any, len(n.Args))
	for i, a := range n.Args {
		v, err := ev.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	v, err := f.call(ev, args)
	if err != nil {
		if fe, ok := err.(*funcError); ok {
			return nil, ev.p.src.errAt(n.Token().Offset, "%s", fe.msg)
		}
		return nil, ev.p.src.errAt(n.Token().Offset, "%s(): %v", f.name, err)
	}
	return v, nil
}

// contains(search, item): with an array, whether an element loosely equals
// item; otherwise whether search, as a string, contains item ignoring case.
func fnContains(_ *evaluator, args []any) (any, error) {
	if a, ok := asArray(args[0]); ok {
		for _, e := range a {
			if equal(norm(e), args[1]) {
				return true, nil
			}
		}
		return false, nil
	}
	if !isPrimitive(args[0]) || !isPrimitive(args[1]) {
		return false, nil
	}
	return strings.Contains(upper(String(args[0])), upper(String(args[1]))), nil
}

func fnStartsWith(_ *evaluator, args []any) (any, error) {
	if !isPrimitive(args[0]) || !isPrimitive(args[1]) {
		return false, nil
	}
	return strings.HasPrefix(upper(String(args[0])), upper(String(args[1]))), nil
}

func fnEndsWith(_ *evaluator, args []any) (any, error) {
	if !isPrimitive(args[0]) || !isPrimitive(args[1]) {
		return false, nil
	}
	return strings.HasSuffix(upper(String(args[0])), upper(String(args[1]))), nil
}

// format('{0} {1}', a, b): {N} is replaced by argument N as a string, {{ and
// }} stand for { and }. Anything else involving braces is an error, and so
// is an index with no argument.
func fnFormat(_ *evaluator, args []any) (any, error) {
	f := String(args[0])
	vals := args[1:]
	var b strings.Builder
	for i := 0; i < len(f); {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i += 2
		case c == '{':
			j := i + 1
			for j < len(f) && isDigit(f[j]) {
				j++
			}
			if j == i+1 || j >= len(f) || f[j] != '}' || j-i-1 > 3 {
				return nil, funcErrorf("format(): invalid format string %q", f)
			}
			n := 0
			for _, d := range f[i+1 : j] {
				n = n*10 + int(d-'0')
			}
			if n >= len(vals) {
				given := fmt.Sprintf("%d arguments are", len(vals))
				if len(vals) == 1 {
					given = "1 argument is"
				}
				return nil, funcErrorf("format(): format string %q refers to argument {%d}, but only %s given after it", f, n, given)
			}
			b.WriteString(String(vals[n]))
			if b.Len() > MaxValueBytes {
				return nil, errTooLarge("format()")
			}
			i = j + 1
		case c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i += 2
		case c == '}':
			return nil, funcErrorf("format(): invalid format string %q (a lone '}' must be written '}}')", f)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// join(array, separator=','): the elements as strings joined by separator; a
// primitive value is returned as a string; an object gives "".
func fnJoin(_ *evaluator, args []any) (any, error) {
	sep := ","
	if len(args) > 1 && isPrimitive(args[1]) {
		sep = String(args[1])
	}
	if a, ok := asArray(args[0]); ok {
		parts := make([]string, len(a))
		size := 0
		for i, e := range a {
			parts[i] = String(e)
			if size += len(parts[i]) + len(sep); size > MaxValueBytes {
				return nil, errTooLarge("join()")
			}
		}
		return strings.Join(parts, sep), nil
	}
	if isPrimitive(args[0]) {
		return String(args[0]), nil
	}
	return "", nil
}

func fnToJSON(_ *evaluator, args []any) (any, error) {
	var b strings.Builder
	writeJSON(&b, args[0], 0)
	if b.Len() > MaxValueBytes {
		return nil, errTooLarge("toJSON()")
	}
	return b.String(), nil
}

func fnFromJSON(_ *evaluator, args []any) (any, error) {
	s := String(args[0])
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		if strings.TrimSpace(s) == "" {
			return nil, funcErrorf("fromJSON(): empty input")
		}
		return nil, funcErrorf("fromJSON(): invalid JSON: %v", err)
	}
	return v, nil
}

func fnHashFiles(ev *evaluator, args []any) (any, error) {
	if ev.env.HashFiles == nil {
		return nil, funcErrorf("hashFiles() is not available here")
	}
	patterns := make([]string, len(args))
	for i, a := range args {
		patterns[i] = String(a)
	}
	return ev.env.HashFiles(patterns)
}
