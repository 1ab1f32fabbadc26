package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
	"github.com/slipway-dev/slipway/internal/store"
)

const gatePipeline = manualOnly + `stages:
  - name: Staging
    actions:
      - {name: deploy, type: invoke, command: "echo staged"}
  - name: Gate
    actions:
      - name: release
        type: approval
        message: "Check staging before production"
        notify: [team-slack, ci-hook, ops-mail, dead-hook]
  - name: Production
    actions:
      - {name: ship, type: invoke, command: "echo shipped"}
`

// waitRunState polls until the run reaches state.
func (e *testEnv) waitRunState(id int, state string, timeout time.Duration) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, r := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
		if r["state"] == state {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %d never reached %s: %v %v", id, state, r["state"], r["reason"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliveries returns the app's notification log once n deliveries ended.
func (e *testEnv) deliveries(app string, n int) []store.Delivery {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := e.call("GET", "/api/v1/apps/"+app+"/notifications", e.Admin, nil)
		raw, _ := json.Marshal(body["items"])
		var ds []store.Delivery
		_ = json.Unmarshal(raw, &ds)
		done := 0
		for _, d := range ds {
			if d.State != store.DeliveryPending {
				done++
			}
		}
		if done >= n {
			return ds
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("only %d of %d deliveries ended: %+v", done, n, ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestIntegrationApprovalsAndNotifications(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, NotifyBackoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}}
	e := newEnvWith(t, cfg)
	e.createApp("gate")
	slack := notifytest.NewReceiver(t, 0)
	hook := notifytest.NewReceiver(t, 0)
	mailer := notifytest.NewSMTP(t, "alerts", "smtp-pass-9")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()

	viewer := e.token("viewer", "viewer")
	deployer := e.token("release-manager", "deployer")
	channel := func(name string, body map[string]any) {
		t.Helper()
		if code, resp := e.call("PUT", "/api/v1/apps/gate/channels/"+name, e.Admin, body); code != 200 {
			t.Fatalf("channel %s: %d %v", name, code, resp)
		}
	}
	if code, _ := e.call("PUT", "/api/v1/apps/gate/channels/x", viewer, map[string]any{"type": "slack", "settings": map[string]any{"url": slack.URL}}); code != 403 {
		t.Fatalf("viewer added a channel: %d", code)
	}
	if code, body := e.call("PUT", "/api/v1/apps/gate/channels/x", e.Admin, map[string]any{"type": "email", "settings": map[string]any{"host": "h", "from": "nobody"}}); code != 400 || errorField(body, "field") != "settings.from" {
		t.Fatalf("bad email channel: %d %v", code, body)
	}
	channel("team-slack", map[string]any{"type": "slack", "settings": map[string]any{"url": slack.URL + "/services/T1/B2/slack-token-77"}})
	channel("ci-hook", map[string]any{"type": "webhook", "settings": map[string]any{"url": hook.URL, "secret": "hook-key-55"}})
	channel("ops-mail", map[string]any{"type": "email", "events": []string{"approval.needed"}, "settings": map[string]any{"host": mailer.Host, "port": mailer.Port,
		"username": "alerts", "password": "smtp-pass-9", "from": "slipway@example.test", "to": []string{"ops@example.test"}, "insecure_skip_verify": true}})
	channel("dead-hook", map[string]any{"type": "webhook", "events": []string{"approval.needed"}, "settings": map[string]any{"url": dead, "secret": "k"}})
	_, list := e.call("GET", "/api/v1/apps/gate/channels", viewer, nil)
	if raw, _ := json.Marshal(list); strings.Contains(string(raw), "slack-token-77") || strings.Contains(string(raw), "smtp-pass-9") || strings.Contains(string(raw), "hook-key-55") {
		t.Fatalf("channel list shows credentials: %s", raw)
	}

	sha := e.pushPipeline("gate", "main", map[string]string{"slipway.yaml": gatePipeline})
	id := e.startRun("gate", "main")
	run := e.waitRunState(id, "waiting", 20*time.Second)
	if a := actionsOf(run)["Gate/release"]; a["state"] != "waiting" || !strings.Contains(run["reason"].(string), "waiting for approval at Gate/release") {
		t.Fatalf("waiting run: %v %v", a, run["reason"])
	}

	// The notice reaches every channel the action names; the dead one fails after its retries.
	ds := e.deliveries("gate", 4)
	byChannel := map[string]store.Delivery{}
	for _, d := range ds {
		byChannel[d.Channel] = d
	}
	for _, c := range []string{"team-slack", "ci-hook", "ops-mail"} {
		if d := byChannel[c]; d.State != store.DeliveryDelivered || d.Event != "approval.needed" {
			t.Fatalf("%s: %+v", c, d)
		}
	}
	if d := byChannel["dead-hook"]; d.State != store.DeliveryFailed || d.Attempts != 3 || d.LastError == "" {
		t.Fatalf("unreachable endpoint: %+v", d)
	}
	runURL := fmt.Sprintf("%s/runs/%d", e.URL, id)
	if b := string(slack.Requests()[0].Body); !strings.Contains(b, `"text":"gate: run 1 waits for approval at Gate `+runURL) || !strings.Contains(b, "Check staging before production") || !strings.Contains(b, `"blocks"`) {
		t.Fatalf("slack payload: %s", b)
	}
	hr := hook.Requests()[0]
	mac := hmac.New(sha256.New, []byte("hook-key-55"))
	mac.Write(hr.Body)
	if hr.Header.Get("X-Slipway-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Fatal("webhook signature does not verify")
	}
	var payload struct {
		Event, App, URL string
		Fields          map[string]string
	}
	_ = json.Unmarshal(hr.Body, &payload)
	if payload.Event != "approval.needed" || payload.App != "gate" || payload.URL != runURL || payload.Fields["commit"] != sha[:12] || payload.Fields["run"] != fmt.Sprint(id) {
		t.Fatalf("webhook payload: %s", hr.Body)
	}
	if m := mailer.Mails(); len(m) != 1 || !m[0].TLS || !strings.Contains(m[0].Data, "Check staging before production") || !strings.Contains(m[0].Data, runURL) {
		t.Fatalf("mail: %+v", m)
	}

	// Decisions: viewers may not, deployers may, once.
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), viewer, nil); code != 403 {
		t.Fatalf("viewer approved: %d", code)
	}
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), deployer, map[string]string{"comment": "staging looks good"}); code != 200 {
		t.Fatalf("approve: %d %v", code, body)
	}
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), deployer, nil); code != 409 || errorField(body, "code") != "not_waiting" {
		t.Fatalf("second approve: %d %v", code, body)
	}
	run = e.waitRun(id, 20*time.Second)
	if run["state"] != "succeeded" || actionsOf(run)["Production/ship"]["state"] != "succeeded" {
		t.Fatalf("approved run: %v %v", run["state"], run["reason"])
	}
	aps := run["approvals"].([]any)
	if len(aps) != 1 {
		t.Fatalf("approvals: %v", aps)
	}
	if ap := aps[0].(map[string]any); ap["state"] != "approved" || ap["decided_by"] != "release-manager" || ap["comment"] != "staging looks good" || ap["decided_at"] == nil {
		t.Fatalf("audit record: %v", ap)
	}
	// run.succeeded goes to the channels subscribed to every event.
	deadline := time.Now().Add(10 * time.Second)
	for len(slack.Requests()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if r := slack.Requests(); len(r) != 2 || !strings.Contains(string(r[1].Body), "gate: run 1 succeeded") {
		t.Fatalf("slack after success: %d requests", len(r))
	}
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/reject", id), deployer, map[string]string{"comment": "late"}); code != 409 {
		t.Fatalf("reject an ended run: %d", code)
	}

	// Rejection needs a comment and fails the stage.
	id = e.startRun("gate", "main")
	e.waitRunState(id, "waiting", 20*time.Second)
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/reject", id), deployer, map[string]string{"comment": " "}); code != 400 || errorField(body, "field") != "comment" {
		t.Fatalf("reject without comment: %d %v", code, body)
	}
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/reject", id), deployer, map[string]string{"comment": "error rate too high"}); code != 200 {
		t.Fatalf("reject: %d", code)
	}
	run = e.waitRun(id, 20*time.Second)
	if run["state"] != "failed" || !strings.Contains(run["reason"].(string), "stage Gate failed: action release: rejected by release-manager: error rate too high") ||
		actionsOf(run)["Production/ship"]["state"] != "cancelled" {
		t.Fatalf("rejected run: %v %v", run["state"], run["reason"])
	}

	// Timeout: the deadline passes (moved into the past in the database, as
	// the shortest real timeout is five minutes) and the action fails.
	id = e.startRun("gate", "main")
	e.waitRunState(id, "waiting", 20*time.Second)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "slipway.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE approvals SET deadline = ? WHERE run_id = ?`, time.Now().Add(-time.Second).UnixMicro(), id); err != nil {
		t.Fatal(err)
	}
	db.Close()
	run = e.waitRun(id, 20*time.Second)
	if run["state"] != "failed" || !strings.Contains(run["reason"].(string), "approval timed out") {
		t.Fatalf("timed-out run: %v %v", run["state"], run["reason"])
	}
	if ap := run["approvals"].([]any)[0].(map[string]any); ap["state"] != "expired" {
		t.Fatalf("expired approval: %v", ap)
	}

	// Cancelling a waiting run ends it and closes its approval.
	id = e.startRun("gate", "main")
	e.waitRunState(id, "waiting", 20*time.Second)
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/cancel", id), deployer, nil); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	run = e.waitRun(id, 20*time.Second)
	if ap := run["approvals"].([]any)[0].(map[string]any); run["state"] != "cancelled" || ap["state"] != "cancelled" {
		t.Fatalf("cancelled while waiting: run %v, approval %v", run["state"], ap)
	}
	if code, _ := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), deployer, nil); code != 409 {
		t.Fatalf("approve a cancelled run: %d", code)
	}

	// A restart keeps the wait: the same approval, no second notice, and it can still be approved.
	id = e.startRun("gate", "main")
	e.waitRunState(id, "waiting", 20*time.Second)
	noticesOf := func(id int) int {
		n := 0
		for _, m := range mailer.Mails() {
			if strings.Contains(m.Data, fmt.Sprintf("/runs/%d", id)) {
				n++
			}
		}
		return n
	}
	// The notice is sent after the run starts waiting: let it arrive.
	for deadline := time.Now().Add(20 * time.Second); noticesOf(id) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no approval notice for the run that waits")
		}
	}
	e.stop()
	e = newEnvWith(t, cfg)
	run = e.waitRunState(id, "waiting", 5*time.Second)
	if a := actionsOf(run)["Gate/release"]; a["state"] != "waiting" {
		t.Fatalf("after restart: %v", a)
	}
	if code, body := e.call("POST", fmt.Sprintf("/api/v1/runs/%d/approve", id), e.Admin, nil); code != 200 {
		t.Fatalf("approve after restart: %d %v", code, body)
	}
	if run = e.waitRun(id, 20*time.Second); run["state"] != "succeeded" {
		t.Fatalf("resumed run: %v %v", run["state"], run["reason"])
	}
	if len(run["approvals"].([]any)) != 1 || noticesOf(id) != 1 {
		t.Fatalf("restart repeated the approval or its notice: %v, %d notices", run["approvals"], noticesOf(id))
	}

	// Bad input.
	if code, body := e.call("POST", "/api/v1/runs/999/approve", e.Admin, nil); code != 404 {
		t.Fatalf("approve unknown run: %d %v", code, body)
	}
	e.pushPipeline("gate", "bad", map[string]string{"slipway.yaml": manualOnly + "stages:\n  - name: G\n    actions:\n      - {name: a, type: approval, timeout: 1m}\n"})
	if code, body := e.call("POST", "/api/v1/apps/gate/runs", e.Admin, map[string]string{"ref": "bad"}); code != 422 || !strings.Contains(errorField(body, "message"), "between 5m and 1440h") {
		t.Fatalf("approval timeout of 1m: %d %v", code, body)
	}
}
