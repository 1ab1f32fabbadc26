package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/container"
)

// removeAppLeftovers removes what an app's builds left outside the store:
// its build home and caches on disk, and the images the engine holds for
// it (the image action's, a buildspec's own docker build's, and copies
// tagged under the registry), so an app made again under the name starts
// afresh and nothing Slipway caused stays in the engine.
func (s *Server) removeAppLeftovers(ctx context.Context, app string) {
	// The default branch's home, and each other ref's (APP@DIGEST).
	homes, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, "homes", app+"@*"))
	for _, home := range append(homes, filepath.Join(s.cfg.DataDir, "homes", app)) {
		if err := os.RemoveAll(home); err != nil {
			s.log.Warn("remove a deleted app's build home", "app", app, "home", home, "err", err)
		}
	}
	var nf storagedriver.PathNotFoundError
	if err := s.blobs.Delete(ctx, "/cache/"+app); err != nil && !errors.As(err, &nf) {
		s.log.Warn("remove a deleted app's caches", "app", app, "err", blob.Explain(err))
	}
	eng, err := container.Connect(ctx)
	if err != nil {
		return // no engine: no images either
	}
	n, err := eng.RemoveAppImages(ctx, app, s.installation, s.engine.CurrentRegistry().Host)
	if err != nil {
		s.log.Warn("remove a deleted app's images", "app", app, "err", err)
	}
	if n > 0 {
		s.log.Info("removed a deleted app's images from the engine", "app", app, "images", n)
	}
}
