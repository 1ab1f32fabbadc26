//go:build !unix

package datadir

import "os"

// lockFile cannot lock here; one process per data directory is then up to
// whoever starts them.
func lockFile(*os.File) error { return nil }
