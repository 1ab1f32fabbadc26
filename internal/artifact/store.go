// Package artifact keeps run artifacts content-addressed by SHA-256. The
// filesystem store is the default; an S3 store can implement the same methods.
package artifact

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS stores blobs under Root/sha256/ab/abcdef….
type FS struct{ Root string }

// Put stores the content of r and returns its digest and size. It writes to
// a temporary file, syncs and renames, so a blob is either whole or absent;
// a full disk surfaces as an error here.
func (s *FS) Put(r io.Reader) (string, int64, error) {
	tmpDir := filepath.Join(s.Root, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("store artifact: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("store artifact: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := s.path(sum)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", 0, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", 0, fmt.Errorf("store artifact: %w", err)
	}
	return sum, n, nil
}

// Open returns the blob with the given digest.
func (s *FS) Open(sum string) (io.ReadCloser, error) {
	if len(sum) != 64 {
		return nil, fmt.Errorf("artifact digest %q is not a SHA-256", sum)
	}
	return os.Open(s.path(sum))
}

func (s *FS) path(sum string) string {
	return filepath.Join(s.Root, "sha256", sum[:2], sum)
}

// File is one file to pack: its path inside the archive and on disk.
type File struct{ Name, Path string }

// Pack writes the files as a tar stream.
func Pack(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		st, err := os.Lstat(f.Path)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(st, "")
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if hdr.Linkname, err = os.Readlink(f.Path); err != nil {
				return err
			}
		}
		hdr.Name = filepath.ToSlash(f.Name)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if st.Mode().IsRegular() {
			in, err := os.Open(f.Path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, in)
			in.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// Unpack extracts a tar stream into dir, refusing entries that would land outside it.
func Unpack(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read artifact: %w", err)
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("artifact entry %q points outside the workspace", hdr.Name)
		}
		dst := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(hdr.Mode)&0o777|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if strings.HasPrefix(hdr.Linkname, "/") || !filepath.IsLocal(filepath.Join(filepath.Dir(name), hdr.Linkname)) {
				return fmt.Errorf("artifact symlink %q points outside the workspace", hdr.Name)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader:
		default:
			// git archive emits only the kinds above; skip devices and the like.
		}
	}
}
