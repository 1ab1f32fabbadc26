package pipeline

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestStepOutputCommands(t *testing.T) {
	for _, c := range []struct {
		name, in, log string
		outputs       map[string]string
		masked        []string
		annotations   []store.Annotation
	}{
		{name: "plain text passes", in: "hello\nworld\n", log: "hello\nworld\n"},
		{name: "set-output", in: "::set-output name=VERSION::1.2.3\n", outputs: map[string]string{"VERSION": "1.2.3"}},
		{name: "set-output escapes", in: "::set-output name=a%3Ab::x%0Ay%25\n", outputs: map[string]string{"a:b": "x\ny%"}},
		{name: "legacy ##[set-output", in: "##[set-output name=image;]reg/app:v1\n", outputs: map[string]string{"image": "reg/app:v1"}},
		{name: "indented command", in: "  ::set-output name=x::1\n", outputs: map[string]string{"x": "1"}},
		{name: "add-mask", in: "::add-mask::s3cret\n", masked: []string{"s3cret"}},
		{name: "blank mask ignored", in: "::add-mask::  \n"},
		{name: "group", in: "::group::Build\nline\n::endgroup::\n", log: "##[group]Build\nline\n##[endgroup]\n"},
		{name: "error annotation", in: "::error file=a.go,line=3,col=5,title=Bad::it broke\n", log: "##[error]a.go:3: it broke\n",
			annotations: []store.Annotation{{Level: "error", Message: "it broke", Title: "Bad", File: "a.go", Line: 3, Col: 5}}},
		{name: "notice without file", in: "::notice::fyi\n", log: "##[notice]fyi\n", annotations: []store.Annotation{{Level: "notice", Message: "fyi"}}},
		{name: "debug hidden", in: "::debug::noise\n"},
		{name: "stop-commands", in: "::stop-commands::tok\n::set-output name=x::1\n::tok::\n::set-output name=y::2\n",
			log: "::set-output name=x::1\n", outputs: map[string]string{"y": "2"}},
		{name: "set-env disabled", in: "::set-env name=A::b\n", log: "##[error]The `set-env` command is disabled (as on GitHub): write to $GITHUB_ENV instead\n"},
		{name: "unknown command is text", in: "::frobnicate::x\n", log: "::frobnicate::x\n"},
		{name: "not a command", in: ":: hello\n", log: ":: hello\n"},
		{name: "last line without newline", in: "::set-output name=z::9", outputs: map[string]string{"z": "9"}},
		{name: "CRLF", in: "::set-output name=w::v\r\n", outputs: map[string]string{"w": "v"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			var masked []string
			outputs := map[string]string{}
			var anns []store.Annotation
			o := newStepOutput(&log, func(v ...string) { masked = append(masked, v...) }, outputs, &anns)
			// Byte by byte: commands split across writes still parse.
			for i := 0; i < len(c.in); i++ {
				o.Write([]byte{c.in[i]})
			}
			o.Close()
			if log.String() != c.log {
				t.Errorf("log %q, want %q", log.String(), c.log)
			}
			if c.outputs == nil {
				c.outputs = map[string]string{}
			}
			if !reflect.DeepEqual(outputs, c.outputs) {
				t.Errorf("outputs %v, want %v", outputs, c.outputs)
			}
			if !reflect.DeepEqual(masked, c.masked) {
				t.Errorf("masked %v, want %v", masked, c.masked)
			}
			if !reflect.DeepEqual(anns, c.annotations) {
				t.Errorf("annotations %+v, want %+v", anns, c.annotations)
			}
		})
	}
}

func TestStepOutputBoundsAnnotations(t *testing.T) {
	var anns []store.Annotation
	o := newStepOutput(&bytes.Buffer{}, func(...string) {}, map[string]string{}, &anns)
	o.Write([]byte(strings.Repeat("::warning::w\n", maxAnnotations+50)))
	if len(anns) != maxAnnotations {
		t.Fatalf("%d annotations kept, want %d", len(anns), maxAnnotations)
	}
}

func TestParseFileCommands(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     [][2]string
		err      string
	}{
		{name: "simple", in: "a=1\nb=two words\n", want: [][2]string{{"a", "1"}, {"b", "two words"}}},
		{name: "value with =", in: "url=http://x?a=b\n", want: [][2]string{{"url", "http://x?a=b"}}},
		{name: "heredoc", in: "body<<EOF\nline 1\nline 2\nEOF\nnext=1\n", want: [][2]string{{"body", "line 1\nline 2"}, {"next", "1"}}},
		{name: "empty heredoc", in: "e<<X\nX\n", want: [][2]string{{"e", ""}}},
		{name: "CRLF", in: "a=1\r\nb<<E\r\nv\r\nE\r\n", want: [][2]string{{"a", "1"}, {"b", "v"}}},
		{name: "blank lines skipped", in: "\n\na=1\n\n", want: [][2]string{{"a", "1"}}},
		{name: "heredoc after = is a value", in: "a=x<<y\n", want: [][2]string{{"a", "x<<y"}}},
		{name: "unterminated heredoc", in: "a<<EOF\nno end\n", err: "never ends"},
		{name: "no name", in: "=1\n", err: "neither NAME=value"},
		{name: "no delimiter", in: "a<<\n", err: "NAME<<DELIMITER"},
		{name: "garbage", in: "just text\n", err: "neither NAME=value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseFileCommands(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestStepRunnerMarkers: the marker line ends a step with its status and
// is not shown; the newline printed before it adds no empty line to the
// step's output, whether or not the step ended its last line.
func TestStepRunnerMarkers(t *testing.T) {
	for _, c := range []struct{ name, in, step, between string }{
		{"ended line", "a\nb\n\nTOK 3\n", "a\nb\n", ""},
		{"unended line", "a\nb\nTOK 3\n", "a\nb\n", ""},
		{"empty lines kept", "a\n\n\nb\n\nTOK 3\n", "a\n\n\nb\n", ""},
		{"after the marker", "x\n\nTOK 3\nlate\n", "x\n", "late\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var step, between bytes.Buffer
			done := make(chan int, 1)
			r := &stepRunner{token: "TOK", logs: &between, out: &step, done: done}
			for i := 0; i < len(c.in); i++ { // byte by byte
				r.Write([]byte{c.in[i]})
			}
			if step.String() != c.step || between.String() != c.between {
				t.Errorf("step %q between %q; want %q and %q", step.String(), between.String(), c.step, c.between)
			}
			select {
			case code := <-done:
				if code != 3 {
					t.Errorf("status %d", code)
				}
			default:
				t.Error("the marker did not end the step")
			}
		})
	}
}
