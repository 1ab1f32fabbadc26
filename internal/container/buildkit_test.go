package container

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func field(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func vertexMsg(digest, name, errText string, cached bool) []byte {
	v := append(field(1, []byte(digest)), field(3, []byte(name))...)
	if cached {
		v = protowire.AppendTag(v, 4, protowire.VarintType)
		v = protowire.AppendVarint(v, 1)
	}
	// A timestamp (a message) and an unknown fixed64 field are skipped.
	v = append(v, field(5, []byte{8, 1})...)
	v = protowire.AppendTag(v, 9, protowire.Fixed64Type)
	v = protowire.AppendFixed64(v, 7)
	if errText != "" {
		v = append(v, field(7, []byte(errText))...)
	}
	return field(1, v)
}

func logMsg(digest, text string) []byte {
	l := append(field(1, []byte(digest)), protowire.AppendTag(nil, 3, protowire.VarintType)...)
	l = protowire.AppendVarint(l, 1)
	l = append(l, field(4, []byte(text))...)
	return field(3, l)
}

func TestBuildkitLog(t *testing.T) {
	cases := []struct {
		name string
		msgs [][]byte
		want string
	}{
		{"a step, its output, seen again", [][]byte{vertexMsg("d1", "[2/2] RUN echo hi", "", false), logMsg("d1", "hi\n"), vertexMsg("d1", "[2/2] RUN echo hi", "", false)},
			"#1 [2/2] RUN echo hi\nhi\n"},
		{"cached once", [][]byte{vertexMsg("d1", "[1/2] COPY a /a", "", true), vertexMsg("d1", "[1/2] COPY a /a", "", true)},
			"#1 [1/2] COPY a /a\nCACHED [1/2] COPY a /a\n"},
		{"error", [][]byte{vertexMsg("d2", "[2/2] RUN false", "exit code: 1", false)},
			"#1 [2/2] RUN false\nERROR [2/2] RUN false: exit code: 1\n"},
		{"internal steps are quiet", [][]byte{vertexMsg("d3", "[internal] load build context", "", false)}, ""},
		{"two vertexes in one message", [][]byte{append(vertexMsg("a", "one", "", false), vertexMsg("b", "two", "", false)...)}, "#1 one\n#2 two\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		l := newBuildkitLog(&out)
		for _, m := range c.msgs {
			if err := l.write(m); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		if out.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, out.String(), c.want)
		}
	}
	if err := newBuildkitLog(&bytes.Buffer{}).write([]byte{0x0a, 0x05, 'x'}); err == nil {
		t.Error("a truncated message was read without an error")
	}
}
