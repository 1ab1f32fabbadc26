package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// Build homes persist between an app's builds (the Go module and build
// caches, what tools installed under ~), so a warm build is fast. They
// are kept per ref: the default branch's builds share the app's home,
// and every other branch or tag gets a home of its own. A branch anyone
// with push rights uses (a pull request's) can then never leave anything
// in the home the default branch builds with: a module rewritten in the
// module cache, a tool on ~/.local/bin. GitHub's runners start every job
// fresh and scope caches by branch for the same reason. A buildspec's
// cache: paths, and an image build's cache mounts, are kept per ref alike
// (see CacheKey and imageCacheScope).

// refHomeIdle is how long a branch's or tag's home is kept after its last
// build; the default branch's stays as long as the app.
const refHomeIdle = 7 * 24 * time.Hour

// refScope is what keeps r's build home and buildspec caches apart from
// other refs': "" for the default branch's runs, a digest of the ref for
// any other's.
func (e *Engine) refScope(ctx context.Context, r store.Run) (string, error) {
	def, err := e.Source.DefaultBranch(ctx, r.App)
	if err != nil {
		return "", err
	}
	if r.Ref == def {
		return "", nil
	}
	sum := sha256.Sum256([]byte(r.Ref))
	return hex.EncodeToString(sum[:12]), nil
}

// buildHome is the home directory on the host for r's builds: the app's
// own for the default branch; beside it (never inside it, where the
// default branch's builds would see it) for any other ref, named
// APP@DIGEST ('@' is in no app name).
func (e *Engine) buildHome(ctx context.Context, r store.Run) (string, error) {
	scope, err := e.refScope(ctx, r)
	if err != nil {
		return "", fmt.Errorf("build home: %w", err)
	}
	if scope == "" {
		return filepath.Join(e.HomeRoot, r.App), nil
	}
	home := filepath.Join(e.HomeRoot, r.App+"@"+scope)
	// Its time says when it was last used, for sweepRefHomes.
	now := time.Now()
	if err := os.Chtimes(home, now, now); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("build home: %w", err)
	}
	return home, nil
}

// imageCacheScope is the scope an image build's cache mounts (RUN
// --mount=type=cache) are kept under on the engine: this installation's,
// the app's, the ref's (see container.BuildOptions.CacheScope).
func (e *Engine) imageCacheScope(ctx context.Context, r store.Run) (string, error) {
	scope, err := e.refScope(ctx, r)
	if err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	if scope == "" {
		scope = "default"
	}
	return "slipway-" + e.Installation + "/" + r.App + "/" + scope, nil
}

// sweepRefHomes removes the homes of branches and tags not built for
// refHomeIdle (a deleted branch's among them).
func (e *Engine) sweepRefHomes(now time.Time) (int, error) {
	entries, err := os.ReadDir(e.HomeRoot)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range entries {
		if !d.IsDir() || !strings.Contains(d.Name(), "@") {
			continue
		}
		fi, err := d.Info()
		if err != nil || now.Sub(fi.ModTime()) < refHomeIdle {
			continue
		}
		if err := os.RemoveAll(filepath.Join(e.HomeRoot, d.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
