package source

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
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
	Repository struct {
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
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

// refusedMessage is the answer to every delivery that cannot be verified.
const refusedMessage = "X-Hub-Signature-256 does not verify: GitHub must sign the payload with the webhook secret of the app named in the URL; " +
	"check the URL and set the secret with: slipway app set-source APP --url URL --webhook-secret-stdin"

// decoyKey is what a delivery for an app without a secret (or no app at
// all) is checked against, so that it takes the time a real check takes.
var decoyKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// verify returns the app when d is signed with its webhook secret. An
// unknown app, an app without a secret and a missing or wrong signature
// all get one answer (same status, same body), so the endpoint cannot be
// used to learn which apps exist; the log says which it was.
func (s *Service) verify(ctx context.Context, d Delivery) (store.App, error) {
	refuse := func(why string) (store.App, error) {
		s.Log.Warn("webhook delivery refused", "app", d.App, "delivery", d.ID, "reason", why)
		return store.App{}, &HTTPError{Status: http.StatusUnauthorized, Code: "unauthenticated", Field: "X-Hub-Signature-256", Message: refusedMessage}
	}
	app, err := s.Store.GetApp(ctx, d.App)
	if errors.Is(err, store.ErrNotFound) {
		VerifySignature(decoyKey, d.Body, d.Signature)
		return refuse("no such app")
	}
	if err != nil {
		return app, err
	}
	sealed, err := s.Store.AppWebhookSecret(ctx, d.App)
	if err != nil {
		return app, err
	}
	if len(sealed) == 0 {
		VerifySignature(decoyKey, d.Body, d.Signature)
		return refuse("the app has no webhook secret")
	}
	key, err := s.Keys.Open(sealed)
	if err != nil {
		return app, fmt.Errorf("open webhook secret: %w", err)
	}
	if d.Signature == "" {
		return refuse("no X-Hub-Signature-256 header")
	}
	if !VerifySignature(key, d.Body, d.Signature) {
		return refuse("X-Hub-Signature-256 does not match")
	}
	return app, nil
}

// HandleGitHub verifies and processes a webhook delivery.
func (s *Service) HandleGitHub(ctx context.Context, d Delivery) (DeliveryResult, error) {
	app, err := s.verify(ctx, d)
	if err != nil {
		return DeliveryResult{}, err
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
	// GitHub signs the body, not the delivery id: the same signed push can
	// come again under a new id. It is acted on once: its digest is stored
	// with the event it made (a restart does not forget it), and refused
	// here before anything is fetched.
	digest := sha256.Sum256(d.Body)
	payloadReplayed := &HTTPError{Status: http.StatusConflict, Code: "duplicate_delivery",
		Message: fmt.Sprintf("this push payload (sha256 %x) was already accepted as another delivery; a push is acted on once", digest)}
	if seen, err := s.Store.PayloadAccepted(ctx, d.App, digest[:]); err != nil {
		return DeliveryResult{}, err
	} else if seen {
		return DeliveryResult{}, payloadReplayed
	}
	// conflict turns the store's refusal of a repeat into the answer.
	conflict := func(err error) error {
		var rp *store.ReplayedPayloadError
		if errors.As(err, &rp) {
			return payloadReplayed
		}
		if errors.Is(err, store.ErrConflict) {
			return replayed
		}
		return err
	}
	// record stores an event that starts no run; payload is the digest to
	// accept, nil to leave the payload deliverable again.
	record := func(outcome, reason string, payload []byte) (store.PushEvent, error) {
		ev, err := s.Store.RecordPush(ctx, store.PushEvent{App: d.App, Source: "github", Ref: up.Ref, OldSHA: up.Old, NewSHA: up.New,
			PushedBy: pusher, DeliveryID: d.ID, Outcome: outcome, Reason: reason, PayloadSHA256: payload}, nil)
		return ev, conflict(err)
	}
	if !p.Deleted && up.New != ZeroSHA {
		if err := s.fetch(ctx, app, up); err != nil {
			var moved *RefMovedError
			if errors.As(err, &moved) {
				// Not a failure: an old push; the one that moved the ref is built.
				ev, recErr := record(store.OutcomeFiltered, err.Error(), digest[:])
				if recErr != nil {
					return DeliveryResult{}, recErr
				}
				s.Log.Info("push", "app", d.App, "ref", up.Ref, "new", short(up.New), "by", pusher, "outcome", ev.Outcome, "reason", ev.Reason)
				return DeliveryResult{Status: http.StatusCreated, Message: "push recorded: " + ev.Outcome, Event: &ev}, nil
			}
			// Not accepted: once the source is fixed, GitHub's redelivery of
			// this payload is fetched again.
			ev, recErr := record(store.OutcomeError, err.Error(), nil)
			if recErr != nil {
				return DeliveryResult{}, recErr
			}
			return DeliveryResult{}, &HTTPError{Status: http.StatusUnprocessableEntity, Code: "fetch_failed", Message: fmt.Sprintf("event %d: %v", ev.ID, err)}
		}
	} else {
		up.New = ZeroSHA
	}
	if err := s.followDefaultBranch(ctx, d.App, p.Repository.DefaultBranch); err != nil {
		return DeliveryResult{}, err
	}
	ev, err := s.recordPush(ctx, d.App, "github", pusher, d.ID, digest[:], up, changed)
	if err != nil {
		return DeliveryResult{}, conflict(err)
	}
	msg := "push recorded: " + ev.Outcome
	if ev.RunID != 0 {
		msg = fmt.Sprintf("push recorded: run %d queued", ev.RunID)
	}
	return DeliveryResult{Status: http.StatusCreated, Message: msg, Event: &ev}, nil
}

// followDefaultBranch points the hosted repository's HEAD at the GitHub
// repository's default branch, as the signed payload names it, before
// the push's run is made: the default branch (DefaultBranch) is the one
// whose builds share the app's home and caches. Left at main, a branch
// named main on a repository whose default is master would build as the
// default branch, and master would restore what it saved.
func (s *Service) followDefaultBranch(ctx context.Context, app, branch string) error {
	if branch == "" {
		return nil // not GitHub's payload as it is sent: HEAD stays
	}
	ref := "refs/heads/" + branch
	if _, err := s.git(ctx, app, "check-ref-format", ref); err != nil || strings.HasPrefix(branch, "-") {
		return &HTTPError{Status: http.StatusBadRequest, Code: "invalid_argument", Field: "repository.default_branch",
			Message: fmt.Sprintf("default branch %q is not a valid branch name", branch)}
	}
	if cur, err := s.DefaultBranch(ctx, app); err == nil && cur == ref {
		return nil
	}
	if _, err := s.git(ctx, app, "symbolic-ref", "HEAD", ref); err != nil {
		return fmt.Errorf("follow the source's default branch %s: %w", branch, err)
	}
	s.Log.Info("default branch follows the source", "app", app, "ref", ref)
	return nil
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

// RefMovedError is a delivery whose ref no longer points, on the source,
// at the commit it announces: an out-of-date or replayed push.
type RefMovedError struct {
	Ref       string
	Announced string // the payload's "after"
	Current   string // what the ref points at on the source now
}

func (e *RefMovedError) Error() string {
	return fmt.Sprintf("%s points at %s on the source now, not at %s as this delivery says: the delivery is out of date or replayed, so it starts no run (the push that moved the ref starts its own)",
		e.Ref, short(e.Current), short(e.Announced))
}

// fetch brings the pushed ref from the app's source URL into the hosted
// repository, then checks the ref points at the announced commit: only
// what the source's ref points at now is built, never an older commit a
// replayed payload names. A moved ref is a *RefMovedError. The source's
// credentials go to git through its environment, and never appear in an
// error, which becomes an event's reason.
func (s *Service) fetch(ctx context.Context, app store.App, up RefUpdate) error {
	src, err := s.Store.GetAppSource(ctx, app.Name)
	if err != nil {
		return err
	}
	if src.URL == "" {
		return errors.New("app has no source URL to fetch from; set one with slipway app set-source")
	}
	from, creds, err := s.openSource(src)
	if err != nil {
		return err
	}
	env, err := creds.env(from)
	if err != nil {
		return fmt.Errorf("source URL %s: %w", from, err)
	}
	if _, err := s.gitEnv(ctx, app.Name, env, "fetch", "--quiet", "--no-tags", "--force", "--", from, "+"+up.Ref+":"+up.Ref); err != nil {
		// Not wrapped: the message is scrubbed, and the error under it is not.
		return errors.New(creds.scrub(fmt.Sprintf("fetch %s from %s: %v", up.Ref, from, err)))
	}
	if _, err := s.git(ctx, app.Name, "cat-file", "-e", up.New+"^{commit}"); err != nil {
		return fmt.Errorf("commit %s announced by the webhook is not in %s after fetching %s", short(up.New), from, up.Ref)
	}
	// The ref itself and, for an annotated tag, the commit it names: a
	// payload may announce either.
	out, err := s.git(ctx, app.Name, "rev-parse", up.Ref, up.Ref+"^{commit}")
	if err != nil {
		return fmt.Errorf("read %s after fetching it from %s: %w", up.Ref, from, err)
	}
	got := strings.Fields(string(out))
	if len(got) != 2 {
		return fmt.Errorf("read %s after fetching it from %s: git rev-parse printed %q", up.Ref, from, out)
	}
	if got[0] != up.New && got[1] != up.New {
		return &RefMovedError{Ref: up.Ref, Announced: up.New, Current: got[0]}
	}
	return nil
}
