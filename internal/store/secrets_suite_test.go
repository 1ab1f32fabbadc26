package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func secretKeys(ss []Secret) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%s/%s/%s@%d", s.App, s.Env, s.Name, s.Version))
	}
	return out
}

func TestConformSecrets(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a", "b")
		if got, err := db.ListSecrets(ctx, ""); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListSecrets of none = %v, %v; want an empty list", got, err)
		}
		sealed := func(i int) []byte { return append([]byte{0, 0xff, '\'', '?'}, byte(i)) }
		puts := []struct {
			s       Secret
			version int
		}{
			{Secret{Name: "TOKEN", UpdatedBy: "ann"}, 1},
			{Secret{Name: "TOKEN", App: "a", UpdatedBy: "ann"}, 1},
			{Secret{Name: "TOKEN", App: "a", Env: "staging", UpdatedBy: "ann"}, 1},
			{Secret{Name: "TOKEN", App: "a", UpdatedBy: "bob"}, 2},
			{Secret{Name: "DB", App: "a", UpdatedBy: "bob"}, 1},
			{Secret{Name: "TOKEN", App: "b", UpdatedBy: "cy"}, 1},
			{Secret{Name: "TOKEN", App: "a", UpdatedBy: "dee"}, 3},
			{Secret{Name: "ALPHA", UpdatedBy: "eve"}, 1},
		}
		before := time.Now()
		for i, p := range puts {
			v, err := db.PutSecret(ctx, p.s, sealed(i))
			if err != nil || v != p.version {
				t.Fatalf("put %d: version %d, %v; want %d", i, v, err, p.version)
			}
		}
		cases := []struct {
			app  string
			want []string
		}{
			{"", []string{"//ALPHA@1", "//TOKEN@1", "a//DB@1", "a//TOKEN@3", "a/staging/TOKEN@1", "b//TOKEN@1"}},
			{"a", []string{"//ALPHA@1", "//TOKEN@1", "a//DB@1", "a//TOKEN@3", "a/staging/TOKEN@1"}},
			{"b", []string{"//ALPHA@1", "//TOKEN@1", "b//TOKEN@1"}},
			{"zz", []string{"//ALPHA@1", "//TOKEN@1"}},
		}
		for _, c := range cases {
			got, err := db.ListSecrets(ctx, c.app)
			if err != nil || !slices.Equal(secretKeys(got), c.want) {
				t.Errorf("ListSecrets(%q) = %v, %v; want %v", c.app, secretKeys(got), err, c.want)
			}
			for _, s := range got {
				checkRecent(t, "UpdatedAt", s.UpdatedAt, before, time.Now())
				if s.Name == "TOKEN" && s.App == "a" && s.Env == "" && s.UpdatedBy != "dee" {
					t.Errorf("newest version by %s, want dee", s.UpdatedBy)
				}
			}
		}
		for _, c := range []struct {
			name, app, env string
			put            int // index into puts; -1: not found
		}{
			{"TOKEN", "", "", 0},
			{"TOKEN", "a", "", 6},
			{"TOKEN", "a", "staging", 2},
			{"TOKEN", "b", "staging", -1}, // exactly that scope: no fallback
			{"DB", "", "", -1},
			{"token", "a", "", -1},
		} {
			sec, value, err := db.SealedSecret(ctx, c.name, c.app, c.env)
			if c.put < 0 {
				if !errors.Is(err, ErrNotFound) || value != nil {
					t.Errorf("SealedSecret(%s, %q, %q) = %x, %v; want ErrNotFound", c.name, c.app, c.env, value, err)
				}
				continue
			}
			p := puts[c.put]
			if err != nil || !bytes.Equal(value, sealed(c.put)) || sec.Version != p.version || sec.UpdatedBy != p.s.UpdatedBy ||
				sec.Name != c.name || sec.App != c.app || sec.Env != c.env {
				t.Errorf("SealedSecret(%s, %q, %q) = %+v, %x, %v; want version %d, %x", c.name, c.app, c.env, sec, value, err, p.version, sealed(c.put))
			}
			checkRecent(t, "UpdatedAt", sec.UpdatedAt, before, time.Now())
		}

		// Deleting removes every version of exactly that scope.
		if err := db.DeleteSecret(ctx, "TOKEN", "a", ""); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ app, env, want string }{{"a", "", "not found"}, {"a", "staging", "found"}, {"", "", "found"}} {
			_, _, err := db.SealedSecret(ctx, "TOKEN", c.app, c.env)
			if (err == nil) != (c.want == "found") {
				t.Errorf("after deleting a's TOKEN, TOKEN of %q %q: %v", c.app, c.env, err)
			}
		}
		for _, c := range []struct{ name, app, env, msg string }{
			{"TOKEN", "a", "", "TOKEN of app a"},
			{"NOPE", "", "", "NOPE (global)"},
			{"TOKEN", "b", "prod", "TOKEN of app b environment prod"},
		} {
			if err := db.DeleteSecret(ctx, c.name, c.app, c.env); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("DeleteSecret(%s, %q, %q) = %v; want ErrNotFound naming %q", c.name, c.app, c.env, err, c.msg)
			}
		}
		// A secret put again starts again at version 1.
		if v, err := db.PutSecret(ctx, Secret{Name: "TOKEN", App: "a", UpdatedBy: "fay"}, []byte{}); v != 1 || err != nil {
			t.Fatalf("put again: version %d, %v", v, err)
		}
		if _, value, err := db.SealedSecret(ctx, "TOKEN", "a", ""); err != nil || value == nil || len(value) != 0 {
			t.Fatalf("an empty sealed value read back as %#v, %v", value, err)
		}
	})
}

// Versions of one secret put at once are all kept, each its own number.
func TestConformPutSecretConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := conformOpen(t, s, "a")
		versions := make([]int, racers)
		errs := race(t, db, func(i int) error {
			var err error
			versions[i], err = db.PutSecret(ctx, Secret{Name: "K", App: "a", UpdatedBy: fmt.Sprint(i)}, []byte{byte(i)})
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		sorted := slices.Sorted(slices.Values(versions))
		for i, v := range sorted {
			if v != i+1 {
				t.Fatalf("versions %v, want 1 to %d once each", sorted, racers)
			}
		}
		// The newest is the one that got the highest number.
		sec, value, err := db.SealedSecret(ctx, "K", "a", "")
		newest := slices.Index(versions, racers)
		if err != nil || sec.Version != racers || sec.UpdatedBy != fmt.Sprint(newest) || !bytes.Equal(value, []byte{byte(newest)}) {
			t.Fatalf("SealedSecret = %+v, %x, %v; want racer %d's", sec, value, err, newest)
		}
	})
}
