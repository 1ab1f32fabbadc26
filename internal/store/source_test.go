package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSplitSourceCredentials(t *testing.T) {
	cases := []struct {
		name, raw      string
		public         string
		user, password string // "" and no user when creds is false
		creds, hasPass bool
		err            bool
	}{
		{name: "https user and password", raw: "https://ci:s3cret@github.com/acme/x.git", public: "https://github.com/acme/x.git", user: "ci", password: "s3cret", creds: true, hasPass: true},
		{name: "escaped password", raw: "https://ci:a%40b%3Ac@github.com/acme/x.git", public: "https://github.com/acme/x.git", user: "ci", password: "a@b:c", creds: true, hasPass: true},
		{name: "token as the user name", raw: "https://ghp_token@github.com/acme/x.git", public: "https://github.com/acme/x.git", user: "ghp_token", creds: true},
		{name: "port kept", raw: "http://u:p@127.0.0.1:8080/x.git", public: "http://127.0.0.1:8080/x.git", user: "u", password: "p", creds: true, hasPass: true},
		{name: "no credentials", raw: "https://github.com/acme/x.git", public: "https://github.com/acme/x.git"},
		{name: "ssh user name stays", raw: "ssh://git@github.com/acme/x.git", public: "ssh://git@github.com/acme/x.git"},
		{name: "ssh password cut", raw: "ssh://git:pw@github.com/acme/x.git", public: "ssh://github.com/acme/x.git", user: "git", password: "pw", creds: true, hasPass: true},
		{name: "scp-like", raw: "git@github.com:acme/x.git", public: "git@github.com:acme/x.git"},
		{name: "path", raw: "/srv/git/x.git", public: "/srv/git/x.git"},
		{name: "file URL", raw: "file:///srv/git/x.git", public: "file:///srv/git/x.git"},
		{name: "bad port", raw: "https://ci:s3cret@github.com:x/acme.git", public: "https://github.com:x/acme.git", err: true},
		{name: "bad escape in the password", raw: "https://ci:s3%zzcret@github.com/acme.git", public: "https://github.com/acme.git", err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			public, user, err := SplitSourceCredentials(c.raw)
			if c.err {
				var ue *SourceURLError
				if !errors.As(err, &ue) {
					t.Fatalf("err = %v, want a *SourceURLError", err)
				}
				if ue.Public != c.public {
					t.Errorf("Public = %q, want %q", ue.Public, c.public)
				}
				if strings.Contains(err.Error(), "s3") || strings.Contains(err.Error(), "ci:") {
					t.Errorf("error %q shows the credentials", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if public != c.public {
				t.Errorf("public = %q, want %q", public, c.public)
			}
			if (user != nil) != c.creds {
				t.Fatalf("credentials %v, want %v", user, c.creds)
			}
			if user == nil {
				return
			}
			pw, ok := user.Password()
			if user.Username() != c.user || pw != c.password || ok != c.hasPass {
				t.Errorf("credentials %q %q %v, want %q %q %v", user.Username(), pw, ok, c.user, c.password, c.hasPass)
			}
		})
	}
}

func TestAppSourceCredentialsAreNeverShown(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		for _, n := range []string{"sealed", "legacy", "plain"} {
			if _, err := db.CreateApp(ctx, App{Name: n}); err != nil {
				t.Fatal(err)
			}
		}
		sealed := []byte("opaque sealed credentials")
		cases := []struct {
			app       string
			src       AppSource
			showURL   string
			showCreds bool
			unsealed  bool // listed by UnsealedSourceURLs
		}{
			{"sealed", AppSource{URL: "https://github.com/acme/x.git", Credentials: sealed}, "https://github.com/acme/x.git", true, false},
			// As rows were written before credentials were sealed apart.
			{"legacy", AppSource{URL: "https://ci:s3cret@github.com/acme/x.git"}, "https://github.com/acme/x.git", true, true},
			{"plain", AppSource{URL: "https://github.com/acme/x.git"}, "https://github.com/acme/x.git", false, false},
		}
		for _, c := range cases {
			a, err := db.SetAppSource(ctx, c.app, c.src, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := db.GetApp(ctx, c.app)
			all, _ := db.ListApps(ctx)
			for what, v := range map[string]any{"SetAppSource": a, "GetApp": got, "ListApps": all} {
				b, _ := json.Marshal(v)
				if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "opaque") {
					t.Errorf("%s: %s shows the credentials: %s", c.app, what, b)
				}
			}
			if got.SourceURL != c.showURL || got.SourceCredentials != c.showCreds {
				t.Errorf("%s: shown as %q, credentials %v; want %q, %v", c.app, got.SourceURL, got.SourceCredentials, c.showURL, c.showCreds)
			}
			stored, err := db.GetAppSource(ctx, c.app)
			if err != nil || stored.URL != c.src.URL || string(stored.Credentials) != string(c.src.Credentials) {
				t.Errorf("%s: GetAppSource = %+v, %v; want %+v", c.app, stored, err, c.src)
			}
		}
		unsealed, err := db.UnsealedSourceURLs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(unsealed) != 1 || unsealed["legacy"] != "https://ci:s3cret@github.com/acme/x.git" {
			t.Fatalf("UnsealedSourceURLs = %v, want the legacy app only", unsealed)
		}

		// The upgrade gives way to a source set since it was read.
		upgraded := AppSource{URL: "https://github.com/acme/x.git", Credentials: sealed}
		if ok, err := db.UpgradeAppSource(ctx, "legacy", "https://ci:other@github.com/acme/x.git", upgraded); ok || err != nil {
			t.Fatalf("upgrade of a changed source = %v, %v; want false", ok, err)
		}
		if ok, err := db.UpgradeAppSource(ctx, "legacy", unsealed["legacy"], upgraded); !ok || err != nil {
			t.Fatalf("upgrade = %v, %v; want true", ok, err)
		}
		if src, _ := db.GetAppSource(ctx, "legacy"); src.URL != upgraded.URL || string(src.Credentials) != string(sealed) {
			t.Fatalf("after the upgrade: %+v", src)
		}
		if unsealed, _ := db.UnsealedSourceURLs(ctx); len(unsealed) != 0 {
			t.Fatalf("UnsealedSourceURLs after the upgrade = %v", unsealed)
		}
		// Setting a URL without credentials drops the sealed ones.
		if a, _ := db.SetAppSource(ctx, "sealed", AppSource{URL: "https://github.com/acme/y.git"}, nil, true); a.SourceCredentials {
			t.Fatal("credentials still set after a source without them")
		}
		if src, _ := db.GetAppSource(ctx, "sealed"); src.Credentials != nil {
			t.Fatalf("credentials still stored: %q", src.Credentials)
		}
	})
}

func TestPayloadDigestsRefuseReplays(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		digest := func(body string) []byte { d := sha256.Sum256([]byte(body)); return d[:] }
		push := func(app, delivery string, d []byte) PushEvent {
			return PushEvent{App: app, Source: "github", Ref: "refs/heads/main", OldSHA: strings.Repeat("0", 40), NewSHA: strings.Repeat("a", 40),
				PushedBy: "octo", DeliveryID: delivery, Outcome: OutcomeFiltered, PayloadSHA256: d}
		}
		cases := []struct {
			name     string
			earlier  []string      // payloads accepted for app "a"…
			age      time.Duration // …this long ago
			app      string
			payload  string
			accepted bool // PayloadAccepted before recording
		}{
			{name: "new payload", app: "a", payload: "p1"},
			{name: "same payload again", earlier: []string{"p1"}, app: "a", payload: "p1", accepted: true},
			{name: "same payload, other app", earlier: []string{"p1"}, app: "b", payload: "p1"},
			{name: "other payload", earlier: []string{"p1"}, app: "a", payload: "p2"},
			{name: "inside the window", earlier: []string{"p1"}, age: PayloadReplayWindow - time.Hour, app: "a", payload: "p1", accepted: true},
			{name: "after the window", earlier: []string{"p1"}, age: PayloadReplayWindow + time.Hour, app: "a", payload: "p1"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				db := s.fresh(t).open(t)
				for _, n := range []string{"a", "b"} {
					if _, err := db.CreateApp(ctx, App{Name: n}); err != nil {
						t.Fatal(err)
					}
				}
				for i, p := range c.earlier {
					if _, err := db.write.ExecContext(ctx, `INSERT INTO webhook_payloads(app, sha256, accepted_at) VALUES ('a', ?, ?)`,
						digest(p), toDB(now().Add(-c.age))); err != nil {
						t.Fatalf("earlier payload %d: %v", i, err)
					}
				}
				seen, err := db.PayloadAccepted(ctx, c.app, digest(c.payload))
				if err != nil || seen != c.accepted {
					t.Fatalf("PayloadAccepted = %v, %v; want %v", seen, err, c.accepted)
				}
				_, err = db.RecordPush(ctx, push(c.app, "d-new", digest(c.payload)), nil)
				var replayed *ReplayedPayloadError
				if c.accepted != errors.As(err, &replayed) || (c.accepted && !errors.Is(err, ErrConflict)) || (!c.accepted && err != nil) {
					t.Fatalf("RecordPush = %v; want a replay refusal: %v", err, c.accepted)
				}
				evs, _ := db.ListPushEvents(ctx, c.app, Page{})
				if want := map[bool]int{true: 0, false: 1}[c.accepted]; len(evs) != want {
					t.Fatalf("%d events recorded, want %d", len(evs), want)
				}
				if seen, _ := db.PayloadAccepted(ctx, c.app, digest(c.payload)); !seen {
					t.Fatal("payload not accepted after RecordPush")
				}
			})
		}
	})
}

func TestPayloadDigestsOutliveARestartAndGoWithTheApp(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		d := sha256.Sum256([]byte("payload"))
		ev := PushEvent{App: "a", Source: "github", Ref: "refs/heads/main", OldSHA: strings.Repeat("0", 40), NewSHA: strings.Repeat("a", 40),
			PushedBy: "octo", DeliveryID: "d-1", Outcome: OutcomeFiltered, PayloadSHA256: d[:]}

		db, err := s.reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateApp(ctx, App{Name: "a"}); err != nil {
			t.Fatal(err)
		}
		// An expired digest of another payload is pruned by the next accepted one.
		old := sha256.Sum256([]byte("old"))
		if _, err := db.write.ExecContext(ctx, `INSERT INTO webhook_payloads(app, sha256, accepted_at) VALUES ('a', ?, ?)`, old[:], toDB(now().Add(-PayloadReplayWindow-time.Minute))); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RecordPush(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
		db.Close()

		db = s.open(t)
		if seen, err := db.PayloadAccepted(ctx, "a", d[:]); !seen || err != nil {
			t.Fatalf("after reopening: PayloadAccepted = %v, %v", seen, err)
		}
		ev.DeliveryID = "d-2"
		if _, err := db.RecordPush(ctx, ev, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("replay after reopening: %v, want a conflict", err)
		}
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_payloads`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d digests kept (%v), want 1: the expired one pruned", n, err)
		}
		if err := db.DeleteApp(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if seen, _ := db.PayloadAccepted(ctx, "a", d[:]); seen {
			t.Fatal("a deleted app's payload digests were kept")
		}
	})
}
