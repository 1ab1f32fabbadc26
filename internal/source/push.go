package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"github.com/slipway-dev/slipway/internal/store"
)

// recordPush evaluates the app's triggers for one updated ref and stores the
// event (and the run it starts) in one transaction, with the digest of the
// webhook payload that announced it, if any. fallbackChanged is used when
// git cannot compute the changed paths (a webhook whose "before" commit
// was never fetched).
func (s *Service) recordPush(ctx context.Context, app, source, pusher, delivery string, payload []byte, up RefUpdate, fallbackChanged []string) (store.PushEvent, error) {
	ev := store.PushEvent{App: app, Source: source, Ref: up.Ref, OldSHA: up.Old, NewSHA: up.New, PushedBy: pusher, DeliveryID: delivery, PayloadSHA256: payload}
	runs, decision := s.evaluate(ctx, app, source, up, fallbackChanged)
	ev.Outcome, ev.Reason = decision.outcome, decision.reason
	ev, err := s.Store.RecordPush(ctx, ev, runs...)
	if err != nil {
		return ev, err
	}
	s.Log.Info("push", "app", app, "ref", up.Ref, "old", short(up.Old), "new", short(up.New), "by", pusher, "outcome", ev.Outcome, "reason", ev.Reason, "run", ev.RunID)
	for _, run := range runs {
		if s.RunCreated != nil {
			s.RunCreated(*run)
		}
	}
	return ev, nil
}

type outcome struct{ outcome, reason string }

func (s *Service) evaluate(ctx context.Context, app, source string, up RefUpdate, fallbackChanged []string) ([]*store.Run, outcome) {
	if up.New == ZeroSHA {
		return nil, outcome{store.OutcomeFiltered, "ref deleted; a deleted branch or tag starts nothing"}
	}
	commitOut, err := s.git(ctx, app, "rev-parse", "--verify", "--quiet", up.New+"^{commit}")
	if err != nil {
		return nil, outcome{store.OutcomeFiltered, fmt.Sprintf("%s does not point at a commit", up.Ref)}
	}
	commit := strings.TrimSpace(string(commitOut))
	data, err := s.ReadFile(ctx, app, commit, slipwayfile.FileName)
	var tooLarge *FileTooLargeError
	if errors.As(err, &tooLarge) {
		return nil, outcome{store.OutcomeError, err.Error()}
	}
	if err != nil {
		// slipway.yaml wins when both are there: it is Slipway's own file,
		// and running both would build and deploy the commit twice.
		return s.evaluateWorkflows(ctx, app, source, up, commit, fallbackChanged)
	}
	spec, err := slipwayfile.Parse(data)
	if err != nil {
		return nil, outcome{store.OutcomeError, err.Error()}
	}
	changed, err := s.changedPaths(ctx, app, up, commit)
	if err != nil {
		if fallbackChanged == nil {
			return nil, outcome{store.OutcomeError, "cannot list changed files: " + err.Error()}
		}
		changed = fallbackChanged
	}
	d := spec.MatchPush(up.Ref, changed)
	if !d.Run {
		return nil, outcome{store.OutcomeFiltered, d.Reason}
	}
	return []*store.Run{{App: app, State: store.RunQueued, Trigger: pushTrigger(source), Ref: up.Ref, Commit: commit}}, outcome{store.OutcomeRun, ""}
}

func pushTrigger(source string) string {
	if source == "github" {
		return "github-push"
	}
	return "git-push"
}

// changedPaths lists files that differ between the old and new commit. For a
// new ref there is no old commit: the files of the pushed commit itself count.
func (s *Service) changedPaths(ctx context.Context, app string, up RefUpdate, commit string) ([]string, error) {
	var out []byte
	var err error
	if up.Old == ZeroSHA {
		out, err = s.git(ctx, app, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", commit)
	} else {
		out, err = s.git(ctx, app, "diff", "--name-only", up.Old, commit)
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			paths = append(paths, l)
		}
	}
	return paths, nil
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
