package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func tokenHash(s string) []byte { return conformDigest("token " + s) }

func tokenNames(ts []Token) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestConformTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if got, err := db.ListTokens(ctx); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListTokens of none = %v, %v; want an empty list", got, err)
		}
		if n, err := db.CountTokens(ctx); n != 0 || err != nil {
			t.Fatalf("CountTokens = %d, %v", n, err)
		}
		before := time.Now()
		want := []Token{
			{ID: "tok_1", Name: "admin", Role: "admin"},
			{ID: "tok_2", Name: "ci", Role: "deployer", App: "a", Env: "staging"},
			{ID: "tok_3", Name: "build-7", Role: "deployer", App: "a", RegistryOnly: true},
		}
		for i, tk := range want {
			got, err := db.CreateToken(ctx, tk, tokenHash(tk.ID))
			if err != nil {
				t.Fatal(err)
			}
			checkRecent(t, "CreatedAt", got.CreatedAt, before, time.Now())
			want[i].CreatedAt = got.CreatedAt
			if !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("CreateToken = %+v, want %+v", got, want[i])
			}
			time.Sleep(time.Millisecond) // each its own created_at: ListTokens orders by it
		}
		for _, tk := range want {
			got, err := db.TokenByHash(ctx, tokenHash(tk.ID))
			if err != nil || !reflect.DeepEqual(got, tk) {
				t.Fatalf("TokenByHash = %+v, %v; want %+v", got, err, tk)
			}
		}
		if got, err := db.ListTokens(ctx); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ListTokens = %+v, %v\nwant %+v", got, err, want)
		}
		if n, err := db.CountTokens(ctx); n != 3 || err != nil {
			t.Fatalf("CountTokens = %d, %v", n, err)
		}
		if _, err := db.TokenByHash(ctx, tokenHash("nope")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("TokenByHash of no token: %v", err)
		}

		// Names are unique.
		if _, err := db.CreateToken(ctx, Token{ID: "tok_4", Name: "ci", Role: "viewer"}, tokenHash("tok_4")); !errors.Is(err, ErrExists) || !errors.Is(err, ErrConflict) {
			t.Fatalf("a taken name: %v, want ErrExists", err)
		}
		if _, err := db.CreateToken(ctx, Token{ID: "tok_5", Name: "other", Role: "viewer"}, tokenHash("tok_1")); err == nil {
			t.Fatal("a second token with one hash was stored")
		}

		// Touching keeps the time to the microsecond.
		if err := db.TouchToken(ctx, "tok_2", nanoTime); err != nil {
			t.Fatal(err)
		}
		got, _ := db.TokenByHash(ctx, tokenHash("tok_2"))
		if got.LastUsedAt == nil {
			t.Fatal("TouchToken set no time")
		}
		checkStoredTime(t, "LastUsedAt", *got.LastUsedAt, nanoTime)
		if err := db.TouchToken(ctx, "tok_nope", nanoTime); err != nil {
			t.Fatalf("TouchToken of no token: %v", err)
		}

		// Revoking, by id or by name, is kept and happens once.
		for _, c := range []struct{ by, id string }{{"tok_2", "tok_2"}, {"admin", "tok_1"}} {
			before := time.Now()
			r, err := db.RevokeToken(ctx, c.by)
			if err != nil || r.ID != c.id || r.RevokedAt == nil {
				t.Fatalf("RevokeToken(%s) = %+v, %v", c.by, r, err)
			}
			checkRecent(t, "RevokedAt", *r.RevokedAt, before, time.Now())
			stored, _ := db.TokenByHash(ctx, tokenHash(c.id))
			if !reflect.DeepEqual(stored, r) {
				t.Fatalf("revoked token stored as %+v, returned %+v", stored, r)
			}
			again, err := db.RevokeToken(ctx, c.id)
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("revoking again = %+v, %v; want %+v", again, err, r)
			}
		}
		if _, err := db.RevokeToken(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("RevokeToken of no token: %v", err)
		}

		if err := db.DeleteToken(ctx, "tok_3"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteToken(ctx, "tok_3"); err != nil {
			t.Fatalf("deleting a deleted token: %v", err)
		}
		if _, err := db.TokenByHash(ctx, tokenHash("tok_3")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a deleted token: %v", err)
		}
		if got, _ := db.ListTokens(ctx); !slices.Equal(tokenNames(got), []string{"admin", "ci"}) {
			t.Fatalf("tokens left: %v", tokenNames(got))
		}
	})
}

func TestConformDeleteTokensNamed(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		names := []string{"build-1", "build-22", "Build-3", "xbuild-4", "build", "build_%-5", "buildX6"}
		cases := []struct {
			name   string // not the prefix: a SQLite data directory named with % fails to open
			prefix string
			want   []string // names left
		}{
			{"prefix", "build-", []string{"Build-3", "xbuild-4", "build", "build_%-5", "buildX6"}},
			{"LIKE wildcards are plain", "build_%", []string{"build-1", "build-22", "Build-3", "xbuild-4", "build", "buildX6"}},
			{"LIKE wildcard is plain", "build_", []string{"build-1", "build-22", "Build-3", "xbuild-4", "build", "buildX6"}},
			{"case matters", "Build", []string{"build-1", "build-22", "xbuild-4", "build", "build_%-5", "buildX6"}},
			{"a whole name is a prefix", "build", []string{"Build-3", "xbuild-4"}},
			{"no match", "none-", names},
		}
		db := s.open(t)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if _, err := db.write.ExecContext(ctx, `DELETE FROM tokens`); err != nil {
					t.Fatal(err)
				}
				for i, n := range names {
					if _, err := db.CreateToken(ctx, Token{ID: fmt.Sprint("tok_", i), Name: n, Role: "deployer"}, tokenHash(n)); err != nil {
						t.Fatal(err)
					}
				}
				n, err := db.DeleteTokensNamed(ctx, c.prefix)
				if err != nil {
					t.Fatal(err)
				}
				left, _ := db.ListTokens(ctx)
				if !slices.Equal(tokenNames(left), c.want) || n != len(names)-len(c.want) {
					t.Fatalf("DeleteTokensNamed(%q) = %d, left %v; want %v", c.prefix, n, tokenNames(left), c.want)
				}
			})
		}
	})
}

func TestConformMeta(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if _, err := db.GetMeta(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetMeta of no key: %v", err)
		}
		for _, v := range []string{"one", "two ' ?", ""} {
			if err := db.SetMeta(ctx, "k", v); err != nil {
				t.Fatal(err)
			}
			if got, err := db.GetMeta(ctx, "k"); got != v || err != nil {
				t.Fatalf("GetMeta = %q, %v; want %q", got, err, v)
			}
		}
	})
}

func TestConformBootstrapAdmin(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		created, err := db.BootstrapAdmin(ctx, Token{ID: "tok_a", Name: "admin", Role: "admin"}, tokenHash("a"))
		if err != nil || !created {
			t.Fatalf("first BootstrapAdmin = %v, %v", created, err)
		}
		got, err := db.TokenByHash(ctx, tokenHash("a"))
		if err != nil || got.ID != "tok_a" || got.Role != "admin" || got.App != "" || got.RegistryOnly {
			t.Fatalf("admin token %+v, %v", got, err)
		}
		if v, _ := db.GetMeta(ctx, "admin_bootstrapped"); v != "tok_a" {
			t.Fatalf("admin_bootstrapped = %q", v)
		}
		// Once per database: not again, not after the token is revoked or deleted.
		if err := db.DeleteToken(ctx, "tok_a"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db, err = s.reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		created, err = db.BootstrapAdmin(ctx, Token{ID: "tok_b", Name: "admin", Role: "admin"}, tokenHash("b"))
		if err != nil || created {
			t.Fatalf("BootstrapAdmin after a restart = %v, %v; want false", created, err)
		}
		if n, _ := db.CountTokens(ctx); n != 0 {
			t.Fatalf("%d tokens, want none", n)
		}
	})
}

func TestConformReplaceToken(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if _, err := db.CreateToken(ctx, Token{ID: "tok_other", Name: "other", Role: "viewer"}, tokenHash("other")); err != nil {
			t.Fatal(err)
		}
		var prev Token
		for i := range 3 {
			tk, err := db.ReplaceToken(ctx, Token{ID: fmt.Sprint("tok_", i), Name: "slipway-pipeline", Role: "deployer"}, tokenHash(fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := db.TokenByHash(ctx, tokenHash(fmt.Sprint(i))); err != nil || !reflect.DeepEqual(got, tk) {
				t.Fatalf("replaced token stored as %+v, %v; returned %+v", got, err, tk)
			}
			if i > 0 {
				if _, err := db.TokenByHash(ctx, tokenHash(fmt.Sprint(i-1))); !errors.Is(err, ErrNotFound) {
					t.Fatalf("the token %s replaced: %v", prev.ID, err)
				}
			}
			prev = tk
		}
		if got, _ := db.ListTokens(ctx); !slices.Equal(tokenNames(got), []string{"other", "slipway-pipeline"}) {
			t.Fatalf("tokens %v", tokenNames(got))
		}
		// A replaced token keeps its limits: a pull token of one app's
		// registry must not become a viewer of everything.
		scoped, err := db.ReplaceToken(ctx, Token{ID: "tok_pull", Name: "system:kubernetes-pull:a:prod", Role: "viewer", App: "a", Env: "prod", RegistryOnly: true}, tokenHash("pull"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.TokenByHash(ctx, tokenHash("pull")); err != nil || !reflect.DeepEqual(got, scoped) || got.App != "a" || got.Env != "prod" || !got.RegistryOnly {
			t.Fatalf("scoped replaced token stored as %+v, %v", got, err)
		}
	})
}

// Token names stay unique, and the first admin token is issued once,
// however many servers try at once.
func TestConformTokensConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		named := func(name string) int {
			list, _ := db.ListTokens(ctx)
			n := 0
			for _, tk := range list {
				if tk.Name == name {
					n++
				}
			}
			return n
		}
		t.Run("create one name", func(t *testing.T) {
			errs := race(t, db, func(i int) error {
				_, err := db.CreateToken(ctx, Token{ID: fmt.Sprint("tok_same_", i), Name: "same", Role: "viewer"}, tokenHash(fmt.Sprint("same ", i)))
				return err
			})
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrExists):
					t.Fatalf("unexpected error: %v", err)
				}
			}
			if n := named("same"); ok != 1 || n != 1 {
				t.Fatalf("%d created, %d stored; want 1", ok, n)
			}
		})
		t.Run("bootstrap", func(t *testing.T) {
			db := s.fresh(t).open(t) // once per database
			created := make([]bool, racers)
			errs := race(t, db, func(i int) error {
				var err error
				created[i], err = db.BootstrapAdmin(ctx, Token{ID: fmt.Sprint("tok_", i), Name: "admin", Role: "admin"}, tokenHash(fmt.Sprint(i)))
				return err
			})
			winner := -1
			for i, err := range errs {
				if err != nil {
					t.Fatalf("racer %d: %v", i, err)
				}
				if created[i] {
					if winner >= 0 {
						t.Fatalf("racers %d and %d both bootstrapped", winner, i)
					}
					winner = i
				}
			}
			list, _ := db.ListTokens(ctx)
			v, _ := db.GetMeta(ctx, "admin_bootstrapped")
			if winner < 0 || len(list) != 1 || list[0].ID != fmt.Sprint("tok_", winner) || v != list[0].ID {
				t.Fatalf("winner %d, tokens %+v, bootstrapped %q", winner, list, v)
			}
		})
		t.Run("replace", func(t *testing.T) {
			errs := race(t, db, func(i int) error {
				_, err := db.ReplaceToken(ctx, Token{ID: fmt.Sprint("tok_pipe_", i), Name: "slipway-pipeline", Role: "deployer"}, tokenHash(fmt.Sprint("pipe ", i)))
				return err
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("racer %d: %v", i, err)
				}
			}
			if n := named("slipway-pipeline"); n != 1 {
				t.Fatalf("%d pipeline tokens, want one", n)
			}
		})
		t.Run("revoke", func(t *testing.T) {
			if _, err := db.CreateToken(ctx, Token{ID: "tok_r", Name: "r", Role: "viewer"}, tokenHash("r")); err != nil {
				t.Fatal(err)
			}
			got := make([]Token, racers)
			errs := race(t, db, func(i int) error {
				var err error
				got[i], err = db.RevokeToken(ctx, "r")
				return err
			})
			stored, _ := db.TokenByHash(ctx, tokenHash("r"))
			for i, err := range errs {
				if err != nil || !reflect.DeepEqual(got[i], stored) {
					t.Fatalf("racer %d: %+v, %v; stored %+v", i, got[i], err, stored)
				}
			}
		})
	})
}

func TestConformSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		tk, err := db.CreateToken(ctx, Token{ID: "tok_1", Name: "ann", Role: "admin", App: "a", Env: "staging"}, tokenHash("1"))
		if err != nil {
			t.Fatal(err)
		}
		id := conformDigest("session 1")
		if _, _, err := db.GetSession(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession of none: %v", err)
		}
		expires := time.Now().Add(time.Hour).Add(789 * time.Nanosecond)
		before := time.Now()
		if err := db.CreateSession(ctx, id, Session{TokenID: tk.ID, CSRF: "csrf-1", CreatedAt: nanoTime, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		got, gotToken, err := db.GetSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.TokenID != tk.ID || got.CSRF != "csrf-1" || !reflect.DeepEqual(gotToken, tk) {
			t.Fatalf("GetSession = %+v, %+v", got, gotToken)
		}
		checkRecent(t, "CreatedAt", got.CreatedAt, before, time.Now()) // the store's time, not the caller's
		checkStoredTime(t, "ExpiresAt", got.ExpiresAt, expires)
		if err := db.CreateSession(ctx, id, Session{TokenID: tk.ID, CSRF: "again", ExpiresAt: expires}); err == nil {
			t.Fatal("a second session with one id was stored")
		}
		if err := db.CreateSession(ctx, conformDigest("x"), Session{TokenID: "tok_nope", CSRF: "c", ExpiresAt: expires}); err == nil {
			t.Fatal("a session of no token was stored")
		}

		// A revoked token's session still reads, with the revocation.
		if _, err := db.RevokeToken(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
		if _, gotToken, err := db.GetSession(ctx, id); err != nil || gotToken.RevokedAt == nil {
			t.Fatalf("session of a revoked token: %+v, %v", gotToken, err)
		}

		// An expired session reads as none, and goes when another is made.
		old := conformDigest("session old")
		if err := db.CreateSession(ctx, old, Session{TokenID: tk.ID, CSRF: "c", ExpiresAt: time.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.GetSession(ctx, old); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession of an expired session: %v", err)
		}
		if err := db.CreateSession(ctx, conformDigest("session 2"), Session{TokenID: tk.ID, CSRF: "c2", ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d sessions stored (%v), want 2: the expired one pruned", n, err)
		}

		if err := db.DeleteSession(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteSession(ctx, id); err != nil {
			t.Fatalf("deleting a deleted session: %v", err)
		}
		if _, _, err := db.GetSession(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSession after DeleteSession: %v", err)
		}
		// Deleting the token ends its sessions.
		if err := db.DeleteToken(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.GetSession(ctx, conformDigest("session 2")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a deleted token's session: %v", err)
		}
	})
}
