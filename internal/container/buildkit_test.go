package container

import (
	"bytes"
	"io"
	"testing"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"google.golang.org/protobuf/encoding/protowire"
)

func pbField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func vertexMsg(digest, name, errText string, cached bool) []byte {
	v := append(pbField(1, []byte(digest)), pbField(3, []byte(name))...)
	if cached {
		v = protowire.AppendTag(v, 4, protowire.VarintType)
		v = protowire.AppendVarint(v, 1)
	}
	// A timestamp (a message) and an unknown fixed64 field are skipped.
	v = append(v, pbField(5, []byte{8, 1})...)
	v = protowire.AppendTag(v, 9, protowire.Fixed64Type)
	v = protowire.AppendFixed64(v, 7)
	if errText != "" {
		v = append(v, pbField(7, []byte(errText))...)
	}
	return pbField(1, v)
}

func logMsg(digest, text string) []byte {
	l := append(pbField(1, []byte(digest)), protowire.AppendTag(nil, 3, protowire.VarintType)...)
	l = protowire.AppendVarint(l, 1)
	l = append(l, pbField(4, []byte(text))...)
	return pbField(3, l)
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

func TestBuilderFor(t *testing.T) {
	cases := []struct {
		name, env string
		ping      types.Ping
		want      build.BuilderVersion
	}{
		{"engine says nothing (BuildKit through the API anyway)", "", types.Ping{OSType: "linux"}, build.BuilderBuildKit},
		{"engine prefers BuildKit", "", types.Ping{BuilderVersion: build.BuilderBuildKit}, build.BuilderBuildKit},
		{"engine has only the classic builder", "", types.Ping{BuilderVersion: build.BuilderV1}, build.BuilderV1},
		{"windows engine", "", types.Ping{OSType: "windows"}, build.BuilderV1},
		{"forced classic", "classic", types.Ping{BuilderVersion: build.BuilderBuildKit}, build.BuilderV1},
	}
	for _, c := range cases {
		t.Setenv("SLIPWAY_DOCKER_BUILDER", c.env)
		if got := builderFor(c.ping); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzBuildkitLog: whatever bytes the engine sends as BuildKit progress are
// read or refused with an error, never a panic.
func FuzzBuildkitLog(f *testing.F) {
	f.Add(vertexMsg("d1", "[2/2] RUN echo hi", "", false))
	f.Add(append(vertexMsg("a", "one", "", true), logMsg("a", "out\n")...))
	f.Add(vertexMsg("d2", "[2/2] RUN false", "exit code: 1", false))
	f.Add([]byte{0x0a, 0x05, 'x'})
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = newBuildkitLog(io.Discard).write(msg)
	})
}
