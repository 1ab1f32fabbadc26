package source

// Push messages: after a push, the pusher's terminal shows what Slipway did
// with each updated ref ("remote: slipway: main → run 12 started: …"), as
// GitLab and Heroku do.
//
// The messages are put into git-receive-pack's HTTP response here, in the
// server process, rather than printed by a post-receive hook in each bare
// repository. ServeGit records the push events only after http-backend has
// finished (under the repository's lock, from the refs before and after),
// so the outcome is known in this process and nowhere else; a hook would
// need a way back into the server (a socket or file whose path and
// permissions the hook's environment must be trusted with), would run
// before the events exist, and would have to be kept installed in every
// repository, including ones created by older versions.
//
// The protocol (git's Documentation/gitprotocol-pack.txt and
// gitprotocol-capabilities.txt): when the client asked for side-band-64k
// (the only sideband receive-pack offers), everything receive-pack sends is pkt-lines (four hex
// digits of length, counting themselves, then the payload) whose payload
// begins with a band: 1 carries the report-status (itself pkt-lines ending
// in its own flush, all inside band-1 payloads), 2 is progress text the
// client prints after "remote: ", 3 is a fatal error. The stream ends with
// a flush-pkt "0000" of its own, after which receive-pack writes nothing.
// A post-receive hook's output goes on band 2 just before that flush; the
// messages go in the same place. Without a sideband the response is the
// bare report-status, where any extra line would be read as a ref's
// status, so such a push gets no messages.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/slipway-dev/slipway/internal/store"
)

// sideBand64Max is the largest pkt-line, length prefix included, with
// side-band-64k (git's LARGE_PACKET_MAX). receive-pack offers no plain
// side-band (1000 bytes): a client asking only for that gets none.
const sideBand64Max = 65520

// capsPeek is how much of a push request is read ahead for its
// capabilities: they are on the first command, after any "shallow" lines.
const capsPeek = 64 << 10

// pushSideband returns the largest pkt-line the pusher accepts on its
// sideband, or 0 when it asked for none (or its request is compressed or
// not understood: then it gets no messages rather than a broken push). It
// reads ahead in r.Body without consuming it.
func pushSideband(r *http.Request) int {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return 0 // git sends pushes uncompressed; other clients lose only the messages
	}
	br := bufio.NewReaderSize(r.Body, capsPeek)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	head, _ := br.Peek(capsPeek) // a short body is all there is
	caps, ok := requestCaps(head)
	if !ok {
		return 0
	}
	if slices.Contains(strings.Fields(caps), "side-band-64k") {
		return sideBand64Max
	}
	return 0
}

// requestCaps finds the capability list of a receive-pack request: after
// the NUL of its first pkt-line that is not a "shallow" line (a command, or
// "push-cert" for a signed push).
func requestCaps(b []byte) (string, bool) {
	for {
		n, ok := pktLen(b)
		if !ok || n < 4 || n > len(b) {
			return "", false // a flush before any command, or past the peek
		}
		line := b[4:n]
		b = b[n:]
		if bytes.HasPrefix(line, []byte("shallow ")) {
			continue
		}
		_, caps, found := bytes.Cut(line, []byte{0})
		if !found {
			return "", false
		}
		return string(caps), true
	}
}

// pktLen parses a pkt-line length prefix.
func pktLen(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	if err != nil {
		return 0, false
	}
	return int(n), true
}

// reportWriter passes receive-pack's sideband response through as it comes
// and holds back a flush-pkt until it knows whether more follows: the last
// one ends the stream, and finish puts the messages before it. Anything it
// does not recognise as that stream passes through untouched, and then no
// messages are added: the push must never fail because of them.
type reportWriter struct {
	w     http.ResponseWriter
	limit int    // largest pkt-line the client accepts on the sideband
	on    bool   // the response is a receive-pack result being followed
	bad   bool   // the framing was not understood; pass through only
	head  []byte // the length prefix read so far
	// left is how much of the current packet's payload is still to come;
	// atBand is true when its first byte (the band) has not been seen.
	left   int
	atBand bool
	held   bool  // a flush-pkt was read and not yet written
	werr   error // the client's connection failed; nothing more is written
}

func newReportWriter(w http.ResponseWriter, limit int) *reportWriter {
	return &reportWriter{w: w, limit: limit}
}

func (rw *reportWriter) Header() http.Header { return rw.w.Header() }

// Unwrap lets http.ResponseController reach the real writer.
func (rw *reportWriter) Unwrap() http.ResponseWriter { return rw.w }

func (rw *reportWriter) WriteHeader(code int) {
	h := rw.w.Header()
	// Appending to a body of a declared length would corrupt it.
	rw.on = rw.limit > 0 && code == http.StatusOK && h.Get("Content-Type") == "application/x-git-receive-pack-result" && h.Get("Content-Length") == ""
	rw.w.WriteHeader(code)
}

func (rw *reportWriter) Write(p []byte) (int, error) {
	if !rw.on || rw.bad {
		return rw.pass(p)
	}
	total := len(p)
	for len(p) > 0 {
		if rw.left > 0 {
			n := min(rw.left, len(p))
			if rw.atBand && (p[0] < 1 || p[0] > 3) {
				rw.bad = true
				break
			}
			rw.atBand = false
			if _, err := rw.pass(p[:n]); err != nil {
				return total - len(p), err
			}
			rw.left -= n
			p = p[n:]
			continue
		}
		take := min(4-len(rw.head), len(p))
		rw.head = append(rw.head, p[:take]...)
		p = p[take:]
		if len(rw.head) < 4 {
			break
		}
		n, ok := pktLen(rw.head)
		if !ok || (n > 0 && n < 5) || n > rw.limit {
			// Not a sideband packet (a band byte makes five at least).
			rw.bad = true
			break
		}
		if rw.held {
			rw.held = false
			if _, err := rw.pass([]byte("0000")); err != nil {
				return total - len(p), err
			}
		}
		if n == 0 {
			rw.held = true
		} else {
			if _, err := rw.pass(rw.head); err != nil {
				return total - len(p), err
			}
			rw.left, rw.atBand = n-4, true
		}
		rw.head = rw.head[:0]
	}
	if rw.bad {
		// Give back what was held, as it came, and stop following.
		var pending []byte
		if rw.held {
			pending = append(pending, "0000"...)
			rw.held = false
		}
		pending = append(append(pending, rw.head...), p...)
		rw.head = nil
		if _, err := rw.pass(pending); err != nil {
			return total - len(p), err
		}
	}
	return total, nil
}

func (rw *reportWriter) pass(p []byte) (int, error) {
	if rw.werr != nil {
		return 0, rw.werr
	}
	n, err := rw.w.Write(p)
	if err != nil {
		rw.werr = err
	}
	return n, err
}

// finish ends the response: the lines go on band 2 before the held flush.
// When the stream did not end in a flush (receive-pack failed, or the
// response was not followed) they are dropped and what came is left as is:
// a flush is held only while everything before it was understood.
func (rw *reportWriter) finish(lines []string) {
	var out bytes.Buffer
	if rw.held && len(rw.head) == 0 {
		for _, l := range lines {
			writeBand2(&out, l+"\n", rw.limit)
		}
	}
	if rw.held {
		out.WriteString("0000")
	}
	out.Write(rw.head) // a stream cut inside a length prefix stays cut
	rw.held, rw.head = false, nil
	if out.Len() > 0 {
		_, _ = rw.pass(out.Bytes()) // the client has gone; the push is recorded regardless
	}
}

// writeBand2 frames text as band-2 pkt-lines of at most limit bytes; the
// client joins a line split across packets.
func writeBand2(out *bytes.Buffer, text string, limit int) {
	room := limit - 5
	for text != "" {
		n := min(len(text), room)
		fmt.Fprintf(out, "%04x\x02%s", n+5, text[:n])
		text = text[n:]
	}
}

// pushMessages is what the pusher reads about one updated ref: one line,
// or more when the reason has several (a slipway.yaml with many errors).
func pushMessages(up RefUpdate, ev store.PushEvent, err error, runURL func(id int64) string) []string {
	name := refName(up.Ref)
	var first string
	var rest []string
	switch {
	case err != nil:
		first = "the push is stored, but Slipway could not record what it starts; see the server log"
	case ev.RunID != 0:
		// One run per matching workflow; a workflow with errors started
		// none, and its errors follow.
		ids := ev.RunIDs
		if len(ids) == 0 {
			ids = []int64{ev.RunID}
		}
		for i, id := range ids {
			link := fmt.Sprintf("/runs/%d", id)
			if runURL != nil {
				link = runURL(id)
			}
			line := fmt.Sprintf("run %d started: %s", id, link)
			if i == 0 {
				first = line
			} else {
				rest = append(rest, line)
			}
		}
		if ev.Outcome != store.OutcomeRun && ev.Reason != "" {
			rest = append(rest, strings.Split(strings.TrimRight(ev.Reason, "\n"), "\n")...)
		}
	default:
		reason := strings.Split(strings.TrimRight(ev.Reason, "\n"), "\n")
		first, rest = "no run: "+reason[0], reason[1:]
	}
	lines := []string{"slipway: " + terminalSafe(name+" → "+first)}
	for _, l := range rest {
		lines = append(lines, "slipway:   "+terminalSafe(strings.TrimLeft(l, " ")))
	}
	return lines
}

// refName is a ref as a person names it: a branch by its name, a tag as
// "tag NAME", anything else in full.
func refName(ref string) string {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return b
	}
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return "tag " + t
	}
	return ref
}

// terminalSafe replaces control characters, which a reason can quote from
// a pushed file, so that a line cannot move the pusher's cursor, recolour
// the terminal or (with \r) be cut by the client into two.
func terminalSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}
