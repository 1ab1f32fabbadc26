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

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Decode parses data into v after checking every key against v's yaml tags
// and every value against its field's type. A file that is not YAML, or
// is empty, gives no document and one error. Otherwise Decode reports
// every wrong key and value at once, as Errors, and still returns the
// document, with v holding each value that was right (a wrong one is left
// zero): callers check what the file means too and report it all together
// (see Report). The document gives later errors their positions.
func Decode(file string, data []byte, v any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Message: "file is empty"}}
		}
		return nil, Errors{positioned(file, err)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Message: "file is empty"}}
	}
	doc := root.Content[0]
	var found Errors
	c := keyChecker{file: file, seen: map[aliased]bool{}, keys: map[reflect.Type]*structKeys{}, errs: &found}
	c.check(doc, reflect.TypeOf(v).Elem(), "")
	if err := doc.Decode(v); err != nil {
		// What the check let through yaml refuses only as a whole (its
		// alias limit, a merge of a refused value): one error, or the
		// check's, of which this one likely follows.
		if len(found) > 0 {
			return nil, found.Err()
		}
		var pe *Error
		if errors.As(err, &pe) {
			pe.File = file
			return nil, Errors{pe}
		}
		return nil, Errors{positioned(file, err)}
	}
	return doc, found.Err()
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
// position and field: a misspelt key must not be ignored. It goes on past
// each, so one pass finds them all.
type keyChecker struct {
	file string
	// seen holds the anchored nodes already checked as a type: a few lines
	// of aliases to aliases would otherwise make the walk exponential. A
	// key already reported unknown is in it with a nil type.
	seen map[aliased]bool
	keys map[reflect.Type]*structKeys
	errs *Errors
}

type aliased struct {
	n *yaml.Node
	t reflect.Type
}

// structKeys are the keys a struct type takes, by its yaml tags.
type structKeys struct {
	fields  map[string]reflect.StructField
	names   []string // in the struct's order
	allowed string   // names, as a message lists them
}

// keysOf reads t's keys once per file: a file holds many values of a type.
func (c keyChecker) keysOf(t reflect.Type) *structKeys {
	if k, ok := c.keys[t]; ok {
		return k
	}
	k := &structKeys{fields: map[string]reflect.StructField{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if !f.IsExported() || name == "-" {
			continue // not read from the file
		}
		k.fields[name] = f
		k.names = append(k.names, name)
	}
	k.allowed = strings.Join(k.names, ", ")
	c.keys[t] = k
	return k
}

// add records an error about node n, the value of field.
func (c keyChecker) add(n *yaml.Node, field, message string) {
	*c.errs = append(*c.errs, &Error{File: c.file, Line: n.Line, Column: n.Column, Field: field, Message: message})
}

// refuse records an error about the value n and blanks it, in place, to
// null: yaml then leaves its field zero and decodes the rest, instead of
// stopping at it. The node keeps its position for later errors.
func (c keyChecker) refuse(n *yaml.Node, field, message string) {
	c.add(n, field, message)
	blank(n)
}

func blank(n *yaml.Node) {
	n.Kind, n.Tag, n.Value, n.Style, n.Content, n.Alias = yaml.ScalarNode, "!!null", "", 0, nil, nil
}

// keepPlace turns a refused list item, blanked to null, into the zero
// value of its type: yaml drops a null item of a struct or scalar type
// from a list, and every later item's index would then differ from the
// file's. A null pointer, map or list keeps its place, and so does a type
// with its own UnmarshalYAML, which only null keeps from being called.
func keepPlace(n *yaml.Node, t reflect.Type) {
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
	case reflect.String:
		n.Tag = "!!str"
	case reflect.Bool:
		n.Tag, n.Value = "!!bool", "false"
	case reflect.Float32, reflect.Float64:
		n.Tag, n.Value = "!!float", "0"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.Tag, n.Value = "!!int", "0"
	}
}

func (c keyChecker) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if c.seen[aliased{n, t}] {
			return
		}
		c.seen[aliased{n, t}] = true
	}
	field := strings.TrimPrefix(path, ".")
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if n.Tag == "!!null" {
			return // yaml leaves the zero value without asking the type
		}
		// The type checks its own node; its error gains the field's name,
		// and this file's: the type cannot know which file it is read from.
		err := n.Decode(reflect.New(t).Interface())
		var pe *Error
		if errors.As(err, &pe) {
			e := *pe
			e.File = c.file
			if e.Field == "" {
				e.Field = field
			}
			*c.errs = append(*c.errs, &e)
			blank(n)
		} else if err != nil {
			c.refuse(n, field, err.Error())
		}
		return
	}
	if n.Tag == "!!null" {
		return // an empty value leaves the zero value, as yaml does
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// Decode a probe here, so a value of the wrong type is reported at
		// its own line and column with its field rather than by yaml's
		// "cannot unmarshal" line. yaml would also truncate 1.5 into an
		// int: a whole number must be written as one.
		if n.Kind != yaml.ScalarNode || (isWhole(t.Kind()) && n.ShortTag() != "!!int") || n.Decode(reflect.New(t).Interface()) != nil {
			c.refuse(n, field, scalarWanted(t, n))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.refuse(n, field, "must be a mapping of keys to values")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].ShortTag() == "!!merge" {
				continue // "<<: *defaults" merges a mapping; yaml checks its shape
			}
			c.check(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value)
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.refuse(n, field, "must be a mapping of keys to values")
			return
		}
		keys := c.keysOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := keys.fields[k.Value]
			if !ok {
				// yaml ignores a key it does not know: only say so, once
				// however many aliases lead to it.
				if c.seen[aliased{k, nil}] {
					continue
				}
				c.seen[aliased{k, nil}] = true
				c.add(k, strings.TrimPrefix(path+"."+k.Value, "."),
					Unknown(fmt.Sprintf("unknown key %q", k.Value), k.Value, keys.names, "allowed here: "+keys.allowed))
				continue
			}
			c.check(v, f.Type, path+"."+k.Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.refuse(n, field, "must be a list")
			return
		}
		for i, item := range n.Content {
			target := item
			if target.Kind == yaml.AliasNode {
				target = target.Alias
			}
			wasNull := target.ShortTag() == "!!null"
			c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			if !wasNull && target.ShortTag() == "!!null" {
				keepPlace(target, t.Elem())
			}
		}
	}
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

// NodeAt follows mapping keys (string) and sequence indexes (int) from n,
// and aliases to their anchors; it stops at the deepest node the path
// reaches.
func NodeAt(n *yaml.Node, path ...any) *yaml.Node {
	cur := n
	for _, p := range path {
		if cur == nil {
			return nil
		}
		if cur.Kind == yaml.AliasNode && cur.Alias != nil {
			cur = cur.Alias // the value is where its anchor was written
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
