package task

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/docker/docker/pkg/stdcopy"
)

func frame(stream byte, payload string) []byte {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

// demux splits a stream as stdcopy.StdCopy does, frames larger than its
// buffer and cut reads included.
func TestDemuxSplitsAsStdCopy(t *testing.T) {
	big := strings.Repeat("x", 70000)
	cases := []struct {
		name    string
		stream  []byte
		wantErr string
	}{
		{"empty", nil, ""},
		{"both streams", bytes.Join([][]byte{frame(1, "out 1\n"), frame(2, "err 1\n"), frame(1, "out 2\n")}, nil), ""},
		{"a frame larger than the buffer", append(frame(1, big), frame(2, "tail\n")...), ""},
		{"an empty frame", append(frame(1, ""), frame(1, "after\n")...), ""},
		{"the engine's error", append(frame(1, "line\n"), frame(3, "boom")...), "boom"},
		{"an unknown stream", frame(9, "x"), "unknown stream 9"},
		{"a cut header", frame(1, "x")[:5], "unexpected EOF"},
		{"a cut payload", frame(1, "hello")[:10], "unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut, wantOut, wantErrOut bytes.Buffer
			// One byte a read: frames split across reads.
			err := demux(&out, &errOut, io.LimitReader(oneByte{bytes.NewReader(c.stream)}, int64(len(c.stream))))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stdcopy.StdCopy(&wantOut, &wantErrOut, bytes.NewReader(c.stream)); err != nil {
				t.Fatal(err)
			}
			if out.String() != wantOut.String() || errOut.String() != wantErrOut.String() {
				t.Fatalf("stdout %d bytes, stderr %q; StdCopy: %d bytes, %q", out.Len(), errOut.String(), wantOut.Len(), wantErrOut.String())
			}
		})
	}
}

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
