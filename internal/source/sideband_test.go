package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func pktOf(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestRequestCaps(t *testing.T) {
	zero := strings.Repeat("0", 40)
	cmd := zero + " " + strings.Repeat("a", 40) + " refs/heads/main"
	for _, c := range []struct {
		name, body, caps string
		ok               bool
	}{
		{"command", pktOf(cmd+"\x00report-status side-band-64k quiet\n") + "0000PACK", "report-status side-band-64k quiet\n", true},
		{"shallow first", pktOf("shallow "+zero+"\n") + pktOf("shallow "+zero+"\n") + pktOf(cmd+"\x00side-band-64k") + "0000", "side-band-64k", true},
		{"signed push", pktOf("push-cert\x00report-status side-band-64k push-cert=x\n") + pktOf("certificate version 0.1\n"), "report-status side-band-64k push-cert=x\n", true},
		{"no caps", pktOf(cmd+"\n") + "0000", "", false},
		{"flush first", "0000" + pktOf(cmd+"\x00side-band-64k"), "", false},
		{"past the peek", "00ff" + cmd, "", false},
		{"not a pkt-line", "PACK\x00\x00\x00\x02", "", false},
		{"empty", "", "", false},
	} {
		caps, ok := requestCaps([]byte(c.body))
		if caps != c.caps || ok != c.ok {
			t.Errorf("%s: %q %v, want %q %v", c.name, caps, ok, c.caps, c.ok)
		}
	}
}

func TestPushSidebandKeepsTheBody(t *testing.T) {
	cmd := strings.Repeat("0", 40) + " " + strings.Repeat("a", 40) + " refs/heads/main"
	pack := bytes.Repeat([]byte("PACK data "), capsPeek/5) // longer than the peek
	for _, c := range []struct {
		caps, encoding string
		want           int
	}{
		{"report-status side-band-64k", "", sideBand64Max},
		{"report-status side-band", "", 0},
		{"report-status", "", 0},
		{"report-status side-band-64k", "gzip", 0},
	} {
		body := pktOf(cmd+"\x00"+c.caps+"\n") + "0000" + string(pack)
		r := httptest.NewRequest("POST", "/git/hello.git/git-receive-pack", strings.NewReader(body))
		if c.encoding != "" {
			r.Header.Set("Content-Encoding", c.encoding)
		}
		if got := pushSideband(r); got != c.want {
			t.Errorf("%q %q: %d, want %d", c.caps, c.encoding, got, c.want)
		}
		if got, err := io.ReadAll(r.Body); err != nil || string(got) != body {
			t.Errorf("%q: body changed by the peek (%d bytes of %d, %v)", c.caps, len(got), len(body), err)
		}
	}
}

// sidebandStream is a response as receive-pack writes it with side-band-64k:
// progress, a keepalive, the report-status on band 1, and the final flush.
var sidebandStream = pktOf("\x02Resolving deltas: 100% (1/1)\n") + "0005\x01" +
	pktOf("\x01"+pktOf("unpack ok\n")+pktOf("ok refs/heads/main\n")+"0000") + "0000"

func recorder() *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	return rec
}

// feed writes stream to a reportWriter in chunks of size n, then finishes
// it with lines, and returns what the client got.
func feed(t *testing.T, rec *httptest.ResponseRecorder, code int, stream string, n int, lines []string) string {
	t.Helper()
	rw := newReportWriter(rec, sideBand64Max)
	rw.WriteHeader(code)
	for s := stream; s != ""; {
		k := min(n, len(s))
		if m, err := rw.Write([]byte(s[:k])); m != k || err != nil {
			t.Fatalf("write: %d of %d, %v", m, k, err)
		}
		s = s[k:]
	}
	rw.finish(lines)
	return rec.Body.String()
}

func TestReportWriterAddsMessagesBeforeTheLastFlush(t *testing.T) {
	lines := []string{"slipway: main → run 1 started: http://x/runs/1", "slipway: v1 → no run: because"}
	body := strings.TrimSuffix(sidebandStream, "0000")
	want := body + pktOf("\x02"+lines[0]+"\n") + pktOf("\x02"+lines[1]+"\n") + "0000"
	for n := 1; n <= len(sidebandStream); n++ {
		if got := feed(t, recorder(), 200, sidebandStream, n, lines); got != want {
			t.Fatalf("chunks of %d:\n%q\nwant\n%q", n, got, want)
		}
	}
	// A flush inside the stream is passed on; only the last one is moved.
	stream := pktOf("\x02a\n") + "0000" + sidebandStream
	if got := feed(t, recorder(), 200, stream, 3, lines); got != pktOf("\x02a\n")+"0000"+want {
		t.Errorf("with an earlier flush: %q", got)
	}
}

func TestReportWriterLeavesOtherResponsesAlone(t *testing.T) {
	lines := []string{"slipway: main → run 1 started"}
	report := pktOf("unpack ok\n") + pktOf("ok refs/heads/main\n") + "0000"
	for _, c := range []struct {
		name   string
		code   int
		header func(http.Header)
		stream string
	}{
		// Without a sideband the report-status itself ends in a flush.
		{"no sideband", 200, nil, report},
		{"flush then no sideband", 200, nil, "0000" + report},
		{"not a pkt-line", 200, nil, "unpack ok\n0000"},
		{"bad band", 200, nil, pktOf("\x05what") + "0000"},
		{"truncated", 200, nil, strings.TrimSuffix(sidebandStream, "0000") + "00"},
		{"no final flush", 200, nil, strings.TrimSuffix(sidebandStream, "0000")},
		{"too long a packet", 200, nil, "fff5\x02" + "0000"},
		{"error status", 500, nil, "0000"},
		{"other type", 200, func(h http.Header) { h.Set("Content-Type", "text/plain") }, sidebandStream},
		{"length declared", 200, func(h http.Header) { h.Set("Content-Length", fmt.Sprint(len(sidebandStream))) }, sidebandStream},
		{"empty", 200, nil, ""},
	} {
		for _, n := range []int{1, 2, 5, 1 << 20} {
			rec := recorder()
			if c.header != nil {
				c.header(rec.Header())
			}
			if got := feed(t, rec, c.code, c.stream, n, lines); got != c.stream {
				t.Errorf("%s, chunks of %d: %q, want it unchanged", c.name, n, got)
			}
		}
	}
}

func TestReportWriterWithoutSideband(t *testing.T) {
	rec := recorder()
	rw := newReportWriter(rec, 0)
	rw.WriteHeader(200)
	if _, err := rw.Write([]byte("0000")); err != nil {
		t.Fatal(err)
	}
	rw.finish([]string{"slipway: main → run 1 started"})
	if rec.Body.String() != "0000" {
		t.Errorf("got %q", rec.Body.String())
	}
}

func TestWriteBand2SplitsLongLines(t *testing.T) {
	text := strings.Repeat("0123456789", 30) + "\n"
	var out bytes.Buffer
	writeBand2(&out, text, 64)
	var joined strings.Builder
	for b := out.String(); b != ""; {
		n, ok := pktLen([]byte(b))
		if !ok || n > 64 || n < 6 || b[4] != 2 {
			t.Fatalf("bad packet at %q", b)
		}
		joined.WriteString(b[5:n])
		b = b[n:]
	}
	if joined.String() != text {
		t.Errorf("rejoined %q", joined.String())
	}
}

func TestPushMessages(t *testing.T) {
	link := func(id int64) string { return fmt.Sprintf("https://slipway.example.com/runs/%d", id) }
	main := RefUpdate{Ref: "refs/heads/main", Old: ZeroSHA, New: strings.Repeat("a", 40)}
	for _, c := range []struct {
		name string
		up   RefUpdate
		ev   store.PushEvent
		err  error
		link func(int64) string
		want []string
	}{
		{"run", main, store.PushEvent{Outcome: store.OutcomeRun, RunID: 12}, nil, link,
			[]string{"slipway: main → run 12 started: https://slipway.example.com/runs/12"}},
		{"run, path only", main, store.PushEvent{Outcome: store.OutcomeRun, RunID: 3}, nil, nil,
			[]string{"slipway: main → run 3 started: /runs/3"}},
		{"tag", RefUpdate{Ref: "refs/tags/v1"}, store.PushEvent{Outcome: store.OutcomeFiltered, Reason: "tag v1 matches no on.push.tags pattern"}, nil, link,
			[]string{"slipway: tag v1 → no run: tag v1 matches no on.push.tags pattern"}},
		{"other ref", RefUpdate{Ref: "refs/notes/x"}, store.PushEvent{Outcome: store.OutcomeFiltered, Reason: "ref refs/notes/x is neither a branch nor a tag"}, nil, link,
			[]string{"slipway: refs/notes/x → no run: ref refs/notes/x is neither a branch nor a tag"}},
		{"several errors", main, store.PushEvent{Outcome: store.OutcomeError, Reason: "slipway.yaml:3:1: unmarshal errors:\n  line 3: cannot unmarshal\n  line 5: cannot unmarshal\n"}, nil, link,
			[]string{"slipway: main → no run: slipway.yaml:3:1: unmarshal errors:", "slipway:   line 3: cannot unmarshal", "slipway:   line 5: cannot unmarshal"}},
		{"control characters", main, store.PushEvent{Outcome: store.OutcomeError, Reason: "slipway.yaml:1:1: \"\x1b[31mred\r\""}, nil, link,
			[]string{"slipway: main → no run: slipway.yaml:1:1: \"\uFFFD[31mred\uFFFD\""}},
		{"not recorded", main, store.PushEvent{}, errors.New("database is locked"), link,
			[]string{"slipway: main → the push is stored, but Slipway could not record what it starts; see the server log"}},
	} {
		got := pushMessages(c.up, c.ev, c.err, c.link)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s:\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
}

// failingStore refuses to record pushes.
type failingStore struct{ Store }

func (failingStore) RecordPush(context.Context, store.PushEvent, ...*store.Run) (store.PushEvent, error) {
	return store.PushEvent{}, errors.New("disk full")
}

// A push whose event cannot be recorded still succeeds, and says so.
func TestServePushWhenRecordingFails(t *testing.T) {
	s, db := testService(t, t.TempDir(), newKey(t))
	if err := s.CreateRepo(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	s.Store = failingStore{db}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			s.ServePush(w, r, "hello", "tester", nil)
			return
		}
		s.ServeGit(w, r, "hello", "tester")
	}))
	defer srv.Close()

	work := t.TempDir()
	gitIn(t, work, "init", "-q", "-b", "main")
	gitIn(t, work, "commit", "-q", "--allow-empty", "-m", "first")
	cmd := exec.Command("git", "push", srv.URL+"/git/hello.git", "main")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("push failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "remote: slipway: main → the push is stored, but Slipway could not record") {
		t.Errorf("push output:\n%s", out)
	}
	if got := gitIn(t, s.RepoPath("hello"), "rev-parse", "main"); got != gitIn(t, work, "rev-parse", "main") {
		t.Errorf("main is %s on the server", got)
	}
}
