package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/slipway-dev/slipway/internal/blob/s3test"
)

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// openS3 starts versitygw and opens an S3 store on it, putting its
// credentials in the environment (so the caller may not be parallel).
func openS3(t *testing.T) (*s3test.S3, storagedriver.StorageDriver) {
	t.Helper()
	s := s3test.Start(t)
	s.Setenv(t)
	cfg, err := Parse(s.URL("blob-test"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// TestIntegrationDrivers checks what Slipway relies on, on both drivers.
func TestIntegrationDrivers(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, d storagedriver.StorageDriver)
	}{
		{"MissingKeys", testMissingKeys},
		{"PutGetStatListDelete", testPutGetStatListDelete},
		{"AtomicPut", testAtomicPut},
		{"FailedPutLeavesNothing", testFailedPut},
		{"CancelLeavesNothing", testCancel},
		{"LargeObject", testLargeObject},
		{"RangedRead", testRangedRead},
		{"ConcurrentWriters", testConcurrentWriters},
		{"PurgeTemp", testPurgeTemp},
	}
	all := func(d storagedriver.StorageDriver) func(t *testing.T) {
		return func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.run(t, d) })
			}
		}
	}
	fsd, err := Open(context.Background(), Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it still runs if versitygw cannot be built.
	t.Run("filesystem", all(fsd))
	_, s3d := openS3(t)
	t.Run("s3", all(s3d))
}

func testMissingKeys(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	const key = "/missing/dir/key"
	checks := map[string]func() error{
		"GetContent": func() error { _, err := d.GetContent(ctx, key); return err },
		"Reader":     func() error { _, err := d.Reader(ctx, key, 0); return err },
		"Reader at offset": func() error {
			_, err := d.Reader(ctx, key, 10)
			return err
		},
		"Stat":   func() error { _, err := d.Stat(ctx, key); return err },
		"List":   func() error { _, err := d.List(ctx, "/missing/dir"); return err },
		"Delete": func() error { return d.Delete(ctx, key) },
		"Move":   func() error { return d.Move(ctx, key, "/missing/other") },
	}
	for name, f := range checks {
		if err := f(); !isNotFound(err) {
			t.Errorf("%s of a missing key: %v (%T), want storagedriver.PathNotFoundError", name, err, err)
		}
	}
}

func testPutGetStatListDelete(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	data := randomBytes(t, 3000)
	n, err := Put(ctx, d, "/crud/a/one", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put: %d, %v", n, err)
	}
	if _, err := Put(ctx, d, "/crud/a/two", strings.NewReader("")); err != nil {
		t.Fatalf("Put of an empty object: %v", err)
	}
	got, err := d.GetContent(ctx, "/crud/a/one")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetContent: %d bytes, %v", len(got), err)
	}
	if got, err := d.GetContent(ctx, "/crud/a/two"); err != nil || len(got) != 0 {
		t.Fatalf("GetContent of the empty object: %q, %v", got, err)
	}
	fi, err := d.Stat(ctx, "/crud/a/one")
	if err != nil || fi.Size() != int64(len(data)) || fi.IsDir() || time.Since(fi.ModTime()) > time.Minute {
		t.Fatalf("Stat: %+v, %v", fi, err)
	}
	names, err := d.List(ctx, "/crud/a")
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"/crud/a/one", "/crud/a/two"}) {
		t.Fatalf("List: %v, %v", names, err)
	}
	if err := d.Delete(ctx, "/crud"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Stat(ctx, "/crud/a/one"); !isNotFound(err) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	assertNoTemp(t, d)
}

// assertNoTemp checks no upload was left behind.
func assertNoTemp(t *testing.T, d storagedriver.StorageDriver) {
	t.Helper()
	names, err := d.List(context.Background(), TempDir)
	if err != nil && !isNotFound(err) {
		t.Fatalf("List %s: %v", TempDir, err)
	}
	if len(names) > 0 {
		t.Fatalf("uploads left in %s: %v", TempDir, names)
	}
}

// slowReader yields data with a pause before each chunk of it.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
	left  int // bytes until the next pause
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.left == 0 {
		time.Sleep(r.pause)
		r.left = r.chunk
	}
	n := copy(p[:min(len(p), r.left)], r.data)
	r.data, r.left = r.data[n:], r.left-n
	return n, nil
}

// testAtomicPut reads a key over and over while a slow Put replaces it: a
// reader sees the old object or the new one, never a part, and a new key
// is absent until it is whole. 12 MiB goes over S3 as two parts.
func testAtomicPut(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	old := randomBytes(t, 1000)
	if _, err := Put(ctx, d, "/atomic/replaced", bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	next := randomBytes(t, 12<<20)
	for _, key := range []string{"/atomic/replaced", "/atomic/new"} {
		done := make(chan error, 1)
		go func() {
			_, err := Put(ctx, d, key, &slowReader{data: next, chunk: 512 << 10, pause: 20 * time.Millisecond})
			done <- err
		}()
		reads, olds := 0, 0
		for finished := false; !finished; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Put %s: %v", key, err)
				}
				finished = true
			default:
			}
			got, err := d.GetContent(ctx, key)
			reads++
			switch {
			case isNotFound(err) && key == "/atomic/new" && !finished:
				olds++
			case err != nil:
				t.Fatalf("read %d of %s: %v", reads, key, err)
			case bytes.Equal(got, old) && key == "/atomic/replaced" && !finished:
				olds++
			case bytes.Equal(got, next):
			default:
				t.Fatalf("read %d of %s saw %d bytes: neither the old object nor the whole new one", reads, key, len(got))
			}
			if fi, err := d.Stat(ctx, key); err == nil && fi.Size() != int64(len(old)) && fi.Size() != int64(len(next)) {
				t.Fatalf("Stat of %s during Put: size %d", key, fi.Size())
			}
			time.Sleep(2 * time.Millisecond) // leave the writer some of the two cores
		}
		if olds == 0 {
			t.Errorf("%s: no read happened during the Put (%d reads): the test proves nothing", key, reads)
		}
		t.Logf("%s: %d reads, %d before the new object appeared", key, reads, olds)
	}
	if err := d.Delete(ctx, "/atomic"); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, d)
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// testFailedPut cuts a Put after 11 MiB (S3 has one part uploaded): nothing
// appears at the key or in TempDir, and an old object stays.
func testFailedPut(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	cut := errors.New("source went away")
	_, err := Put(ctx, d, "/failed/new", &failingReader{data: randomBytes(t, 11<<20), err: cut})
	if !errors.Is(err, cut) {
		t.Fatalf("Put from a failing reader: %v, want the reader's error", err)
	}
	if _, err := d.Stat(ctx, "/failed/new"); !isNotFound(err) {
		t.Fatalf("key after a failed Put: %v, want not found", err)
	}
	old := []byte("old")
	if _, err := Put(ctx, d, "/failed/old", bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if _, err := Put(ctx, d, "/failed/old", &failingReader{data: randomBytes(t, 100), err: cut}); !errors.Is(err, cut) {
		t.Fatalf("Put over an object from a failing reader: %v", err)
	}
	if got, err := d.GetContent(ctx, "/failed/old"); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("old object after a failed Put: %q, %v", got, err)
	}
	if err := d.Delete(ctx, "/failed"); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, d)
}

func testCancel(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	u, err := NewUpload(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(t, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if u.Size() != 1<<20 {
		t.Errorf("Size = %d", u.Size())
	}
	if err := u.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Cancel(ctx); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
	if err := u.Commit(ctx, "/cancelled"); err == nil {
		t.Error("Commit after Cancel succeeded")
	}
	if _, err := d.Stat(ctx, "/cancelled"); !isNotFound(err) {
		t.Fatalf("key after Cancel: %v", err)
	}
	assertNoTemp(t, d)
}

// testLargeObject stores 40 MiB through an Upload that picks its key at
// Commit, as a content address: on S3 that is a four-part upload and a
// two-part multipart copy (above 32 MiB).
func testLargeObject(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	data := randomBytes(t, 40<<20)
	u, err := NewUpload(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Cancel(ctx)
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(u, h), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("/large/sha256/%x", h.Sum(nil))
	if err := u.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
	r, err := d.Reader(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	n, err := io.Copy(h2, r)
	r.Close()
	if err != nil || n != int64(len(data)) || !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Fatalf("read back %d bytes, %v; digest equal: %v", n, err, bytes.Equal(h.Sum(nil), h2.Sum(nil)))
	}
	if err := d.Delete(ctx, "/large"); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, d)
}

func testRangedRead(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	data := randomBytes(t, 3<<20+17)
	if _, err := Put(ctx, d, "/ranged/obj", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	for _, off := range []int64{0, 1, 1 << 20, size - 1, size, size + 100} {
		r, err := d.Reader(ctx, "/ranged/obj", off)
		if err != nil {
			t.Fatalf("Reader at %d: %v", off, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		want := data[min(off, size):]
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Reader at %d: %d bytes, %v; want %d bytes", off, len(got), err, len(want))
		}
	}
	// A range with an end, as a resumed download asks for.
	r, err := d.Reader(ctx, "/ranged/obj", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(r, 4096))
	r.Close()
	if err != nil || !bytes.Equal(got, data[1000:1000+4096]) {
		t.Fatalf("bounded range: %d bytes, %v", len(got), err)
	}
	if _, err := d.Reader(ctx, "/ranged/obj", -1); err == nil {
		t.Error("Reader at -1 succeeded")
	}
	if err := d.Delete(ctx, "/ranged"); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentWriters(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	const writers = 8
	objects := make([][]byte, writers)
	for i := range objects {
		objects[i] = randomBytes(t, (1+i%3)<<20+i)
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = Put(ctx, d, fmt.Sprintf("/concurrent/%d", i), &slowReader{data: objects[i], chunk: 256 << 10, pause: time.Millisecond})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	for i := range writers {
		got, err := d.GetContent(ctx, fmt.Sprintf("/concurrent/%d", i))
		if err != nil || !bytes.Equal(got, objects[i]) {
			t.Fatalf("object %d: %d bytes, %v; want %d bytes", i, len(got), err, len(objects[i]))
		}
	}
	names, err := d.List(ctx, "/concurrent")
	if err != nil || len(names) != writers {
		t.Fatalf("List: %v, %v", names, err)
	}
	if err := d.Delete(ctx, "/concurrent"); err != nil {
		t.Fatal(err)
	}
	assertNoTemp(t, d)
}

// testPurgeTemp leaves an upload as a crash would and purges it.
func testPurgeTemp(t *testing.T, d storagedriver.StorageDriver) {
	ctx := context.Background()
	if n, err := PurgeTemp(ctx, d, time.Now()); err != nil || n != 0 {
		t.Fatalf("PurgeTemp with nothing to purge: %d, %v", n, err)
	}
	left := TempDir + "/left-by-a-crash"
	if err := d.PutContent(ctx, left, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	if n, err := PurgeTemp(ctx, d, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeTemp of older uploads: %d, %v; want the young one kept", n, err)
	}
	if n, err := PurgeTemp(ctx, d, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("PurgeTemp: %d, %v; want 1", n, err)
	}
	assertNoTemp(t, d)
}

// TestIntegrationOpenErrors: Open fails at start, clearly, when S3 is not
// there or refuses us, and never shows the secret.
func TestIntegrationOpenErrors(t *testing.T) {
	s := s3test.Start(t)
	s.Setenv(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close() // nothing listens there now

	tests := []struct {
		name   string
		cfg    Config
		secret string // AWS_SECRET_ACCESS_KEY for this case
		want   []string
	}{
		{"endpoint down", Config{Bucket: s.Bucket, Prefix: "p", Region: s.Region, Endpoint: down, PathStyle: true}, s.SecretKey,
			[]string{"s3://" + s.Bucket + "/p", "endpoint " + down, "S3 endpoint unreachable", "connection refused", "check the endpoint"}},
		{"no such bucket", Config{Bucket: "no-such-bucket", Region: s.Region, Endpoint: s.Endpoint, PathStyle: true}, s.SecretKey,
			[]string{"s3://no-such-bucket/", "endpoint " + s.Endpoint, "bucket does not exist"}},
		{"wrong secret", Config{Bucket: s.Bucket, Region: s.Region, Endpoint: s.Endpoint, PathStyle: true}, "wrong-secret-0123456789",
			[]string{"s3://" + s.Bucket + "/", "credentials refused (SignatureDoesNotMatch)", "AWS_SECRET_ACCESS_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", tt.secret)
			start := time.Now()
			_, err := Open(ctx, tt.cfg, "")
			if err == nil {
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, tt.secret) || strings.Contains(msg, "\n") {
				t.Errorf("error %q shows the secret or spans lines", msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %s to fail", d)
			}
			t.Log(msg)
		})
	}
}

// TestIntegrationS3DownWhileRunning: with S3 gone, uploads fail promptly
// and leave nothing; when it is back the same driver works again.
func TestIntegrationS3DownWhileRunning(t *testing.T) {
	s, d := openS3(t)
	ctx := context.Background()
	if _, err := Put(ctx, d, "/down/before", strings.NewReader("before")); err != nil {
		t.Fatal(err)
	}

	// Stop in the middle of an upload: one part is in, the rest fails.
	u, err := NewUpload(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(t, 11<<20)); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	start := time.Now()
	if err := u.Commit(ctx, "/down/cut"); err == nil {
		t.Fatal("Commit with S3 down succeeded")
	} else {
		t.Logf("Commit with S3 down: %v", err)
	}
	if _, err := Put(ctx, d, "/down/during", strings.NewReader("during")); err == nil {
		t.Fatal("Put with S3 down succeeded")
	}
	if _, err := d.GetContent(ctx, "/down/before"); err == nil || isNotFound(err) {
		t.Fatalf("read with S3 down: %v; want an error that is not 'not found'", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing with S3 down took %s", took)
	}

	s.Restart()
	if got, err := d.GetContent(ctx, "/down/before"); err != nil || string(got) != "before" {
		t.Fatalf("read after S3 came back: %q, %v", got, err)
	}
	for _, key := range []string{"/down/cut", "/down/during"} {
		if _, err := d.Stat(ctx, key); !isNotFound(err) {
			t.Errorf("%s after the failed upload: %v; want not found", key, err)
		}
	}
	if _, err := Put(ctx, d, "/down/after", strings.NewReader("after")); err != nil {
		t.Fatalf("Put after S3 came back: %v", err)
	}
	if n, err := PurgeTemp(ctx, d, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("PurgeTemp: %v (%d)", err, n)
	}
	assertNoTemp(t, d)
}
