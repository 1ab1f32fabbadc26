package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

func newNotifier(t *testing.T) (*Notifier, *store.DB) {
	t.Helper()
	return newNotifierLog(t, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newNotifierLog is newNotifier logging to log.
func newNotifierLog(t *testing.T, log *slog.Logger) (*Notifier, *store.DB) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateApp(ctx, store.App{Name: "shop", RegistryRepo: "shop"}); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := &Notifier{Store: db, Keys: keys, Log: log,
		Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}, AttemptTimeout: 2 * time.Second}
	n.Start(ctx)
	t.Cleanup(n.Close)
	return n, db
}

func addChannel(t *testing.T, n *Notifier, name, typ string, events []string, s Settings) {
	t.Helper()
	events, err := Validate(name, typ, events, &s)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.PutChannel(context.Background(), store.Channel{App: "shop", Name: name, Type: typ, Events: events, Target: Target(typ, s)}, n.SealSettings(s)); err != nil {
		t.Fatal(err)
	}
}

func waitDeliveries(t *testing.T, db *store.DB, n int) []store.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := db.ListDeliveries(context.Background(), "shop", store.Page{})
		if err != nil {
			t.Fatal(err)
		}
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
			t.Fatalf("only %d of %d deliveries ended: %+v", done, n, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeliveries(t *testing.T) {
	n, db := newNotifier(t)
	slack := notifytest.NewReceiver(t, 0)
	hook := notifytest.NewReceiver(t, 0)
	mailer := notifytest.NewSMTP(t, "alerts", "mail-pass")
	// A port nothing listens on: connections are refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	addChannel(t, n, "team-slack", TypeSlack, nil, Settings{URL: slack.URL + "/services/T0/B0/xyz"})
	addChannel(t, n, "ci-hook", TypeWebhook, []string{RunFailed}, Settings{URL: hook.URL, Secret: "hook-key"})
	addChannel(t, n, "ops-mail", TypeEmail, nil, Settings{Host: mailer.Host, Port: mailer.Port, Username: "alerts", Password: "mail-pass",
		From: "slipway@example.test", To: []string{"ops@example.test"}, InsecureSkipVerify: true})
	addChannel(t, n, "gone", TypeWebhook, nil, Settings{URL: dead, Secret: "k"})

	n.Notify(context.Background(), Event{Kind: ApprovalNeeded, App: "shop", Title: "Run 7 waits for approval", Text: "Check staging first",
		URL: "http://127.0.0.1:7070/runs/7", Fields: map[string]string{"run": "7", "commit": "abc123"}})
	ds := waitDeliveries(t, db, 3)

	states := map[string]store.Delivery{}
	for _, d := range ds {
		states[d.Channel] = d
	}
	if _, ok := states["ci-hook"]; ok {
		t.Fatal("the webhook channel subscribed to run.failed only but got approval.needed")
	}
	for _, c := range []string{"team-slack", "ops-mail"} {
		if states[c].State != store.DeliveryDelivered || states[c].Attempts != 1 {
			t.Fatalf("%s: %+v", c, states[c])
		}
	}
	if g := states["gone"]; g.State != store.DeliveryFailed || g.Attempts != 3 || !strings.Contains(g.LastError, "refused") {
		t.Fatalf("unreachable endpoint: %+v, want failed after 3 attempts", g)
	}

	reqs := slack.Requests()
	if len(reqs) != 1 {
		t.Fatalf("slack got %d requests", len(reqs))
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(reqs[0].Body, &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Text, "Run 7 waits for approval") || !strings.Contains(msg.Text, "/runs/7") || len(msg.Blocks) < 3 || msg.Blocks[0].Type != "header" {
		t.Fatalf("slack payload: %s", reqs[0].Body)
	}

	mails := mailer.Mails()
	if len(mails) != 1 || !mails[0].TLS || mails[0].User != "alerts" || mails[0].To[0] != "ops@example.test" ||
		!strings.Contains(mails[0].Data, "Subject: [slipway] Run 7 waits for approval") || !strings.Contains(mails[0].Data, "commit: abc123") {
		t.Fatalf("mail: %+v", mails)
	}

	// The webhook channel gets run.failed, signed.
	n.Notify(context.Background(), Event{Kind: RunFailed, App: "shop", Title: "Run 8 failed", Fields: map[string]string{"run": "8"}})
	deadline := time.Now().Add(5 * time.Second)
	for len(hook.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	hr := hook.Requests()
	if len(hr) != 1 {
		t.Fatalf("webhook got %d requests", len(hr))
	}
	mac := hmac.New(sha256.New, []byte("hook-key"))
	mac.Write(hr[0].Body)
	if got, want := hr[0].Header.Get("X-Slipway-Signature-256"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	var body map[string]any
	_ = json.Unmarshal(hr[0].Body, &body)
	if body["event"] != RunFailed || body["app"] != "shop" || hr[0].Header.Get("X-Slipway-Event") != RunFailed {
		t.Fatalf("webhook body %s", hr[0].Body)
	}
}

func TestEmailWrongPasswordFails(t *testing.T) {
	n, db := newNotifier(t)
	mailer := notifytest.NewSMTP(t, "alerts", "right")
	addChannel(t, n, "ops-mail", TypeEmail, nil, Settings{Host: mailer.Host, Port: mailer.Port, Username: "alerts", Password: "wrong",
		From: "slipway@example.test", To: []string{"ops@example.test"}, InsecureSkipVerify: true})
	n.Notify(context.Background(), Event{Kind: RunSucceeded, App: "shop", Title: "ok"})
	ds := waitDeliveries(t, db, 1)
	if ds[0].State != store.DeliveryFailed || len(mailer.Mails()) != 0 {
		t.Fatalf("%+v", ds[0])
	}
	// Without skipping verification the self-signed certificate is refused.
	addChannel(t, n, "strict", TypeEmail, nil, Settings{Host: mailer.Host, Port: mailer.Port, Username: "alerts", Password: "right",
		From: "slipway@example.test", To: []string{"ops@example.test"}})
	n.Notify(context.Background(), Event{Kind: RunSucceeded, App: "shop", Title: "ok", Channels: []string{"strict"}})
	ds = waitDeliveries(t, db, 2)
	if ds[0].Channel != "strict" || ds[0].State != store.DeliveryFailed || !strings.Contains(ds[0].LastError, "certificate") {
		t.Fatalf("%+v", ds[0])
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		events    []string
		s         Settings
		field     string
	}{
		{"Bad_Name", TypeSlack, nil, Settings{URL: "https://hooks.example/x"}, "name"},
		{"ok", "pager", nil, Settings{}, "type"},
		{"ok", TypeSlack, nil, Settings{URL: "ftp://x"}, "url"},
		{"ok", TypeSlack, []string{"run.exploded"}, Settings{URL: "https://x"}, "events"},
		{"ok", TypeWebhook, nil, Settings{URL: "https://x"}, "secret"},
		{"ok", TypeEmail, nil, Settings{From: "a@b.c", To: []string{"d@e.f"}}, "host"},
		{"ok", TypeEmail, nil, Settings{Host: "h", From: "nobody", To: []string{"d@e.f"}}, "from"},
		{"ok", TypeEmail, nil, Settings{Host: "h", From: "a@b.c"}, "to"},
		{"ok", TypeEmail, nil, Settings{Host: "h", From: "a@b.c", To: []string{"d@e.f"}, TLS: "ssl3"}, "tls"},
		{"ok", TypeEmail, nil, Settings{Host: "h", From: "a@b.c", To: []string{"d@e.f"}, Username: "u"}, "password"},
		{"ok", TypeEmail, nil, Settings{Host: "h", From: "a@b.c", To: []string{"d@e.f"}}, ""},
	} {
		_, err := Validate(tc.name, tc.typ, tc.events, &tc.s)
		var fe *FieldError
		if tc.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc, err)
			}
			continue
		}
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s %s: err = %v, want field %s", tc.name, tc.typ, err, tc.field)
		}
	}
}

// A notice queued by a process that stopped before delivering goes out
// after the next start.
func TestQueuedNoticeSurvivesRestart(t *testing.T) {
	n, db := newNotifier(t)
	n.Close() // stopped before anything was sent
	rc := notifytest.NewReceiver(t, 0)
	addChannel(t, n, "chat", TypeSlack, nil, Settings{URL: rc.URL})
	n.Notify(context.Background(), Event{Kind: RunFailed, App: "shop", Title: "queued while down"})
	if ds, _ := db.ListDeliveries(context.Background(), "shop", store.Page{}); len(ds) != 1 || ds[0].State != store.DeliveryPending || len(rc.Requests()) != 0 {
		t.Fatalf("before the restart: %+v", ds)
	}
	restarted := &Notifier{Store: db, Keys: n.Keys, Log: n.Log, Backoff: n.Backoff}
	restarted.Start(context.Background())
	defer restarted.Close()
	ds := waitDeliveries(t, db, 1)
	if ds[0].State != store.DeliveryDelivered || len(rc.Requests()) != 1 || !strings.Contains(string(rc.Requests()[0].Body), "queued while down") {
		t.Fatalf("after the restart: %+v", ds)
	}
}

// A stop waits for the delivery in flight and records it, so the next start
// does not send it again.
func TestCloseLetsADeliveryInFlightFinish(t *testing.T) {
	n, db := newNotifier(t)
	var hits atomic.Int32
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		once.Do(func() { close(arrived) })
		<-release
	}))
	defer slow.Close()
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	defer let() // also when the test fails: the handler must return for slow.Close
	addChannel(t, n, "chat", TypeSlack, nil, Settings{URL: slow.URL})
	n.Notify(context.Background(), Event{Kind: RunFailed, App: "shop", Title: "in flight at the stop"})
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery never reached the receiver")
	}
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a delivery was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	let()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the delivery ended")
	}
	if ds, _ := db.ListDeliveries(context.Background(), "shop", store.Page{}); len(ds) != 1 || ds[0].State != store.DeliveryDelivered {
		t.Fatalf("after the stop: %+v", ds)
	}
	restarted := &Notifier{Store: db, Keys: n.Keys, Log: n.Log, Backoff: n.Backoff}
	restarted.Start(context.Background())
	time.Sleep(300 * time.Millisecond) // a pass over the queue
	restarted.Close()
	if got := hits.Load(); got != 1 {
		t.Fatalf("the receiver got %d requests, want 1", got)
	}
}
