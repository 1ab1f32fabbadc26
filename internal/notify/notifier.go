package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/secret/redact"
	"github.com/slipway-dev/slipway/internal/store"
)

// Event is one thing worth telling people about.
type Event struct {
	Kind  string `json:"event"`
	App   string `json:"app"`
	Title string `json:"title"`
	Text  string `json:"text"`
	// URL links to where a person can look (a run page, a staging URL);
	// Path is the same on this server's web UI, made absolute with BaseURL.
	URL  string `json:"url,omitempty"`
	Path string `json:"-"`
	// Fields are details such as run, commit, stage, environment.
	Fields map[string]string `json:"fields,omitempty"`
	At     time.Time         `json:"at"`
	// Channels, when set, limits the notice to these channels (an approval
	// action's own list) instead of every channel subscribed to the kind.
	Channels []string `json:"-"`
}

// DefaultBackoff is the wait before each retry of a failed delivery.
var DefaultBackoff = []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second, 2 * time.Minute}

// Notifier queues events per channel and delivers them in the background.
type Notifier struct {
	Store store.NotifyStore
	Keys  *secret.Keyring
	Log   *slog.Logger
	// Backoff is the wait before each retry; attempts = len(Backoff) + 1.
	Backoff []time.Duration
	// AttemptTimeout bounds one delivery attempt.
	AttemptTimeout time.Duration
	// BaseURL is where people reach the server, for links.
	BaseURL func() string

	client *http.Client
	wake   chan struct{}
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// SealSettings encrypts a channel's settings for the store.
func (n *Notifier) SealSettings(s Settings) []byte {
	b, _ := json.Marshal(s)
	return n.Keys.Seal(b)
}

// Notify queues the event for its channels. It never fails the caller: a
// problem is logged, because a notice must not block a pipeline.
func (n *Notifier) Notify(ctx context.Context, ev Event) {
	if n == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	if ev.URL == "" && ev.Path != "" {
		ev.URL = n.Link(ev.Path)
	}
	ctx = context.WithoutCancel(ctx)
	chans, err := n.Store.ListChannels(ctx, ev.App)
	if err != nil {
		n.Log.Error("list notification channels", "app", ev.App, "err", err)
		return
	}
	payload, _ := json.Marshal(ev)
	var ds []store.Delivery
	for _, c := range chans {
		if len(ev.Channels) > 0 {
			if !slices.Contains(ev.Channels, c.Name) {
				continue
			}
		} else if !slices.Contains(c.Events, ev.Kind) {
			continue
		}
		ds = append(ds, store.Delivery{App: ev.App, Channel: c.Name, Event: ev.Kind, Payload: string(payload)})
	}
	if len(ds) == 0 {
		return
	}
	if err := n.Store.EnqueueDeliveries(ctx, ds); err != nil {
		n.Log.Error("queue notifications", "app", ev.App, "event", ev.Kind, "err", err)
		return
	}
	n.Wake()
}

// Link makes a path of the web UI absolute (nil-safe).
func (n *Notifier) Link(path string) string {
	if n == nil || n.BaseURL == nil {
		return path
	}
	return n.BaseURL() + path
}

// Wake makes the sender look at the queue now.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Start delivers queued notices (including those a previous process left)
// until Close.
func (n *Notifier) Start(ctx context.Context) {
	if n.Backoff == nil {
		n.Backoff = DefaultBackoff
	}
	if n.AttemptTimeout == 0 {
		n.AttemptTimeout = 15 * time.Second
	}
	n.client = &http.Client{Timeout: n.AttemptTimeout}
	n.wake = make(chan struct{}, 1)
	ctx, n.stop = context.WithCancel(ctx)
	n.wg.Add(1)
	go n.loop(ctx)
}

// Close stops delivering once the attempts in flight have ended; what is
// still queued goes out after the next start.
func (n *Notifier) Close() {
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
}

func (n *Notifier) loop(ctx context.Context) {
	defer n.wg.Done()
	const batch = 20
	for {
		due, err := n.Store.DueDeliveries(ctx, time.Now().UTC(), batch)
		if err != nil && ctx.Err() == nil {
			n.Log.Error("read notification queue", "err", err)
		}
		var wg sync.WaitGroup
		for _, d := range due {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.attempt(ctx, d)
			}()
		}
		wg.Wait()
		if len(due) == batch {
			continue // more may be due already
		}
		// Sleep until the next retry is due; Notify wakes the loop for new ones.
		wait := time.Minute
		if next, ok, err := n.Store.NextDeliveryAt(ctx); err == nil && ok {
			wait = min(max(time.Until(next), 0), wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-n.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// attempt makes one delivery attempt and records its outcome. A stop does
// not cut it short (send is bounded by AttemptTimeout): a send cut off
// after the receiver had it, but before its outcome was recorded, would go
// out again after the next start.
func (n *Notifier) attempt(ctx context.Context, d store.Delivery) {
	ctx = context.WithoutCancel(ctx)
	err := n.send(ctx, d)
	d.Attempts++
	at := time.Now().UTC()
	switch {
	case err == nil:
		d.State, d.LastError, d.EndedAt = store.DeliveryDelivered, "", &at
	case errors.Is(err, errNoChannel) || d.Attempts > len(n.Backoff):
		d.State, d.LastError, d.EndedAt = store.DeliveryFailed, err.Error(), &at
		n.Log.Warn("notification not delivered", "app", d.App, "channel", d.Channel, "event", d.Event, "attempts", d.Attempts, "err", err)
	default:
		d.LastError, d.NextAt = err.Error(), at.Add(n.Backoff[d.Attempts-1])
	}
	if err := n.Store.UpdateDelivery(ctx, d); err != nil {
		n.Log.Error("record notification delivery", "delivery", d.ID, "err", err)
	}
}

// send makes one delivery attempt. Its error is stored and logged, so once
// the channel's settings are open it comes back redacted.
func (n *Notifier) send(ctx context.Context, d store.Delivery) (err error) {
	c, sealed, err := n.Store.SealedChannel(ctx, d.App, d.Channel)
	if errors.Is(err, store.ErrNotFound) {
		return errNoChannel
	}
	if err != nil {
		return err
	}
	plain, err := n.Keys.Open(sealed)
	if err != nil {
		return err
	}
	var s Settings
	if err := json.Unmarshal(plain, &s); err != nil {
		return fmt.Errorf("channel settings: %w", err)
	}
	defer func() {
		if err != nil {
			err = hideCredentials(err, s)
		}
	}()
	var ev Event
	if err := json.Unmarshal([]byte(d.Payload), &ev); err != nil {
		return fmt.Errorf("queued event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.AttemptTimeout)
	defer cancel()
	switch c.Type {
	case TypeSlack:
		return n.post(ctx, s.URL, slackBody(ev), nil)
	case TypeWebhook:
		body, _ := json.Marshal(struct {
			Delivery int64 `json:"delivery"`
			Event
		}{d.ID, ev})
		mac := hmac.New(sha256.New, []byte(s.Secret))
		mac.Write(body)
		return n.post(ctx, s.URL, body, map[string]string{
			"X-Slipway-Event":         ev.Kind,
			"X-Slipway-Delivery":      strconv.FormatInt(d.ID, 10),
			"X-Slipway-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
		})
	case TypeEmail:
		return sendMail(ctx, s, ev)
	}
	return fmt.Errorf("unknown channel type %q", c.Type)
}

func (n *Notifier) post(ctx context.Context, target string, body []byte, headers map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return withoutURL(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Slipway-Notifier")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return withoutURL(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s answered %s", redact.URL(target), resp.Status)
	}
	return nil
}

// withoutURL replaces the URL Go's HTTP client quotes in its errors (a
// channel's URL, or where it redirected to) with its redacted form.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %q: %w", ue.Op, redact.URL(ue.URL), ue.Err)
	}
	return err
}

// redactedError is a delivery error as stored and logged: its text hides
// the channel's credentials. It does not unwrap, as the error it replaces
// may quote them.
type redactedError string

func (e redactedError) Error() string { return string(e) }

// hideCredentials hides the channel's credentials in err's text: any URL
// becomes scheme://host/…, and the URL's parts, the webhook key and the
// SMTP password are masked wherever else they appear (an inner error
// quoting a Location header, a server echoing the request).
func hideCredentials(err error, s Settings) error {
	msg := redact.URLs(withoutURL(err).Error())
	if m := secret.Masker(credentials(s)); m != nil {
		msg = m.Replace(msg)
	}
	return redactedError(msg)
}

// credentials lists the values of s that no message may show.
func credentials(s Settings) []string {
	c := []string{s.URL, s.Secret, s.Password}
	u, err := url.Parse(s.URL)
	if err != nil || s.URL == "" {
		return c
	}
	c = append(c, u.Path, u.EscapedPath(), u.RawQuery, u.Fragment)
	if u.User != nil {
		c = append(c, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			c = append(c, p)
		}
	}
	for _, vs := range u.Query() {
		c = append(c, vs...)
	}
	return c
}

// fieldOrder puts the most useful details first in every rendering.
var fieldOrder = []string{"run", "stage", "action", "environment", "service", "deployment", "commit", "ref", "reason", "message"}

func sortedFields(f map[string]string) [][2]string {
	var out [][2]string
	for _, k := range fieldOrder {
		if v, ok := f[k]; ok && v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	var rest []string
	for k := range f {
		if !slices.Contains(fieldOrder, k) && f[k] != "" {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		out = append(out, [2]string{k, f[k]})
	}
	return out
}

// slackBody renders an incoming-webhook message: text for notifications
// and clients without blocks, blocks for the formatted view.
func slackBody(ev Event) []byte {
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type   string `json:"type"`
		Text   *text  `json:"text,omitempty"`
		Fields []text `json:"fields,omitempty"`
	}
	blocks := []block{{Type: "header", Text: &text{"plain_text", ev.Title}}}
	if ev.Text != "" {
		blocks = append(blocks, block{Type: "section", Text: &text{"mrkdwn", ev.Text}})
	}
	fields := []text{{"mrkdwn", "*app*\n" + ev.App}}
	for _, f := range sortedFields(ev.Fields) {
		fields = append(fields, text{"mrkdwn", "*" + f[0] + "*\n" + f[1]})
	}
	blocks = append(blocks, block{Type: "section", Fields: fields[:min(len(fields), 10)]})
	summary := ev.Title
	if ev.URL != "" {
		blocks = append(blocks, block{Type: "section", Text: &text{"mrkdwn", "<" + ev.URL + "|Open in Slipway>"}})
		summary += " " + ev.URL
	}
	b, _ := json.Marshal(map[string]any{"text": summary, "blocks": blocks})
	return b
}

func plainText(ev Event) string {
	var b strings.Builder
	b.WriteString(ev.Title + "\n\n")
	if ev.Text != "" {
		b.WriteString(ev.Text + "\n\n")
	}
	b.WriteString("app: " + ev.App + "\n")
	for _, f := range sortedFields(ev.Fields) {
		b.WriteString(f[0] + ": " + f[1] + "\n")
	}
	if ev.URL != "" {
		b.WriteString("\n" + ev.URL + "\n")
	}
	return b.String()
}

func sendMail(ctx context.Context, s Settings, ev Event) error {
	m := mail.NewMsg()
	if err := m.From(s.From); err != nil {
		return err
	}
	if err := m.To(s.To...); err != nil {
		return err
	}
	m.Subject("[slipway] " + ev.Title)
	m.SetBodyString(mail.TypeTextPlain, plainText(ev))
	opts := []mail.Option{mail.WithPort(s.Port), mail.WithTimeout(15 * time.Second),
		mail.WithTLSConfig(&tls.Config{ServerName: s.Host, InsecureSkipVerify: s.InsecureSkipVerify, MinVersion: tls.VersionTLS12})} //nolint:gosec // opt-in per channel for self-signed servers
	switch s.TLS {
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if s.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(s.Username), mail.WithPassword(s.Password))
	}
	c, err := mail.NewClient(s.Host, opts...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("smtp %s:%d: %w", s.Host, s.Port, err)
	}
	return nil
}
