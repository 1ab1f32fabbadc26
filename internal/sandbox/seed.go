package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// GoCacheSeed is the server user's Go build cache: compiled standard
// library packages that every Go build needs, about 30 s of compiling on
// two cores for an app's first build.
func GoCacheSeed() string {
	if d := os.Getenv("GOCACHE"); d != "" && d != "off" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "go-build")
	}
	return ""
}

// seedGoCache fills a new build home's Go build cache with hard links to
// seed's files, so an app's first build does not compile the standard
// library again. The links share the seed's files, which stay owned by
// the server's user and read-only to the build user: a build can add,
// remove or replace entries in its own cache (its directories are the
// build's), never change a file another app or the host reads. So it is
// done only when the build runs as another user than the files' owner
// (the server is root), and only when the seed is on the same file system.
func seedGoCache(home, seed string) (int, error) {
	if seed == "" || os.Geteuid() != 0 {
		return 0, nil
	}
	dst := filepath.Join(home, ".cache", "go-build")
	if _, err := os.Lstat(dst); err == nil {
		return 0, nil // seeded by an earlier build, or the build's own
	}
	fi, err := os.Stat(seed)
	if err != nil || !fi.IsDir() {
		return 0, nil
	}
	if !sameDevice(fi, home) {
		return 0, nil
	}
	mkdir := func(p string) error {
		if err := os.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		return os.Lchown(p, BuildUID, BuildUID)
	}
	// The tree is made beside the home, where no build can reach, and
	// moved in at the end: nothing a build left in its home (a link where
	// .cache goes) can steer where the server creates, chmods or chowns.
	// Two actions of one app may start at once: each fills a directory of
	// its own and the first rename wins.
	tmp, err := os.MkdirTemp(filepath.Dir(home), "."+filepath.Base(home)+".go-build-")
	if err != nil {
		return 0, fmt.Errorf("seed the Go build cache: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return 0, err
	}
	if err := os.Lchown(tmp, BuildUID, BuildUID); err != nil {
		return 0, err
	}
	n := 0
	err = filepath.WalkDir(seed, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cache being trimmed meanwhile: what is left still helps
		}
		rel, _ := filepath.Rel(seed, path)
		target := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			if rel == "." {
				return nil
			}
			return mkdir(target)
		case d.Type().IsRegular():
			if filepath.Dir(rel) == "." {
				return nil // the cache's own bookkeeping (trim.txt), which go rewrites in place
			}
			if info, err := d.Info(); err != nil || info.Mode().Perm()&0o022 != 0 {
				return nil // a file others may write is no seed
			}
			if os.Link(path, target) == nil {
				n++
			}
		}
		return nil
	})
	if err == nil {
		err = mkdir(filepath.Join(home, ".cache"))
	}
	if err == nil {
		if fi, lerr := os.Lstat(filepath.Join(home, ".cache")); lerr != nil || !fi.IsDir() {
			err = fmt.Errorf("%s/.cache is not a directory", home)
		}
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Lstat(dst); serr == nil {
			return 0, nil // another action of the app seeded it first
		}
		return 0, fmt.Errorf("seed the Go build cache: %w", err)
	}
	return n, nil
}

func sameDevice(fi fs.FileInfo, other string) bool {
	oi, err := os.Stat(other)
	if err != nil {
		return false
	}
	a, ok1 := fi.Sys().(*syscall.Stat_t)
	b, ok2 := oi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Dev == b.Dev
}
