// Package specfile reads the YAML files teams keep in their repositories
// (slipway.yaml, buildspec.yml) strictly: an unknown key is an error, and
// every error names the file, line, column and field.
package specfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"

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

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Decode parses data into v after checking every key against v's yaml tags.
// It returns the document node so callers can point later errors at it.
func Decode(file string, data []byte, v any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Message: "file is empty"}
		}
		return nil, positioned(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Message: "file is empty"}
	}
	doc := root.Content[0]
	c := keyChecker{file: file, seen: map[aliased]bool{}}
	if err := c.check(doc, reflect.TypeOf(v).Elem(), ""); err != nil {
		return nil, err
	}
	if err := doc.Decode(v); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, positioned(file, err)
	}
	return doc, nil
}

func positioned(file string, err error) *Error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	e := &Error{File: file, Message: msg}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &e.Line)
		e.Column = 1
	}
	return e
}

// keyChecker walks the YAML tree beside the Go type and refuses keys the
// type does not declare and values of the wrong shape or type, with their
// position and field: a misspelt key must not be ignored.
type keyChecker struct {
	file string
	// seen holds the anchored nodes already checked as a type: a few lines
	// of aliases to aliases would otherwise make the walk exponential.
	seen map[aliased]bool
}

type aliased struct {
	n *yaml.Node
	t reflect.Type
}

// at is an error about node n, the value of field.
func (c keyChecker) at(n *yaml.Node, field, message string) *Error {
	return &Error{File: c.file, Line: n.Line, Column: n.Column, Field: field, Message: message}
}

func (c keyChecker) check(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if c.seen[aliased{n, t}] {
			return nil
		}
		c.seen[aliased{n, t}] = true
	}
	field := strings.TrimPrefix(path, ".")
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// The type checks its own node; its error gains the field's name.
		err := n.Decode(reflect.New(t).Interface())
		var pe *Error
		if errors.As(err, &pe) {
			if pe.Field == "" {
				pe.Field = field
			}
			return pe
		}
		if err != nil {
			return c.at(n, field, err.Error())
		}
		return nil
	}
	if n.Tag == "!!null" {
		return nil // an empty value leaves the zero value, as yaml does
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// Decode a probe here, so a value of the wrong type is reported at
		// its own line and column with its field rather than by yaml's
		// "cannot unmarshal" line. yaml would also truncate 1.5 into an
		// int: a whole number must be written as one.
		if n.Kind != yaml.ScalarNode || (isWhole(t.Kind()) && n.ShortTag() != "!!int") || n.Decode(reflect.New(t).Interface()) != nil {
			return c.at(n, field, scalarWanted(t, n))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return c.at(n, field, "must be a mapping of keys to values")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].ShortTag() == "!!merge" {
				continue // "<<: *defaults" merges a mapping; yaml checks its shape
			}
			if err := c.check(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return c.at(n, field, "must be a mapping of keys to values")
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			fields[name] = f
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				return c.at(k, strings.TrimPrefix(path+"."+k.Value, "."), fmt.Sprintf("unknown key %q; allowed here: %s", k.Value, strings.Join(names, ", ")))
			}
			if err := c.check(v, f.Type, path+"."+k.Value); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				if err := c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		} else {
			return c.at(n, field, "must be a list")
		}
	}
	return nil
}

func isWhole(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Uint64 }

// scalarWanted says what value of type t the YAML node n should have been.
func scalarWanted(t reflect.Type, n *yaml.Node) string {
	var want string
	switch t.Kind() {
	case reflect.String:
		want = "a single value"
	case reflect.Bool:
		want = "true or false"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a whole number of 0 or more"
	default:
		want = "a whole number"
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "must be " + want + ", not a list"
	case yaml.MappingNode:
		return "must be " + want + ", not a mapping"
	}
	return fmt.Sprintf("must be %s, not %q", want, n.Value)
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// NodeAt follows mapping keys (string) and sequence indexes (int) from n.
func NodeAt(n *yaml.Node, path ...any) *yaml.Node {
	cur := n
	for _, p := range path {
		if cur == nil {
			return nil
		}
		switch k := p.(type) {
		case string:
			var next *yaml.Node
			if cur.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(cur.Content); i += 2 {
					if cur.Content[i].Value == k {
						next = cur.Content[i+1]
					}
				}
			}
			if next == nil {
				return cur
			}
			cur = next
		case int:
			if cur.Kind != yaml.SequenceNode || k >= len(cur.Content) {
				return cur
			}
			cur = cur.Content[k]
		}
	}
	return cur
}

// Glob compiles a path glob: "*" matches within one path segment, "**"
// across segments, "?" one character (a whole multi-byte one too). The
// glob must be valid UTF-8, as the regexp it becomes must be.
func Glob(glob string) (*regexp.Regexp, error) {
	if !utf8.ValidString(glob) {
		return nil, fmt.Errorf("glob %q is not valid UTF-8", glob)
	}
	var b strings.Builder
	// (?s): "**" crosses newlines too, which file names may hold, as
	// "*" and "?" already do.
	b.WriteString("(?s)^")
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch {
		case c == '*' && i+1 < len(glob) && glob[i+1] == '*':
			i++
			if i+1 < len(glob) && glob[i+1] == '/' {
				i++
				b.WriteString("(?:.*/)?") // "**/" also matches no directory at all
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			// The byte itself: string(c) would make each byte of a
			// multi-byte character a character of its own. QuoteMeta
			// leaves such bytes alone, so characters stay whole.
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
