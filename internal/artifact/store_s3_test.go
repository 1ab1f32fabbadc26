package artifact

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/blob/s3test"
)

// Put on both drivers, around the size where S3 puts switch from one
// PutObject to an upload and a move: every blob reads back whole under its
// digest, a second put of the same bytes stores nothing new, and no
// upload is left in progress. (versitygw, a real S3 server that checks
// signatures, on loopback.)
func TestIntegrationPutOnBothDrivers(t *testing.T) {
	ctx := context.Background()
	fsd, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s3 := s3test.Start(t)
	s3.Setenv(t)
	cfg, err := blob.Parse(s3.URL("artifact-test"))
	if err != nil {
		t.Fatal(err)
	}
	s3d, err := blob.Open(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []storagedriver.StorageDriver{fsd, s3d} {
		st := &Store{Driver: d}
		for _, size := range []int{0, 100 << 10, smallPut, smallPut + 1, 6 << 20} {
			b := make([]byte, size)
			_, _ = rand.Read(b)
			h := sha256.Sum256(b)
			want := hex.EncodeToString(h[:])
			for range 2 { // the second put finds the blob stored
				sum, n, err := st.Put(ctx, bytes.NewReader(b))
				if err != nil || sum != want || n != int64(size) {
					t.Fatalf("%s: Put of %d bytes = %s, %d, %v; want %s", d.Name(), size, sum, n, err, want)
				}
			}
			rc, err := st.Open(ctx, want)
			if err != nil {
				t.Fatalf("%s: Open %d bytes: %v", d.Name(), size, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: read back %d of %d bytes (%v)", d.Name(), len(got), size, err)
			}
		}
		left, err := d.List(ctx, TempDir)
		var nf storagedriver.PathNotFoundError
		if err != nil && !errors.As(err, &nf) || len(left) > 0 {
			t.Fatalf("%s: uploads left in %s: %v (%v)", d.Name(), TempDir, left, err)
		}
	}
}

// A reader that fails part way stores nothing, on S3 below the size of
// one PutObject too.
func TestIntegrationFailedPutStoresNothingOnS3(t *testing.T) {
	ctx := context.Background()
	s3 := s3test.Start(t)
	s3.Setenv(t)
	cfg, err := blob.Parse(s3.URL("artifact-fail"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := blob.Open(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	st := &Store{Driver: d}
	for _, size := range []int{100 << 10, smallPut + 1} {
		r := io.MultiReader(io.LimitReader(rand.Reader, int64(size)), iotest.ErrReader(errors.New("the client went away")))
		if _, _, err := st.Put(ctx, r); err == nil {
			t.Fatalf("a put of %d bytes whose reader failed succeeded", size)
		}
	}
	if left, err := d.List(ctx, "/artifacts"); err == nil && len(left) > 0 {
		t.Fatalf("a failed put left %v", left)
	}
}
