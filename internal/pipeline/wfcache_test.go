package pipeline

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/store"
)

// Workflow caches are scoped by ref as GitHub scopes them by branch: a
// job restores its own ref's caches, then the default branch's (exact
// key, then a key starting with it, then each restore key, in each), and
// a branch's caches are never restored on the default branch. (A real git
// repository and the filesystem blob driver.)
func TestWorkflowCacheScopes(t *testing.T) {
	ctx := context.Background()
	src := shopSource(t)
	blobs, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Blobs: blobs, Source: src}
	job := func(ref string) *jobRun {
		return &jobRun{e: e, r: store.Run{App: "shop", Ref: ref}, logs: io.Discard}
	}
	const main, feature = "refs/heads/main", "refs/heads/feature"
	save := func(ref, key string) {
		t.Helper()
		if _, err := blob.Put(ctx, blobs, job(ref).cacheKey(ref, key), strings.NewReader(key)); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times (the file system's clock is coarse):
		// the newest of several matches wins.
		time.Sleep(20 * time.Millisecond)
	}
	save(feature, "poisoned-linux-go")
	save(main, "deps-linux-aaa")
	save(feature, "deps-linux-bbb")
	save(main, "deps-linux-ccc")
	save(main, "tools-v1")
	for _, c := range []struct {
		name        string
		ref, key    string
		restoreKeys []string
		wantHit     bool
		wantRef     string
		wantMatched string
	}{
		{"a branch's cache is not the default branch's", main, "poisoned-linux-go", nil, false, "", ""},
		{"nor found by a restore key there", main, "x", []string{"poisoned-"}, false, "", ""},
		{"the default branch's cache, exact, on a branch", feature, "tools-v1", nil, true, main, "tools-v1"},
		{"the branch's own first", feature, "deps-linux-zzz", []string{"deps-linux-"}, false, feature, "deps-linux-bbb"},
		{"the newest of the default branch's", main, "deps-linux-zzz", []string{"deps-linux-"}, false, main, "deps-linux-ccc"},
		{"a key starting with the key", main, "deps-linux-a", nil, false, main, "deps-linux-aaa"},
		{"restore keys in order", main, "none", []string{"tools-", "deps-"}, false, main, "tools-v1"},
		{"an exact match on the default branch after the branch's partial one", feature, "deps-linux-ccc", []string{"deps-"}, false, feature, "deps-linux-bbb"},
		{"nothing", feature, "other", []string{"nope-"}, false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hit, ref, matched := job(c.ref).findCache(ctx, c.key, c.restoreKeys)
			if hit != c.wantHit || ref != c.wantRef || matched != c.wantMatched {
				t.Fatalf("findCache = %v, %q, %q; want %v, %q, %q", hit, ref, matched, c.wantHit, c.wantRef, c.wantMatched)
			}
		})
	}
}
