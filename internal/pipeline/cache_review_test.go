package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/blob"
)

// A cache path with a character outside distribution's path rule
// ([A-Za-z0-9._-]) was saved before the blob seam (a file in DATA/cache);
// now CacheKey makes a key the driver refuses, so the cache is never saved.
func TestReviewCacheKeyOutsideDriverPathRule(t *testing.T) {
	ctx := context.Background()
	d, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, p := range []string{"deps@2", "build+cache", "my cache"} {
		if err := os.MkdirAll(filepath.Join(src, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		saveCache(ctx, d, "app", "", src, []string{p}, &logs)
		if _, err := d.Stat(ctx, CacheKey("app", "", p)); err != nil {
			t.Errorf("cache path %q not saved (key %s): %v; build log: %s", p, CacheKey("app", "", p), err, strings.TrimSpace(logs.String()))
		}
	}
}

// cutReader is a driver whose Reader fails after n bytes, as an S3 GET cut
// mid-stream does.
type cutReader struct {
	storagedriver.StorageDriver
	n int64
}

func (d cutReader) Reader(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	rc, err := d.StorageDriver.Reader(ctx, path, off)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, d.n), errReader{}), rc}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// A restore cut mid-stream reports "not restored" but leaves what it had
// unpacked, including a truncated file, in the build's source directory;
// a build that succeeds then saves that back as the app's cache.
func TestReviewRestoreCacheCutLeavesTruncatedFile(t *testing.T) {
	ctx := context.Background()
	fsd, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	if err := os.MkdirAll(filepath.Join(src, "deps"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "deps", "lib.jar"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	saveCache(ctx, fsd, "app", "", src, []string{"deps"}, &logs)
	if _, err := fsd.Stat(ctx, CacheKey("app", "", "deps")); err != nil {
		t.Fatalf("cache not saved: %v: %s", err, logs.String())
	}

	build := t.TempDir()
	logs.Reset()
	restoreCache(ctx, cutReader{fsd, 600 << 10}, "app", []string{""}, build, []string{"deps"}, &logs)
	t.Logf("build log: %s", strings.TrimSpace(logs.String()))
	got, err := os.ReadFile(filepath.Join(build, "deps", "lib.jar"))
	if err == nil && !bytes.Equal(got, data) {
		t.Fatalf("after a failed restore deps/lib.jar is left with %d of %d bytes", len(got), len(data))
	}
}
