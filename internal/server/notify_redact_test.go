package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/notify/notifytest"
)

// lockedBuffer is a log destination for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSlackURLNeverShown: a Slack webhook URL's path is its credential. A
// delivery to one that answers 500, and to one on a closed port, fails
// without its path in the API's channel list, the PUT answer, the
// deliveries' last_error, the web UI or the log.
func TestSlackURLNeverShown(t *testing.T) {
	var logs lockedBuffer
	e := newEnvWith(t, Config{DataDir: t.TempDir(), NotifyBackoff: []time.Duration{20 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	e.createApp("shop")
	failing := notifytest.NewReceiver(t, http.StatusInternalServerError)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()

	secrets := []string{"/services/", "slack-token-500", "slack-token-dead"}
	var shown []string
	for name, u := range map[string]string{
		"slack-500":  failing.URL + "/services/T1/B2/slack-token-500",
		"slack-dead": dead + "/services/T1/B2/slack-token-dead",
	} {
		code, body := e.call("PUT", "/api/v1/apps/shop/channels/"+name, e.Admin, map[string]any{"type": "slack", "settings": map[string]any{"url": u}})
		if code != http.StatusOK {
			t.Fatalf("put %s: %d %v", name, code, body)
		}
		raw, _ := json.Marshal(body)
		shown = append(shown, "PUT: "+string(raw))
	}
	_, list := e.call("GET", "/api/v1/apps/shop/channels", e.Admin, nil)
	raw, _ := json.Marshal(list)
	shown = append(shown, "channels: "+string(raw))

	e.srv.notify.Notify(context.Background(), notify.Event{Kind: notify.RunFailed, App: "shop", Title: "Run 1 failed"})
	ds := e.deliveries("shop", 2)
	for _, d := range ds {
		if d.State != "failed" || d.LastError == "" {
			t.Fatalf("delivery %+v, want failed with an error", d)
		}
	}
	_, body := e.call("GET", "/api/v1/apps/shop/notifications", e.Admin, nil)
	raw, _ = json.Marshal(body)
	shown = append(shown, "deliveries: "+string(raw))
	for _, want := range []string{"answered 500", "refused"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("deliveries do not say %q: %s", want, raw)
		}
	}

	c, _ := e.signin(e.Admin)
	resp, err := c.Get(e.URL + "/notifications")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "slack-dead") {
		t.Fatalf("notifications page: %d %s", resp.StatusCode, page)
	}
	shown = append(shown, "UI: "+string(page), "log: "+logs.String())

	for _, where := range shown {
		for _, s := range secrets {
			if strings.Contains(where, s) {
				t.Errorf("%q shown in %.400s", s, where)
			}
		}
	}
}
