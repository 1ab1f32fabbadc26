package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// push runs git push in w with args and returns its stdout and stderr,
// failing the test when git fails: messages must never fail a push.
func (w *gitWork) push(args ...string) (stdout, stderr string) {
	w.t.Helper()
	cmd := exec.Command("git", append([]string{"push"}, args...)...)
	cmd.Dir = w.dir
	cmd.Env = w.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		w.t.Fatalf("git push %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// remoteLines are the lines git printed from the server's sideband, with
// the "remote: " prefix and the clear-to-end-of-line padding taken off.
func remoteLines(stderr string) []string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(l, "remote: "); ok {
			lines = append(lines, strings.TrimRight(strings.TrimSuffix(rest, "\x1b[K"), " "))
		}
	}
	return lines
}

func wantRemote(t *testing.T, stderr string, want ...string) {
	t.Helper()
	got := remoteLines(stderr)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("remote lines:\n%s\nwant:\n%s\nwhole stderr:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), stderr)
	}
}

func TestIntegrationGitPushSidebandMessages(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	w := newWork(t)
	w.git("remote", "add", "origin", repoURL(e.URL, e.token("pusher", "deployer"), "hello"))

	w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/a.go": "package a"})
	_, stderr := w.push("origin", "main")
	wantRemote(t, stderr, "slipway: main → run 1 started: "+e.URL+"/runs/1")

	// -q quiets git's progress, not what the server says (as with a hook).
	w.git("checkout", "-q", "-b", "feature/x")
	_, stderr = w.push("-q", "origin", "feature/x")
	wantRemote(t, stderr, "slipway: feature/x → no run: branch feature/x matches no on.push.branches pattern")

	w.git("tag", "v1.2.0")
	_, stderr = w.push("origin", "v1.2.0")
	wantRemote(t, stderr, "slipway: tag v1.2.0 → run 2 started: "+e.URL+"/runs/2")

	_, stderr = w.push("origin", "--delete", "feature/x")
	wantRemote(t, stderr, "slipway: feature/x → no run: ref deleted; a deleted branch or tag starts nothing")

	// A slipway.yaml that does not validate: the error with its position.
	w.git("checkout", "-q", "-b", "release/1", "main")
	w.commit("broken pipeline", map[string]string{"slipway.yaml": "on:\n  push:\n    branches: [main]\nstages:\n  - name: B\n    actions:\n      - name: a\n        type: compile\n"})
	_, stderr = w.push("origin", "release/1")
	got := remoteLines(stderr)
	if len(got) != 1 || !strings.HasPrefix(got[0], `slipway: release/1 → no run: slipway.yaml:8:15: stages[0].actions[0].type: "compile" is not an action type`) {
		t.Errorf("remote lines for a broken slipway.yaml: %q\n%s", got, stderr)
	}

	// Several refs in one push: a line each, in ref order.
	w.git("checkout", "-q", "main")
	w.commit("more", map[string]string{"src/b.go": "package a"})
	w.git("branch", "-f", "release/2")
	_, stderr = w.push("origin", "main", "release/2")
	wantRemote(t, stderr,
		"slipway: main → run 3 started: "+e.URL+"/runs/3",
		"slipway: release/2 → run 4 started: "+e.URL+"/runs/4")

	// --porcelain output (stdout) is what git makes of the report-status on
	// band 1; the messages on band 2 must leave it whole.
	w.git("checkout", "-q", "-b", "feature/y")
	stdout, stderr := w.push("--porcelain", "origin", "feature/y", "v1.2.0")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || lines[0] != "To "+e.URL+"/git/hello.git" ||
		!slices.Contains(lines, "*\trefs/heads/feature/y:refs/heads/feature/y\t[new branch]") ||
		!slices.Contains(lines, "=\trefs/tags/v1.2.0:refs/tags/v1.2.0\t[up to date]") || lines[3] != "Done" {
		t.Errorf("porcelain output:\n%s", stdout)
	}
	wantRemote(t, stderr, "slipway: feature/y → no run: branch feature/y matches no on.push.branches pattern")

	// Nothing updated, nothing said.
	_, stderr = w.push("origin", "main")
	wantRemote(t, stderr)
	if evs := e.events("hello"); len(evs) != 8 {
		t.Errorf("%d push events, want 8", len(evs))
	}
}

func TestIntegrationGitPushSidebandPublicURL(t *testing.T) {
	e := newEnvWith(t, Config{DataDir: t.TempDir(), PublicURL: "https://slipway.example.com/"})
	e.createApp("hello")
	w := newWork(t)
	w.git("remote", "add", "origin", repoURL(e.URL, e.Admin, "hello"))
	w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/a.go": "package a"})
	_, stderr := w.push("origin", "main")
	wantRemote(t, stderr, "slipway: main → run 1 started: https://slipway.example.com/runs/1")
}

// pkt is one pkt-line as a request carries it.
func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// rawPush sends a receive-pack request by hand: one new ref at the work's
// HEAD with caps, and the pack. It returns the response body.
func rawPush(t *testing.T, e *testEnv, w *gitWork, ref, caps string) []byte {
	t.Helper()
	head := w.git("rev-parse", "HEAD")
	cmd := exec.Command("git", "pack-objects", "--stdout", "--revs", "-q")
	cmd.Dir, cmd.Env = w.dir, w.env
	cmd.Stdin = strings.NewReader(head + "\n")
	pack, err := cmd.Output()
	if err != nil {
		t.Fatalf("pack-objects: %v", err)
	}
	body := pkt(strings.Repeat("0", 40)+" "+head+" "+ref+"\x00"+caps+"\n") + "0000" + string(pack)
	req, _ := http.NewRequest("POST", e.URL+"/git/hello.git/git-receive-pack", strings.NewReader(body))
	req.SetBasicAuth("ci", e.Admin)
	req.Header.Set("Content-Type", "application/x-git-receive-pack-request")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-git-receive-pack-result" {
		t.Fatalf("push: %d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	return out
}

// readPkts splits a response into pkt-line payloads; a flush is "".
func readPkts(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated length: %q", b)
		}
		n, err := strconv.ParseUint(string(b[:4]), 16, 16)
		if err != nil || (n > 0 && n < 4) || int(n) > len(b) {
			t.Fatalf("bad pkt-line length %q in %q", b[:4], b)
		}
		if n == 0 {
			out, b = append(out, ""), b[4:]
			continue
		}
		out, b = append(out, string(b[4:n])), b[n:]
	}
	return out
}

// The exact bytes of the response, for clients other than git's own.
func TestIntegrationGitPushSidebandFraming(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	w := newWork(t)
	w.commit("first", map[string]string{"slipway.yaml": triggerSpec, "src/a.go": "package a"})

	// Without side-band-64k the response is the bare report-status, as git
	// http-backend wrote it: an extra line there would be read as a ref's
	// status. receive-pack offers no plain side-band (1000-byte packets),
	// so a client asking for it gets the same.
	for i, caps := range []string{"report-status", "report-status side-band quiet"} {
		t.Run(caps, func(t *testing.T) {
			ref := fmt.Sprintf("refs/heads/plain%d", i)
			got := readPkts(t, rawPush(t, e, w, ref, caps))
			want := []string{"unpack ok\n", "ok " + ref + "\n", ""}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("response %q, want %q", got, want)
			}
		})
	}

	for _, c := range []struct {
		caps  string
		limit int
	}{{"report-status side-band-64k quiet", 65520}, {"report-status-v2 side-band-64k", 65520}} {
		t.Run(c.caps, func(t *testing.T) {
			ref := "refs/heads/" + strings.ReplaceAll(strings.Fields(c.caps)[0], "-", "")
			raw := rawPush(t, e, w, ref, c.caps)
			pkts := readPkts(t, raw)
			if pkts[len(pkts)-1] != "" {
				t.Fatalf("response does not end in a flush: %q", pkts)
			}
			var report, remote strings.Builder
			for i, p := range pkts[:len(pkts)-1] {
				if p == "" || len(p)+4 > c.limit {
					t.Fatalf("packet %d %q: a flush or over %d bytes before the end", i, p, c.limit)
				}
				switch p[0] {
				case 1:
					report.WriteString(p[1:])
				case 2:
					remote.WriteString(p[1:])
				default:
					t.Fatalf("packet %d %q: band %d", i, p, p[0])
				}
			}
			inner := readPkts(t, []byte(report.String()))
			if len(inner) != 3 || inner[0] != "unpack ok\n" || !strings.HasPrefix(inner[1], "ok "+ref) || inner[2] != "" {
				t.Errorf("report-status %q", inner)
			}
			// The messages come after the report, as a post-receive hook's would.
			if i := bytes.LastIndex(raw, []byte("\x01")); i > bytes.Index(raw, []byte("\x02slipway:")) {
				t.Errorf("messages before the report: %q", raw)
			}
			name := strings.TrimPrefix(ref, "refs/heads/")
			want := fmt.Sprintf("slipway: %s → no run: branch %s matches no on.push.branches pattern\n", name, name)
			if remote.String() != want {
				t.Errorf("band 2 %q, want %q", remote.String(), want)
			}
		})
	}
}
