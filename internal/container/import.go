package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/docker/docker/api/types/image"
)

var (
	importMu sync.Mutex
	imported = map[string]bool{} // refs known to be in the engine
)

// ImportOnce makes sure the engine has image ref, importing it from rootfs
// (a tar archive) with the Dockerfile-style changes when it does not: the
// images Slipway makes offline (the build sandbox's, the task namespace
// holder's) need no pull. what names the image in errors. Once found or
// made, a ref is not asked for again.
func (e *Engine) ImportOnce(ctx context.Context, ref string, rootfs []byte, changes []string, what string) error {
	importMu.Lock()
	defer importMu.Unlock()
	if imported[ref] {
		return nil
	}
	if _, err := e.cli.ImageInspect(ctx, ref); err == nil {
		imported[ref] = true
		return nil
	}
	rc, err := e.cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, ref,
		image.ImportOptions{Changes: changes, Message: what})
	if err != nil {
		return fmt.Errorf("make %s: %w", what, err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("make %s: %w", what, err)
	}
	imported[ref] = true
	return nil
}
