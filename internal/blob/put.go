package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// TempDir holds uploads in progress. Nothing in it is a finished blob;
// PurgeTemp removes what a crash left there.
const TempDir = "/_tmp"

// Upload writes one object so that it is visible only when complete: the
// bytes go to a fresh key under TempDir, and Commit moves them onto the
// final key. Readers of the final key see the old object or the new one,
// never a part (an artifact mid-upload, an upload cut by a crash or by S3
// going down). The final key may also be chosen only at Commit, as a
// content address is.
//
// Why both steps are needed, driver by driver:
//   - filesystem: Writer writes into the named file as bytes arrive, so the
//     final file would show a growing prefix. Move is os.Rename, which
//     replaces the final file in one step (same file system: TempDir is
//     inside the same root).
//   - s3-aws: Writer is a multipart upload that S3 shows only at
//     CompleteMultipartUpload, and Move is a server-side CopyObject (a
//     multipart copy above 32 MiB), also shown only when complete, then a
//     Delete of the source. The temporary key costs a copy but lets the
//     key be chosen after the bytes are written.
//
// If Move fails after its copy (S3 gone between the two requests), the
// final key holds the whole object and the temporary one is left for
// PurgeTemp; Commit reports the error.
type Upload struct {
	d    storagedriver.StorageDriver
	tmp  string
	w    storagedriver.FileWriter
	size int64 // the S3 writer counts only the parts it has sent
	done bool
}

// NewUpload starts an upload; ctx covers the writes until Commit or Cancel.
func NewUpload(ctx context.Context, d storagedriver.StorageDriver) (*Upload, error) {
	return NewUploadIn(ctx, d, TempDir)
}

// NewUploadIn is NewUpload with the upload in progress under tempDir: one
// inside the final key's own namespace keeps both on one file system when
// that namespace is a mount of its own (os.Rename cannot cross mounts).
func NewUploadIn(ctx context.Context, d storagedriver.StorageDriver, tempDir string) (*Upload, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	// The start time in the name tells a person how old a leftover is.
	tmp := path.Join(tempDir, fmt.Sprintf("%d-%s", time.Now().Unix(), hex.EncodeToString(b[:])))
	w, err := d.Writer(ctx, tmp, false)
	if err != nil {
		return nil, fmt.Errorf("start upload: %w", Explain(err))
	}
	return &Upload{d: d, tmp: tmp, w: w}, nil
}

// Write appends to the upload.
func (u *Upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, errors.New("upload already committed or cancelled")
	}
	n, err := u.w.Write(p)
	u.size += int64(n)
	if err != nil {
		return n, Explain(err)
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (u *Upload) Size() int64 { return u.size }

// Commit makes the written bytes the object at key, replacing any object
// there. After an error key holds its old object, or the whole new one if
// only the removal of the temporary key failed (see Upload); never a part.
func (u *Upload) Commit(ctx context.Context, key string) error {
	if u.done {
		return errors.New("upload already committed or cancelled")
	}
	u.done = true
	if err := u.w.Commit(ctx); err != nil {
		_ = u.w.Cancel(ctx)
		return fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	if err := u.w.Close(); err != nil {
		_ = u.d.Delete(ctx, u.tmp)
		return fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	if err := u.d.Move(ctx, u.tmp, key); err != nil {
		// After a failed Move the temporary object may still be there.
		_ = u.d.Delete(ctx, u.tmp)
		return fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	return nil
}

// Cancel abandons the upload; it does nothing after Commit or Cancel, so it
// can be deferred.
func (u *Upload) Cancel(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	// Cancel removes the file (filesystem) or aborts the multipart upload
	// (S3); Close after it would try to flush into what is gone.
	return u.w.Cancel(ctx)
}

// Put stores everything r yields at key, visible only once complete, and
// returns the number of bytes stored.
func Put(ctx context.Context, d storagedriver.StorageDriver, key string, r io.Reader) (int64, error) {
	if d.Name() == "s3aws" {
		// S3 shows an object only once its upload completes, so the key can
		// be written directly: no temporary key, no copy (a fifth of a
		// large put's time, a third of a small one's, on loopback).
		return putDirect(ctx, d, key, r)
	}
	u, err := NewUpload(ctx, d)
	if err != nil {
		return 0, err
	}
	defer u.Cancel(context.WithoutCancel(ctx))
	n, err := io.Copy(u, r)
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", key, err)
	}
	return n, u.Commit(ctx, key)
}

func putDirect(ctx context.Context, d storagedriver.StorageDriver, key string, r io.Reader) (int64, error) {
	w, err := d.Writer(ctx, key, false)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	n, err := io.Copy(w, r)
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		_ = w.Cancel(context.WithoutCancel(ctx)) // aborts the multipart upload: nothing shows
		return n, fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	if err := w.Close(); err != nil {
		return n, fmt.Errorf("upload %s: %w", key, Explain(err))
	}
	return n, nil
}

// PurgeTemp deletes uploads under TempDir last written before cutoff: those
// of a crashed or restarted server. (An S3 upload cut before Commit is an
// incomplete multipart upload, invisible to List; a bucket lifecycle rule
// with AbortIncompleteMultipartUpload removes those.)
func PurgeTemp(ctx context.Context, d storagedriver.StorageDriver, cutoff time.Time) (int, error) {
	return PurgeTempIn(ctx, d, TempDir, cutoff)
}

// PurgeTempIn is PurgeTemp for the uploads NewUploadIn started in tempDir.
func PurgeTempIn(ctx context.Context, d storagedriver.StorageDriver, tempDir string, cutoff time.Time) (int, error) {
	names, err := d.List(ctx, tempDir)
	if err != nil {
		var nf storagedriver.PathNotFoundError
		if errors.As(err, &nf) {
			return 0, nil
		}
		return 0, err
	}
	n := 0
	for _, name := range names {
		fi, err := d.Stat(ctx, name)
		if err != nil || fi.IsDir() || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := d.Delete(ctx, name); err != nil {
			var nf storagedriver.PathNotFoundError
			if !errors.As(err, &nf) {
				return n, err
			}
		}
		n++
	}
	return n, nil
}
