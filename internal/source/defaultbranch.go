package source

import (
	"context"
	"fmt"
	"strings"
)

// DefaultBranch is the ref the app's repository's HEAD names
// (refs/heads/main for a new one), as GitHub's default branch: caches a
// workflow saves there are the ones every branch may restore.
func (s *Service) DefaultBranch(ctx context.Context, app string) (string, error) {
	if !ValidAppName(app) {
		return "", fmt.Errorf("app %q is not an app name", app)
	}
	out, err := s.git(ctx, app, "symbolic-ref", "--quiet", "HEAD")
	if err != nil {
		return "", fmt.Errorf("default branch of %s: %w", app, err)
	}
	ref := strings.TrimSpace(string(out))
	if !strings.HasPrefix(ref, "refs/heads/") {
		return "", fmt.Errorf("default branch of %s: HEAD names %q, not a branch", app, ref)
	}
	return ref, nil
}
