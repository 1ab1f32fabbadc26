package server

import (
	"context"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
)

// Runs show their commit's subject and author, read from the app's
// repository. A commit never changes, so each is read once (a cache keyed
// by its SHA, which names its content in any repository).

// commitInfo is a commit's subject (its message's first line) and author.
type commitInfo struct {
	Subject, Author string
	// failed is when git could not tell (a commit gone with its
	// repository); it is asked again after commitRetry.
	failed time.Time
}

const (
	// maxCommitsCached bounds the cache; it starts over when full.
	maxCommitsCached = 4096
	// commitRetry is how long a commit git could not show stays unknown.
	commitRetry = time.Minute
	// commitReaders bounds the git processes one page starts.
	commitReaders = 4
)

// runRow is a run as lists show it: with its commit's subject and author.
type runRow struct {
	store.Run
	Subject, Author string
}

// runRows adds each run's commit subject and author.
func (s *Server) runRows(ctx context.Context, runs []store.Run) []runRow {
	infos := s.commitInfos(ctx, runs)
	out := make([]runRow, len(runs))
	for i, r := range runs {
		ci := infos[r.Commit]
		out[i] = runRow{Run: r, Subject: ci.Subject, Author: ci.Author}
	}
	return out
}

// commitInfos returns the subject and author of the runs' commits, from
// the cache or, for those not seen yet, from git (a few at a time). A
// commit git cannot show is absent.
func (s *Server) commitInfos(ctx context.Context, runs []store.Run) map[string]commitInfo {
	c := &s.needs
	out := map[string]commitInfo{}
	var missing []store.Run // one run per commit not cached
	asked := map[string]bool{}
	now := time.Now()
	c.commitsMu.Lock()
	for _, r := range runs {
		if r.Commit == "" || asked[r.Commit] {
			continue
		}
		asked[r.Commit] = true
		ci, ok := c.commits[r.Commit]
		switch {
		case ok && ci.failed.IsZero():
			out[r.Commit] = ci
		case !ok || now.Sub(ci.failed) > commitRetry:
			missing = append(missing, r)
		}
	}
	c.commitsMu.Unlock()
	if len(missing) == 0 {
		return out
	}
	found := make([]commitInfo, len(missing))
	var wg sync.WaitGroup
	sem := make(chan struct{}, commitReaders)
	for i, r := range missing {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			subject, author, err := s.source.CommitInfo(ctx, r.App, r.Commit)
			if err != nil {
				found[i].failed = time.Now()
				return
			}
			found[i] = commitInfo{Subject: subject, Author: author}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return out // a page gone: what failed may not have been git's answer
	}
	c.commitsMu.Lock()
	defer c.commitsMu.Unlock()
	if c.commits == nil || len(c.commits)+len(missing) > maxCommitsCached {
		c.commits = make(map[string]commitInfo, len(missing))
	}
	for i, r := range missing {
		c.commits[r.Commit] = found[i]
		if found[i].failed.IsZero() {
			out[r.Commit] = found[i]
		}
	}
	return out
}

// commitOf returns one run's commit subject and author ("" when unknown).
func (s *Server) commitOf(ctx context.Context, r store.Run) commitInfo {
	return s.commitInfos(ctx, []store.Run{r})[r.Commit]
}
