package source

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/slipway-dev/slipway/internal/store"
)

// MaxWebhookBytes is GitHub's own cap on a webhook payload.
const MaxWebhookBytes = 25 << 20

// HTTPError is a refusal with the status the caller should answer.
type HTTPError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *HTTPError) Error() string { return e.Message }

// Delivery is one GitHub webhook request.
type Delivery struct {
	App       string
	Event     string // X-GitHub-Event
	ID        string // X-GitHub-Delivery
	Signature string // X-Hub-Signature-256
	Body      []byte
}

// DeliveryResult tells the caller what was done.
type DeliveryResult struct {
	Status  int              `json:"-"`
	Message string           `json:"message"`
	Event   *store.PushEvent `json:"event,omitempty"`
}

// githubPush is the part of GitHub's push payload Slipway reads.
type githubPush struct {
	Ref     string `json:"ref"`
	Before  string `json:"before"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Pusher  struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Commits []struct {
		Added    []string `json:"added"`
		Removed  []string `json:"removed"`
		Modified []string `json:"modified"`
	} `json:"commits"`
}

// VerifySignature checks X-Hub-Signature-256 in constant time.
func VerifySignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// HandleGitHub verifies and processes a webhook delivery.
func (s *Service) HandleGitHub(ctx context.Context, d Delivery) (DeliveryResult, error) {
	app, err := s.Store.GetApp(ctx, d.App)
	if err != nil {
		return DeliveryResult{}, err
	}
	sealed, err := s.Store.AppWebhookSecret(ctx, d.App)
	if err != nil {
		return DeliveryResult{}, err
	}
	if len(sealed) == 0 {
		return DeliveryResult{}, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated",
			Message: "app " + d.App + " has no webhook secret; set one with: slipway app set-source " + d.App + " --url URL --webhook-secret-stdin"}
	}
	key, err := s.Keys.Open(sealed)
	if err != nil {
		return DeliveryResult{}, fmt.Errorf("open webhook secret: %w", err)
	}
	if d.Signature == "" {
		return DeliveryResult{}, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Field: "X-Hub-Signature-256", Message: "missing X-Hub-Signature-256 header"}
	}
	if !VerifySignature(key, d.Body, d.Signature) {
		return DeliveryResult{}, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Field: "X-Hub-Signature-256", Message: "X-Hub-Signature-256 does not match the payload signed with the app's webhook secret"}
	}
	switch d.Event {
	case "ping":
		return DeliveryResult{Status: http.StatusOK, Message: "pong"}, nil
	case "push":
	case "":
		return DeliveryResult{}, &HTTPError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: "X-GitHub-Event", Message: "missing X-GitHub-Event header"}
	default:
		return DeliveryResult{Status: http.StatusAccepted, Message: "event " + d.Event + " ignored; Slipway acts on push and ping"}, nil
	}
	if d.ID == "" {
		return DeliveryResult{}, &HTTPError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: "X-GitHub-Delivery", Message: "missing X-GitHub-Delivery header"}
	}
	replayed := &HTTPError{Status: http.StatusConflict, Code: "duplicate_delivery", Field: "X-GitHub-Delivery", Message: "delivery " + d.ID + " was already processed; a delivery is accepted once"}
	if seen, err := s.Store.DeliverySeen(ctx, d.ID); err != nil {
		return DeliveryResult{}, err
	} else if seen {
		return DeliveryResult{}, replayed
	}
	var p githubPush
	if err := json.Unmarshal(d.Body, &p); err != nil {
		return DeliveryResult{}, &HTTPError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: "push payload is not valid JSON: " + err.Error()}
	}
	if err := validatePush(p); err != nil {
		return DeliveryResult{}, err
	}
	pusher := p.Pusher.Name
	if pusher == "" {
		pusher = "github"
	}
	up := RefUpdate{Ref: p.Ref, Old: p.Before, New: p.After}
	var changed []string
	for _, c := range p.Commits {
		changed = append(changed, c.Added...)
		changed = append(changed, c.Removed...)
		changed = append(changed, c.Modified...)
	}
	if changed == nil {
		changed = []string{}
	}

	unlock := s.lock(d.App)
	defer unlock()
	if !p.Deleted && up.New != ZeroSHA {
		if err := s.fetch(ctx, app, up); err != nil {
			ev, recErr := s.Store.RecordPush(ctx, store.PushEvent{App: d.App, Source: "github", Ref: up.Ref, OldSHA: up.Old, NewSHA: up.New,
				PushedBy: pusher, DeliveryID: d.ID, Outcome: store.OutcomeError, Reason: err.Error()}, nil)
			if errors.Is(recErr, store.ErrConflict) {
				return DeliveryResult{}, replayed
			}
			if recErr != nil {
				return DeliveryResult{}, recErr
			}
			return DeliveryResult{}, &HTTPError{Status: http.StatusUnprocessableEntity, Code: "fetch_failed", Message: fmt.Sprintf("event %d: %v", ev.ID, err)}
		}
	} else {
		up.New = ZeroSHA
	}
	ev, err := s.recordPush(ctx, d.App, "github", pusher, d.ID, up, changed)
	if errors.Is(err, store.ErrConflict) {
		return DeliveryResult{}, replayed
	}
	if err != nil {
		return DeliveryResult{}, err
	}
	msg := "push recorded: " + ev.Outcome
	if ev.RunID != 0 {
		msg = fmt.Sprintf("push recorded: run %d queued", ev.RunID)
	}
	return DeliveryResult{Status: http.StatusCreated, Message: msg, Event: &ev}, nil
}

func validatePush(p githubPush) error {
	bad := func(field, msg string) error {
		return &HTTPError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: field, Message: msg}
	}
	if !strings.HasPrefix(p.Ref, "refs/heads/") && !strings.HasPrefix(p.Ref, "refs/tags/") {
		return bad("ref", fmt.Sprintf("ref %q must start with refs/heads/ or refs/tags/", p.Ref))
	}
	if strings.Contains(p.Ref, "..") || strings.ContainsAny(p.Ref, " ~^:?*[\\") {
		return bad("ref", fmt.Sprintf("ref %q is not a valid git ref name", p.Ref))
	}
	for field, sha := range map[string]string{"before": p.Before, "after": p.After} {
		if !isSHA(sha) {
			return bad(field, fmt.Sprintf("%s must be a 40-character commit SHA, got %q", field, sha))
		}
	}
	return nil
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// fetch brings the pushed ref from the app's source URL into the hosted
// repository, then checks the announced commit is there.
func (s *Service) fetch(ctx context.Context, app store.App, up RefUpdate) error {
	if app.SourceURL == "" {
		return errors.New("app has no source URL to fetch from; set one with slipway app set-source")
	}
	if _, err := s.git(ctx, app.Name, "fetch", "--quiet", "--no-tags", "--force", "--", app.SourceURL, "+"+up.Ref+":"+up.Ref); err != nil {
		return fmt.Errorf("fetch %s from %s: %w", up.Ref, app.SourceURL, err)
	}
	if _, err := s.git(ctx, app.Name, "cat-file", "-e", up.New+"^{commit}"); err != nil {
		return fmt.Errorf("commit %s announced by the webhook is not in %s after fetching %s", short(up.New), app.SourceURL, up.Ref)
	}
	return nil
}

// ValidSourceURL refuses URLs git would read as an option.
func ValidSourceURL(u string) error {
	if u == "" || strings.HasPrefix(u, "-") || strings.ContainsAny(u, "\n\r") {
		return fmt.Errorf("source URL %q is not a git URL (https://…, ssh://…, file://… or a path)", u)
	}
	return nil
}
