package pipeline

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/store"
)

// shopSource is a real source service hosting app "shop", a new
// repository whose default branch is main.
func shopSource(t *testing.T) *source.Service {
	t.Helper()
	src, err := source.NewService(nil, t.TempDir(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.CreateRepo(context.Background(), "shop"); err != nil {
		t.Fatal(err)
	}
	return src
}

// The default branch's builds share the app's home; every other ref has
// its own, beside it and never inside it; idle ones are swept, the
// default branch's never. (A real git repository.)
func TestBuildHomes(t *testing.T) {
	ctx := context.Background()
	src := shopSource(t)
	root := t.TempDir()
	e := &Engine{Source: src, HomeRoot: root}
	home := func(ref string) string {
		t.Helper()
		h, err := e.buildHome(ctx, store.Run{App: "shop", Ref: ref})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	main, feature, tag := home("refs/heads/main"), home("refs/heads/feature"), home("refs/tags/v1")
	if main != filepath.Join(root, "shop") {
		t.Fatalf("the default branch's home is %s", main)
	}
	for _, h := range []string{feature, tag} {
		if h == main || filepath.Dir(h) != root {
			t.Fatalf("a ref's home %s: not beside the app's %s", h, main)
		}
	}
	if feature == tag || feature != home("refs/heads/feature") {
		t.Fatalf("homes by ref: feature %s, tag %s", feature, tag)
	}
	if _, err := e.buildHome(ctx, store.Run{App: "nope", Ref: "refs/heads/main"}); err == nil {
		t.Fatal("a home for an app without a repository")
	}

	for _, h := range []string{main, feature, tag} {
		if err := os.MkdirAll(filepath.Join(h, "go"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-refHomeIdle - time.Hour)
	for _, h := range []string{main, tag} {
		if err := os.Chtimes(h, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.sweepRefHomes(time.Now()); n != 1 || err != nil {
		t.Fatalf("sweepRefHomes = %d, %v; want the tag's idle home", n, err)
	}
	for h, want := range map[string]bool{main: true, feature: true, tag: false} {
		if _, err := os.Stat(h); (err == nil) != want {
			t.Errorf("%s kept: %v, want %v", h, err == nil, want)
		}
	}
	// A build touches its home: used now, it is kept.
	if err := os.Chtimes(feature, old, old); err != nil {
		t.Fatal(err)
	}
	home("refs/heads/feature")
	if n, _ := e.sweepRefHomes(time.Now()); n != 0 {
		t.Fatal("a home just used was swept")
	}
}

// A buildspec's cache: paths are kept per ref as homes are: a branch
// starts from the default branch's, its own once it saved one; the
// default branch never restores a branch's. (The filesystem blob driver.)
func TestBuildspecCachesByRef(t *testing.T) {
	ctx := context.Background()
	blobs, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	save := func(scope, content string) {
		t.Helper()
		src := t.TempDir()
		if err := os.MkdirAll(filepath.Join(src, "deps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "deps", "lib"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		saveCache(ctx, blobs, "shop", scope, src, []string{"deps"}, io.Discard)
	}
	restored := func(scopes ...string) string {
		t.Helper()
		dir := t.TempDir()
		restoreCache(ctx, blobs, "shop", scopes, dir, []string{"deps"}, io.Discard)
		b, _ := os.ReadFile(filepath.Join(dir, "deps", "lib"))
		return string(b)
	}
	const branch = "0123456789abcdef01234567"
	save(branch, "POISON")
	if got := restored(""); got != "" {
		t.Fatalf("the default branch restored a branch's cache: %q", got)
	}
	save("", "main's")
	for _, c := range []struct {
		scopes []string
		want   string
	}{
		{[]string{""}, "main's"},
		{[]string{branch, ""}, "POISON"},                     // the branch's own first
		{[]string{"fedcba9876543210fedcba98", ""}, "main's"}, // a new branch starts from main's
	} {
		if got := restored(c.scopes...); got != c.want {
			t.Errorf("restore from %q = %q, want %q", c.scopes, got, c.want)
		}
	}
}
