package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// stepOutput reads a workflow step's output line by line: workflow
// commands (::set-output, ::add-mask::, ::group::, ::error …, and the
// legacy ##[set-output name=…;]) are acted on, everything else goes to the
// action's log as the step printed it.
type stepOutput struct {
	log         io.Writer
	mask        func(values ...string)
	outputs     map[string]string
	annotations *[]store.Annotation
	partial     []byte
	stopToken   string // between ::stop-commands::T and ::T::, commands are text
}

func newStepOutput(log io.Writer, mask func(...string), outputs map[string]string, annotations *[]store.Annotation) *stepOutput {
	return &stepOutput{log: log, mask: mask, outputs: outputs, annotations: annotations}
}

func (o *stepOutput) Write(p []byte) (int, error) {
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.line(string(bytes.TrimSuffix(o.partial[:i], []byte("\r"))))
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > maxLineBytes { // a line without end is text, not a command
		_, _ = o.log.Write(o.partial)
		o.partial = o.partial[:0]
	}
	return len(p), nil
}

// Close handles a last line without a newline.
func (o *stepOutput) Close() {
	if len(o.partial) > 0 {
		o.line(string(o.partial))
		o.partial = nil
	}
}

func (o *stepOutput) print(s string) { fmt.Fprintln(o.log, s) }

func (o *stepOutput) line(l string) {
	trimmed := strings.TrimLeft(l, " \t")
	if o.stopToken != "" {
		if trimmed == "::"+o.stopToken+"::" {
			o.stopToken = ""
			return
		}
		o.print(l)
		return
	}
	if rest, ok := strings.CutPrefix(trimmed, "##[set-output "); ok {
		// ##[set-output name=NAME;]VALUE: the form older workflows use.
		if props, value, ok := strings.Cut(rest, "]"); ok {
			name := ""
			for _, kv := range strings.Split(props, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "name" {
					name = unescapeProperty(v)
				}
			}
			if name != "" {
				o.outputs[name] = unescapeData(value)
				return
			}
		}
	}
	cmd, ok := parseCommand(trimmed)
	if !ok {
		o.print(l)
		return
	}
	switch cmd.name {
	case "set-output":
		if n := cmd.props["name"]; n != "" {
			o.outputs[n] = cmd.data
			return
		}
		o.print("##[warning]::set-output needs name=NAME")
	case "add-mask":
		if strings.TrimSpace(cmd.data) != "" {
			o.mask(cmd.data)
		}
	case "group":
		o.print("##[group]" + cmd.data)
	case "endgroup":
		o.print("##[endgroup]")
	case "error", "warning", "notice":
		a := store.Annotation{Level: cmd.name, Message: cmd.data, Title: cmd.props["title"], File: cmd.props["file"]}
		a.Line, _ = strconv.Atoi(cmd.props["line"])
		a.Col, _ = strconv.Atoi(cmd.props["col"])
		if len(*o.annotations) < maxAnnotations {
			*o.annotations = append(*o.annotations, a)
		}
		o.print("##[" + cmd.name + "]" + a.Where() + cmd.data)
	case "debug", "echo", "save-state":
		// Debug output is hidden, as on GitHub without step debug logging;
		// echo only changes whether commands are echoed; state is for the
		// post steps of JavaScript actions, which do not run here.
	case "stop-commands":
		o.stopToken = cmd.data
	case "set-env", "add-path":
		o.print(fmt.Sprintf("##[error]The `%s` command is disabled (as on GitHub): write to $GITHUB_%s instead", cmd.name,
			map[string]string{"set-env": "ENV", "add-path": "PATH"}[cmd.name]))
	default:
		o.print(l)
	}
}

// maxAnnotations bounds the annotations one job keeps.
const maxAnnotations = 100

type command struct {
	name  string
	props map[string]string
	data  string
}

// parseCommand reads "::name prop=v,prop=v::data".
func parseCommand(l string) (command, bool) {
	rest, ok := strings.CutPrefix(l, "::")
	if !ok {
		return command{}, false
	}
	head, data, ok := strings.Cut(rest, "::")
	if !ok {
		return command{}, false
	}
	name, propText, _ := strings.Cut(head, " ")
	if name == "" || strings.ContainsAny(name, " \t") {
		return command{}, false
	}
	c := command{name: name, props: map[string]string{}, data: unescapeData(data)}
	for _, kv := range strings.Split(propText, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			c.props[k] = unescapeProperty(v)
		}
	}
	return c, true
}

var (
	dataUnescaper     = strings.NewReplacer("%0D", "\r", "%0A", "\n", "%25", "%")
	propertyUnescaper = strings.NewReplacer("%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",", "%25", "%")
)

func unescapeData(s string) string     { return dataUnescaper.Replace(s) }
func unescapeProperty(s string) string { return propertyUnescaper.Replace(s) }

// parseFileCommands reads $GITHUB_OUTPUT or $GITHUB_ENV: NAME=value lines,
// or NAME<<DELIMITER, the value's lines, then DELIMITER.
func parseFileCommands(data string) ([][2]string, error) {
	var out [][2]string
	lines := strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" {
			continue
		}
		eq := strings.Index(l, "=")
		heredoc := strings.Index(l, "<<")
		if heredoc > 0 && (eq < 0 || heredoc < eq) {
			name, delim := l[:heredoc], l[heredoc+2:]
			if name == "" || delim == "" {
				return nil, fmt.Errorf("line %d: %q: write NAME<<DELIMITER", i+1, l)
			}
			var value []string
			closed := false
			for i++; i < len(lines); i++ {
				if lines[i] == delim {
					closed = true
					break
				}
				value = append(value, lines[i])
			}
			if !closed {
				return nil, fmt.Errorf("%s: the delimiter %q never ends the value", name, delim)
			}
			out = append(out, [2]string{name, strings.Join(value, "\n")})
			continue
		}
		if eq <= 0 {
			return nil, fmt.Errorf("line %d: %q is neither NAME=value nor NAME<<DELIMITER", i+1, l)
		}
		out = append(out, [2]string{l[:eq], l[eq+1:]})
	}
	return out, nil
}
