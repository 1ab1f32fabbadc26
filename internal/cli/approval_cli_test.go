package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
)

func TestCLIApprovalsSecretsNotify(t *testing.T) {
	env := loggedIn(t)
	if _, _, err := slipway(t, "", "app", "create", "gate"); err != nil {
		t.Fatal(err)
	}

	// Secrets: value from stdin or a file, never printed back.
	if out, _, err := slipway(t, "hunter2-value\n", "secret", "set", "db", "--app", "gate"); err != nil || !strings.Contains(out, "version 1") {
		t.Fatalf("secret set: %q %v", out, err)
	}
	f := filepath.Join(t.TempDir(), "v")
	os.WriteFile(f, []byte("from-file-value"), 0o600)
	if out, _, err := slipway(t, "", "secret", "set", "db", "--app", "gate", "--from-file", f); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("secret set --from-file: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "secret", "set", "db"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty stdin: %v", err)
	}
	out, _, err := slipway(t, "", "secret", "list")
	if err != nil || !strings.Contains(out, "db") || strings.Contains(out, "hunter2") || strings.Contains(out, "from-file-value") {
		t.Fatalf("secret list: %q %v", out, err)
	}
	// Removing it under the wrong scope names the scopes it has.
	if _, _, err := slipway(t, "", "secret", "rm", "db"); err == nil || !strings.Contains(err.Error(), "db exists with: --app gate") {
		t.Fatalf("secret rm in the wrong scope: %v", err)
	}
	if _, _, err := slipway(t, "", "secret", "rm", "db", "--env", "staging"); err == nil || !strings.Contains(err.Error(), "needs its app too") {
		t.Fatalf("secret rm --env without --app: %v", err)
	}
	if _, _, err := slipway(t, "", "secret", "rm", "db", "--app", "gate"); err != nil {
		t.Fatalf("secret rm: %v", err)
	}
	if _, _, err := slipway(t, "", "secret", "rm", "db", "--app", "gate"); err == nil {
		t.Fatal("second rm succeeded")
	}

	// Notification channel with its credential from stdin.
	rc := notifytest.NewReceiver(t, 0)
	if _, _, err := slipway(t, "", "notify", "add", "gate", "chat", "--type", "slack", "--url", "ftp://x"); err == nil || !strings.Contains(err.Error(), "url") {
		t.Fatalf("bad url: %v", err)
	}
	if out, _, err := slipway(t, rc.URL+"/services/abc\n", "notify", "add", "gate", "chat", "--type", "slack", "--credential-stdin"); err != nil || !strings.Contains(out, "Channel chat of gate: slack") || strings.Contains(out, "/services/abc") {
		t.Fatalf("notify add: %q %v", out, err)
	}
	if out, _, err := slipway(t, "", "notify", "list", "gate"); err != nil || !strings.Contains(out, "chat") {
		t.Fatalf("notify list: %q %v", out, err)
	}

	work := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+work, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "slipway.yaml"), []byte("on: {}\nstages:\n  - name: G\n    actions:\n      - {name: ok, type: approval, message: please}\n  - name: P\n    actions:\n      - {name: ship, type: invoke, command: 'echo shipped'}\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "x")
	git("push", "-q", env.pushURL("gate"), "main")
	if _, _, err := slipway(t, "", "run", "start", "gate"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := slipway(t, "", "approve", "99"); err == nil || !strings.Contains(err.Error(), "run 99") {
		t.Fatalf("approve unknown run: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, _ := slipway(t, "", "run", "show", "1")
		if strings.Contains(out, "waiting") && strings.Contains(out, "G/ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never waiting:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, err := slipway(t, "", "reject", "1"); err == nil || !strings.Contains(err.Error(), "--comment") {
		t.Fatalf("reject without comment: %v", err)
	}
	if out, _, err := slipway(t, "", "approve", "1", "--comment", "ship it"); err != nil || !strings.Contains(out, "Run 1 approved at G/ok") {
		t.Fatalf("approve: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "approve", "1"); err == nil || !strings.Contains(err.Error(), "not waiting") {
		t.Fatalf("second approve: %v", err)
	}
	if _, _, err := slipway(t, "", "run", "watch", "1"); err != nil {
		t.Fatalf("watch: %v", err)
	}
	out, _, err = slipway(t, "", "run", "show", "1")
	if err != nil || !strings.Contains(out, "APPROVAL") || !strings.Contains(out, "ship it") || !strings.Contains(out, "approved") {
		t.Fatalf("run show audit: %q %v", out, err)
	}
	// The channel heard about the approval and the success.
	deadline = time.Now().Add(10 * time.Second)
	for len(rc.Requests()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out, _, err = slipway(t, "", "notify", "log", "gate")
	if err != nil || !strings.Contains(out, "approval.needed") || !strings.Contains(out, "run.succeeded") || !strings.Contains(out, "delivered") {
		t.Fatalf("notify log: %q %v", out, err)
	}
	if _, _, err := slipway(t, "", "notify", "rm", "gate", "chat"); err != nil {
		t.Fatalf("notify rm: %v", err)
	}
}
