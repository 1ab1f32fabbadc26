package notify

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/notify/notifytest"
	"github.com/slipway-dev/slipway/internal/store"
)

// syncBuffer is a log destination the delivery goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFailedDeliveriesHideChannelCredentials: a Slack URL's path, and a
// webhook URL's user info and query, are credentials; neither the
// delivery's last error, nor the log, nor the channel's target shows them,
// though Go's HTTP client puts the whole URL in its errors.
func TestFailedDeliveriesHideChannelCredentials(t *testing.T) {
	var logs syncBuffer
	n, db := newNotifierLog(t, slog.New(slog.NewTextHandler(&logs, nil)))
	failing := notifytest.NewReceiver(t, http.StatusInternalServerError)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	redirect := httptest.NewServer(http.RedirectHandler(dead+"/moved/redirect-token-9?sig=redirect-sig-9", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)

	cases := []struct {
		channel, typ, url string
		secrets           []string
		wantErr           string // what the error still says
	}{
		{"slack-500", TypeSlack, failing.URL + "/services/T1/B2/slack-token-500", []string{"slack-token-500", "/services/T1"}, "500"},
		{"slack-dead", TypeSlack, dead + "/services/T1/B2/slack-token-dead", []string{"slack-token-dead", "/services/T1"}, "refused"},
		{"hook-500", TypeWebhook, strings.Replace(failing.URL, "://", "://hook-user:hook-pass-500@", 1) + "/in?token=hook-token-500",
			[]string{"hook-pass-500", "hook-token-500"}, "500"},
		{"hook-dead", TypeWebhook, strings.Replace(dead, "://", "://hook-user:hook-pass-dead@", 1) + "/in?token=hook-token-dead",
			[]string{"hook-pass-dead", "hook-token-dead"}, "refused"},
		{"hook-redirect", TypeWebhook, redirect.URL + "/r/first-path-token", []string{"first-path-token", "redirect-token-9", "redirect-sig-9"}, "refused"},
	}
	for _, c := range cases {
		addChannel(t, n, c.channel, c.typ, nil, Settings{URL: c.url, Secret: "signing-key"})
	}
	n.Notify(context.Background(), Event{Kind: RunFailed, App: "shop", Title: "Run 9 failed"})
	ds := waitDeliveries(t, db, len(cases))
	byChannel := map[string]store.Delivery{}
	for _, d := range ds {
		byChannel[d.Channel] = d
	}
	chans, err := db.ListChannels(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for _, ch := range chans {
		targets[ch.Name] = ch.Target
	}
	for _, c := range cases {
		t.Run(c.channel, func(t *testing.T) {
			d := byChannel[c.channel]
			if d.State != store.DeliveryFailed || !strings.Contains(d.LastError, c.wantErr) {
				t.Fatalf("delivery %+v, want failed with %q", d, c.wantErr)
			}
			for _, s := range c.secrets {
				if strings.Contains(d.LastError, s) {
					t.Errorf("last error shows %q: %s", s, d.LastError)
				}
				if strings.Contains(targets[c.channel], s) {
					t.Errorf("target shows %q: %s", s, targets[c.channel])
				}
				if strings.Contains(logs.String(), s) {
					t.Errorf("log shows %q", s)
				}
			}
		})
	}
}

func TestTarget(t *testing.T) {
	for _, c := range []struct {
		typ  string
		s    Settings
		want string
	}{
		{TypeSlack, Settings{URL: "https://hooks.slack.com/services/T1/B2/XXXX"}, "https://hooks.slack.com/…"},
		{TypeWebhook, Settings{URL: "https://user:pw@ci.example:8443/in?token=t#frag"}, "https://ci.example:8443/…"},
		{TypeWebhook, Settings{URL: "https://ci.example"}, "https://ci.example"},
		{TypeWebhook, Settings{URL: "https://ci.example/?token=t"}, "https://ci.example/…"},
		{TypeEmail, Settings{Host: "smtp.example", Port: 587, Username: "u", Password: "p", To: []string{"a@b.c"}}, "smtp://smtp.example:587 → a@b.c"},
	} {
		if got := Target(c.typ, c.s); got != c.want {
			t.Errorf("Target(%s, %+v) = %q, want %q", c.typ, c.s, got, c.want)
		}
	}
}
