package container

import (
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// BuildKit reports progress as "moby.buildkit.trace" messages whose aux is
// a protobuf moby.buildkit.v1.StatusResponse. Only a few of its fields make
// a build log, so they are read off the wire format (protowire, the
// protobuf module's own reader) rather than through BuildKit's generated
// types and the module they would pull in:
//
//	StatusResponse { repeated Vertex vertexes = 1; repeated VertexLog logs = 3; }
//	Vertex { string digest = 1; string name = 3; bool cached = 4; string error = 7; }
//	VertexLog { string vertex = 1; bytes msg = 4; }
const buildkitTraceID = "moby.buildkit.trace"

// buildkitLog turns trace messages into plain lines: each step's name when
// it first appears, its output, and CACHED or ERROR when it ends so.
type buildkitLog struct {
	log   io.Writer
	steps map[string]bool // vertex digests already announced
	ended map[string]bool
}

func newBuildkitLog(log io.Writer) *buildkitLog {
	return &buildkitLog{log: log, steps: map[string]bool{}, ended: map[string]bool{}}
}

type vertex struct {
	digest, name, err string
	cached            bool
}

func (b *buildkitLog) write(msg []byte) error {
	return eachField(msg, func(f field) error {
		switch f.num {
		case 1:
			var vx vertex
			if err := eachField(f.bytes, func(f field) error {
				switch f.num {
				case 1:
					vx.digest = string(f.bytes)
				case 3:
					vx.name = string(f.bytes)
				case 4:
					vx.cached = f.varint != 0
				case 7:
					vx.err = string(f.bytes)
				}
				return nil
			}); err != nil {
				return err
			}
			b.vertex(vx)
		case 3:
			return eachField(f.bytes, func(f field) error {
				if f.num == 4 {
					b.log.Write(f.bytes)
				}
				return nil
			})
		}
		return nil
	})
}

func (b *buildkitLog) vertex(vx vertex) {
	if vx.digest == "" || vx.name == "" || strings.HasPrefix(vx.name, "[internal]") {
		return // BuildKit's own bookkeeping steps say nothing to a user
	}
	if !b.steps[vx.digest] {
		b.steps[vx.digest] = true
		fmt.Fprintf(b.log, "#%d %s\n", len(b.steps), vx.name)
	}
	if b.ended[vx.digest] {
		return
	}
	switch {
	case vx.err != "":
		b.ended[vx.digest] = true
		fmt.Fprintf(b.log, "ERROR %s: %s\n", vx.name, vx.err)
	case vx.cached:
		b.ended[vx.digest] = true
		fmt.Fprintf(b.log, "CACHED %s\n", vx.name)
	}
}

// field is one field of a protobuf message: bytes for a length-delimited
// one, varint for a varint one.
type field struct {
	num    protowire.Number
	bytes  []byte
	varint uint64
}

// eachField calls fn with every length-delimited and varint field of a
// message; fields of other wire types are skipped.
func eachField(msg []byte, fn func(field) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		f := field{num: num}
		switch typ {
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(msg)
		case protowire.VarintType:
			f.varint, n = protowire.ConsumeVarint(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		if typ == protowire.BytesType || typ == protowire.VarintType {
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}
