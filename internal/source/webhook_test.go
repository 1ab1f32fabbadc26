package source

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

const testWebhookSecret = "0123456789abcdef-webhook"

// testService is a Service over a real store in dir, as the server makes
// it at start; a second call on the same dir is a restart.
func testService(t *testing.T, dir string, key []byte) (*Service, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewService(db, filepath.Join(dir, "git"), keys, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// addApp creates app "hello", with its repository, fetching from sourceURL.
func addApp(t *testing.T, s *Service, db *store.DB, sourceURL string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateRepo(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateApp(ctx, store.App{Name: "hello", RegistryRepo: "hello"}); err != nil {
		t.Fatal(err)
	}
	src, err := s.SealSource(sourceURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAppSource(ctx, "hello", src, s.Keys.Seal([]byte(testWebhookSecret)), false); err != nil {
		t.Fatal(err)
	}
}

func pushPayload(t *testing.T, ref, before, after string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"ref": ref, "before": before, "after": after, "pusher": map[string]string{"name": "octo"},
		"commits": []map[string]any{{"added": []string{"slipway.yaml"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(id string, body []byte) Delivery {
	m := hmac.New(sha256.New, []byte(testWebhookSecret))
	m.Write(body)
	return Delivery{App: "hello", Event: "push", ID: id, Signature: "sha256=" + hex.EncodeToString(m.Sum(nil)), Body: body}
}

// deliveryStatus is the status a delivery is answered with.
func deliveryStatus(res DeliveryResult, err error) (int, string) {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status, he.Code
	}
	if err != nil {
		return 0, err.Error()
	}
	return res.Status, ""
}

// An accepted payload is refused when it comes again, under any delivery
// id and after a restart; one whose fetch failed was not accepted, and is
// fetched again when redelivered.
func TestAcceptedPayloadsOutliveARestart(t *testing.T) {
	ctx := context.Background()
	dir, key := t.TempDir(), newKey(t)
	s, db := testService(t, dir, key)
	src := t.TempDir()
	gitIn(t, src, "init", "-q", "-b", "main")
	addApp(t, s, db, src)
	zero := strings.Repeat("0", 40)

	// Announces a commit the source does not have yet: the fetch fails.
	gitIn(t, src, "commit", "-q", "--allow-empty", "-m", "first")
	c1 := gitIn(t, src, "rev-parse", "HEAD")
	missing := strings.Repeat("ab", 20)
	early := pushPayload(t, "refs/heads/main", c1, missing)
	p1 := pushPayload(t, "refs/heads/main", zero, c1)

	steps := []struct {
		name    string
		restart bool
		d       Delivery
		status  int
		code    string
	}{
		{name: "first delivery", d: signed("d-1", p1), status: http.StatusCreated},
		{name: "same payload, new id", d: signed("d-2", p1), status: http.StatusConflict, code: "duplicate_delivery"},
		{name: "same payload after a restart", restart: true, d: signed("d-3", p1), status: http.StatusConflict, code: "duplicate_delivery"},
		{name: "a push that cannot be fetched", d: signed("d-4", early), status: http.StatusUnprocessableEntity, code: "fetch_failed"},
		{name: "its redelivery, still unfetchable", d: signed("d-5", early), status: http.StatusUnprocessableEntity, code: "fetch_failed"},
	}
	for _, st := range steps {
		if st.restart {
			db.Close()
			s, db = testService(t, dir, key)
		}
		status, code := deliveryStatus(s.HandleGitHub(ctx, st.d))
		if status != st.status || code != st.code {
			t.Fatalf("%s: %d %s, want %d %s", st.name, status, code, st.status, st.code)
		}
	}
	evs, err := db.ListPushEvents(ctx, "hello", store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3 (the accepted push and two fetch errors): %+v", len(evs), evs)
	}
}
