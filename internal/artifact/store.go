// Package artifact keeps run artifacts content-addressed by SHA-256. The
// store is on the data directory by default, on S3 with --blob-store.
package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/blob"
)

// Store keeps blobs content-addressed under /artifacts/sha256/ab/<sum>
// of a blob store: the data directory, or S3 (see package blob).
type Store struct {
	Driver storagedriver.StorageDriver

	// sweep is held exclusively while DeleteUnnamed decides on and deletes
	// a blob, and shared by PutRecorded from finding a blob stored to the
	// caller recording its row: so a blob that a new row is about to name
	// (Put found the content already stored) is never deleted in between.
	sweep sync.RWMutex
}

func key(sum string) string { return "/artifacts/sha256/" + sum[:2] + "/" + sum }

// TempDir holds artifact uploads in progress, inside the artifacts'
// namespace so a store on a mount of its own renames within it.
const TempDir = "/artifacts/_tmp"

// Put stores the content of r and returns its digest and size. The blob
// is visible under its digest only once whole (blob.Upload), so a reader
// never sees part of one; a full disk or an S3 outage surfaces here.
// A caller that records the digest where DeleteUnnamed looks uses
// PutRecorded.
func (s *Store) Put(ctx context.Context, r io.Reader) (string, int64, error) {
	return s.PutRecorded(ctx, r, nil)
}

// smallPut is the size up to which an artifact on S3 is read into memory,
// hashed, and stored under its digest with one PutObject, which S3 shows
// only once complete: no multipart upload and no temporary key to copy
// from (a 100 KiB put was 9 S3 requests; now the dedupe Stat's and one).
const smallPut = 4 << 20

// PutRecorded is Put that calls record (unless nil) with the digest and
// size once the blob is stored, before DeleteUnnamed may look at it again;
// an error from record is PutRecorded's.
func (s *Store) PutRecorded(ctx context.Context, r io.Reader, record func(sum string, size int64) error) (string, int64, error) {
	var small *bytes.Buffer
	if s.Driver.Name() == "s3aws" {
		small = new(bytes.Buffer)
		if _, err := io.CopyN(small, r, smallPut+1); err != nil && !errors.Is(err, io.EOF) {
			return "", 0, fmt.Errorf("store artifact: %w", err)
		}
		if small.Len() > smallPut {
			r, small = io.MultiReader(small, r), nil
		}
	}
	var (
		sum           string
		n             int64
		commit        func() error
		cancel        = func() {}
		withoutCancel = context.WithoutCancel(ctx)
	)
	if small != nil {
		h := sha256.Sum256(small.Bytes())
		sum, n = hex.EncodeToString(h[:]), int64(small.Len())
		commit = func() error { return s.Driver.PutContent(ctx, key(sum), small.Bytes()) }
	} else {
		u, err := blob.NewUploadIn(ctx, s.Driver, TempDir)
		if err != nil {
			return "", 0, fmt.Errorf("store artifact: %w", blob.Explain(err))
		}
		h := sha256.New()
		if n, err = io.Copy(io.MultiWriter(u, h), r); err != nil {
			u.Cancel(withoutCancel)
			return "", 0, fmt.Errorf("store artifact: %w", blob.Explain(err))
		}
		sum = hex.EncodeToString(h.Sum(nil))
		commit = func() error { return u.Commit(ctx, key(sum)) }
		cancel = func() { u.Cancel(withoutCancel) }
	}
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if fi, err := s.Driver.Stat(ctx, key(sum)); err == nil && fi.Size() == n {
		cancel() // the same content is stored already
	} else if err := commit(); err != nil {
		return "", 0, fmt.Errorf("store artifact: %w", blob.Explain(err))
	}
	if record != nil {
		if err := record(sum, n); err != nil {
			return "", 0, err
		}
	}
	return sum, n, nil
}

// DeleteUnnamed deletes the blob with the given digest unless named
// reports that something still names it, and returns the bytes freed
// (0 when it was kept or already gone). No PutRecorded is between storing
// a blob and recording it meanwhile, so named sees every such record.
func (s *Store) DeleteUnnamed(ctx context.Context, sum string, named func(context.Context) (bool, error)) (int64, error) {
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return 0, fmt.Errorf("artifact digest %q is not a SHA-256", sum)
	}
	s.sweep.Lock()
	defer s.sweep.Unlock()
	// Every put waits while this holds the lock: a store that stalls must
	// not hold them for longer than this.
	ctx, cancel := context.WithTimeout(ctx, sweepTimeout)
	defer cancel()
	if used, err := named(ctx); err != nil || used {
		return 0, err
	}
	var nf storagedriver.PathNotFoundError
	fi, err := s.Driver.Stat(ctx, key(sum))
	if errors.As(err, &nf) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("artifact %s: %w", sum[:12], blob.Explain(err))
	}
	if err := s.Driver.Delete(ctx, key(sum)); err != nil && !errors.As(err, &nf) {
		return 0, fmt.Errorf("delete artifact %s: %w", sum[:12], blob.Explain(err))
	}
	return fi.Size(), nil
}

// sweepTimeout bounds one DeleteUnnamed, lock held.
const sweepTimeout = 30 * time.Second

// Open returns the blob with the given digest.
func (s *Store) Open(ctx context.Context, sum string) (io.ReadCloser, error) {
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("artifact digest %q is not a SHA-256", sum)
	}
	rc, err := s.Driver.Reader(ctx, key(sum), 0)
	if err != nil {
		var nf storagedriver.PathNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("artifact %s: %w", sum[:12], fs.ErrNotExist)
		}
		return nil, fmt.Errorf("artifact %s: %w", sum[:12], blob.Explain(err))
	}
	return rc, nil
}

// maxNameLen is the longest artifact name, as in CodePipeline.
const maxNameLen = 100

var nameChars = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// ValidName checks an artifact name against CodePipeline's rule: letters,
// digits, _ and -, at most 100 characters. Names become directory names in
// work directories, so the rule also keeps them from naming a path.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("artifact name is empty; use letters, digits, _ and -, at most %d characters", maxNameLen)
	}
	if len(name) > maxNameLen || !nameChars.MatchString(name) {
		return fmt.Errorf("artifact name %q is not valid; use letters, digits, _ and -, at most %d characters", name, maxNameLen)
	}
	return nil
}

// File is one file to pack: its name inside the archive and where to read
// it (a host path for Pack, a name inside the root for PackRoot).
type File struct{ Name, Path string }

// Pack writes the files as a tar stream, reading each File.Path on the
// host. A symlink is stored as a link, never followed; but symlinks in the
// directories above a Path are followed. When the files come from a
// directory a build can write to, use PackRoot, so that a symlink the build
// planted cannot make Pack read files outside that directory.
func Pack(w io.Writer, files []File) error { return pack(w, hostFiles{}, files) }

// PackRoot is Pack reading every File.Path as a name relative to root
// (slash- or OS-separated). Like every os.Root method it follows a symlink
// only while the symlink stays inside root, so a planted link to a
// directory outside makes PackRoot fail instead of reading there:
//
//	root, err := os.OpenRoot(buildDir)
//	if err != nil { ... }
//	defer root.Close()
//	err = artifact.PackRoot(w, root, files) // files[i].Path relative to buildDir
func PackRoot(w io.Writer, root *os.Root, files []File) error { return pack(w, rootFiles{root}, files) }

// source is where pack reads files: the host (Pack) or an *os.Root (PackRoot).
type source interface {
	Lstat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
	Open(name string) (*os.File, error)
}

type hostFiles struct{}

func (hostFiles) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }
func (hostFiles) Readlink(name string) (string, error)   { return os.Readlink(name) }
func (hostFiles) Open(name string) (*os.File, error)     { return os.OpenFile(name, openFlags, 0) }

// openFlags open what Lstat saw as a regular file: a FIFO swapped in since
// would make a plain open wait forever for a writer, and a link would be
// followed.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOFOLLOW

type rootFiles struct{ *os.Root }

func (r rootFiles) Open(name string) (*os.File, error) { return r.Root.OpenFile(name, openFlags, 0) }

func pack(w io.Writer, src source, files []File) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		if err := packFile(tw, src, f); err != nil {
			return err
		}
	}
	return tw.Close()
}

func packFile(tw *tar.Writer, src source, f File) error {
	st, err := src.Lstat(f.Path)
	if err != nil {
		return err
	}
	// Unpack refuses anything else; failing here names the action that made it.
	if st.Mode()&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0 {
		return fmt.Errorf("pack %s: it is a %s; artifacts hold files, directories and links only", f.Path, fileKind(st.Mode()))
	}
	hdr, err := tar.FileInfoHeader(st, "")
	if err != nil {
		return err
	}
	hdr.Name = filepath.ToSlash(f.Name)
	if st.Mode()&fs.ModeSymlink != 0 {
		if hdr.Linkname, err = src.Readlink(f.Path); err != nil {
			return err
		}
	}
	if !st.Mode().IsRegular() {
		return tw.WriteHeader(hdr)
	}
	in, err := src.Open(f.Path)
	if err != nil {
		return err
	}
	defer in.Close()
	// A build still running could swap the file for a symlink after Lstat;
	// Open would follow it, so check that it opened what Lstat saw.
	if ost, err := in.Stat(); err != nil || !os.SameFile(st, ost) {
		return fmt.Errorf("pack %s: the file changed while it was being packed", f.Path)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, in); err != nil {
		return fmt.Errorf("pack %s: %w", f.Path, err)
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// EntryError is an archive entry Unpack refuses, and why.
type EntryError struct {
	Name   string // as the archive spells it
	Reason string
}

func (e *EntryError) Error() string { return fmt.Sprintf("artifact entry %q %s", e.Name, e.Reason) }

// Unpack extracts a tar stream into dir, creating dir if needed. Every file
// operation goes through an os.Root at dir, so nothing outside dir is
// written or followed; and entries are refused, with an *EntryError, when
// they are absolute or climb out with "..", are devices or FIFOs, are hard
// links to anything but a regular file inside, are symlinks that could
// lead outside, or would be written through (or replace) a symlink,
// whether the archive made it or it was there before.
func Unpack(r io.Reader, dir string) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := &unpacker{root: root, dirs: map[string]bool{".": true}, links: map[string]string{}}
	// A symlink that stayed inside when it was made may lead out through a
	// symlink that was already in dir; check them all again at the end,
	// even after an error, so that none is left behind.
	defer func() {
		if lerr := u.recheckLinks(); err == nil {
			err = lerr
		}
	}()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read artifact: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return err
		}
	}
}

type unpacker struct {
	root *os.Root
	// dirs are paths known to be directories, not symlinks: those Unpack
	// made or checked.
	dirs map[string]bool
	// links are the symlinks made, by path, with their entry names.
	links map[string]string
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader) error {
	refuse := func(format string, args ...any) error {
		return &EntryError{Name: hdr.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // git archive's commit id
	}
	raw := filepath.FromSlash(hdr.Name)
	if !filepath.IsLocal(raw) {
		return refuse("is not a relative path inside the target directory")
	}
	name := filepath.Clean(raw)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.parents(hdr.Name, name); err != nil {
			return err
		}
		if err := u.notSymlink(hdr.Name, name); err != nil {
			return err
		}
		if err := u.root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		u.dirs[name] = true
		return nil
	case tar.TypeReg:
		if err := u.prepare(hdr.Name, name); err != nil {
			return err
		}
		// O_EXCL: a symlink that appeared since prepare is not followed.
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(hdr.Mode)&0o777|0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		if filepath.IsAbs(hdr.Linkname) || strings.HasPrefix(hdr.Linkname, "/") || filepath.VolumeName(hdr.Linkname) != "" {
			return refuse("is a symlink to the absolute path %q", hdr.Linkname)
		}
		if reason := linkTargetProblem(name, hdr.Linkname); reason != "" {
			return refuse("is a symlink to %q, %s", hdr.Linkname, reason)
		}
		if err := u.parents(hdr.Name, name); err != nil {
			return err
		}
		if err := u.notSymlink(hdr.Name, name); err != nil {
			return err
		}
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		u.links[name] = hdr.Name
		return u.checkLink(name, hdr.Name)
	case tar.TypeLink:
		old := filepath.FromSlash(hdr.Linkname)
		if !filepath.IsLocal(old) {
			return refuse("is a hard link to %q, outside the target directory", hdr.Linkname)
		}
		old = filepath.Clean(old)
		link, err := u.symlinkAbove(old)
		if err != nil {
			return err
		}
		if link != "" {
			return refuse("is a hard link through the symlink %q", filepath.ToSlash(link))
		}
		if st, err := u.root.Lstat(old); err != nil {
			return fmt.Errorf("artifact entry %q: %w", hdr.Name, err)
		} else if !st.Mode().IsRegular() {
			return refuse("is a hard link to %q, which is not a regular file", hdr.Linkname)
		}
		if err := u.prepare(hdr.Name, name); err != nil {
			return err
		}
		return u.root.Link(old, name)
	case tar.TypeChar:
		return refuse("is a character device; artifacts hold files, directories and links only")
	case tar.TypeBlock:
		return refuse("is a block device; artifacts hold files, directories and links only")
	case tar.TypeFifo:
		return refuse("is a FIFO; artifacts hold files, directories and links only")
	default:
		return refuse("has the unsupported type %q; artifacts hold files, directories and links only", hdr.Typeflag)
	}
}

// prepare makes name's directories and clears the way for a new file
// there: an earlier file of that name is removed, so that a hard link to
// it is not written through; a symlink or a directory is refused.
func (u *unpacker) prepare(entry, name string) error {
	if err := u.parents(entry, name); err != nil {
		return err
	}
	st, err := u.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		return &EntryError{Name: entry, Reason: "would replace the symlink already there"}
	case st.IsDir():
		return &EntryError{Name: entry, Reason: "would replace the directory already there"}
	}
	return u.root.Remove(name)
}

// notSymlink refuses an entry whose path is already a symlink.
func (u *unpacker) notSymlink(entry, name string) error {
	st, err := u.root.Lstat(name)
	if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return &EntryError{Name: entry, Reason: "would replace the symlink already there"}
	}
	return nil
}

// parents refuses an entry with a symlink among the directories above it,
// then makes the missing ones.
func (u *unpacker) parents(entry, name string) error {
	parent := filepath.Dir(name)
	if u.dirs[parent] {
		return nil
	}
	link, err := u.symlinkAbove(name)
	if err != nil {
		return err
	}
	if link != "" {
		return &EntryError{Name: entry, Reason: fmt.Sprintf("would be written through the symlink %q", filepath.ToSlash(link))}
	}
	if err := u.root.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("artifact entry %q: %w", entry, err)
	}
	for p := parent; p != "."; p = filepath.Dir(p) {
		u.dirs[p] = true
	}
	return nil
}

// symlinkAbove returns the first symlink among the directories above name,
// or "" if there is none up to the first one missing.
func (u *unpacker) symlinkAbove(name string) (string, error) {
	parent := filepath.Dir(name)
	if parent == "." {
		return "", nil
	}
	p := ""
	for part := range strings.SplitSeq(parent, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if u.dirs[p] {
			continue
		}
		st, err := u.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil // MkdirAll makes the rest as directories
		}
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return p, nil
		}
		if st.IsDir() {
			u.dirs[p] = true
		}
	}
	return "", nil
}

// linkTargetProblem says why a symlink at name to the relative path target
// could lead outside the target directory, judging the text alone, or "" if it stays
// inside. Every ".." must come first, so that it climbs from the link's
// own directory (which holds no symlink: parents sees to that) and not
// from wherever a symlink on the way leads: with a -> ., "a/.." is the
// parent of the target directory. The names after the ".." only descend,
// and a symlink among them was itself checked when it was made.
func linkTargetProblem(name, target string) string {
	if target == "" {
		return "which is empty"
	}
	ups, descended := 0, false
	for part := range strings.SplitSeq(filepath.FromSlash(target), string(filepath.Separator)) {
		switch part {
		case "", ".":
		case "..":
			if descended {
				return "which climbs after descending; write ../b rather than a/../../b, as a symlink on the way could lead anywhere"
			}
			ups++
		default:
			descended = true
		}
	}
	depth := 0
	if d := filepath.Dir(name); d != "." {
		depth = strings.Count(d, string(filepath.Separator)) + 1
	}
	if ups > depth {
		return "outside the target directory"
	}
	return ""
}

// checkLink removes the symlink at name and refuses its entry if os.Root
// cannot follow it without leaving the directory.
func (u *unpacker) checkLink(name, entry string) error {
	target, _ := u.root.Readlink(name)
	_, err := u.root.Stat(name)
	// Nothing found at the end, a loop, or a file used as a directory:
	// the link reaches nothing, inside or out.
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	u.root.Remove(name)
	delete(u.links, name)
	return &EntryError{Name: entry, Reason: fmt.Sprintf("is a symlink to %q, which leads outside the target directory (%v)", target, err)}
}

// recheckLinks runs checkLink on every symlink made, in order of name.
func (u *unpacker) recheckLinks() error {
	var first error
	for _, name := range slices.Sorted(maps.Keys(u.links)) {
		if err := u.checkLink(name, u.links[name]); err != nil && first == nil {
			first = err
		}
	}
	return first
}
