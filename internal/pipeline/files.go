package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/slipway-dev/slipway/internal/build"
)

// MaxSpecBytes caps a file Slipway parses from an artifact (buildspec,
// task definition, appspec, imageDetail.json): a 20 MB YAML file took the
// server from 54 MB to 845 MB of memory.
const MaxSpecBytes = 1 << 20

// readSpecFile reads name inside dir: never through a link that leads out
// of dir, and never more than MaxSpecBytes (a *build.TooLargeError). A
// missing file is fs.ErrNotExist.
func readSpecFile(dir, name string) ([]byte, error) {
	return readSpecFileLimit(dir, name, MaxSpecBytes)
}

// readSpecFileLimit is readSpecFile with its own size limit.
func readSpecFileLimit(dir, name string, limit int64) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Non-blocking: a FIFO where the file should be would hold the open
	// forever; ReadRegular then refuses it.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return build.ReadRegular(f, name, limit)
}

// isMissing is true for a file that is not there (as opposed to one that
// is there but refused).
func isMissing(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// realDirs checks that every part of rel below dir is a directory, not a
// link: the host path dir/rel is then where the build's own files are, and
// a link the build left (src/a -> /var/lib) cannot turn a cache save into
// a copy of the host's files. The build has ended, so nothing changes them
// meanwhile.
func realDirs(dir, rel string) error {
	cur := dir
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(rel)), "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory of the source (a link or a file); caches hold directories", rel)
		}
	}
	return nil
}
