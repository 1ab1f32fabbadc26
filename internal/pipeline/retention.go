package pipeline

import (
	"context"
	"fmt"
	"time"
)

// DefaultRunRetention is how long a run's artifacts and logs are kept after
// it ends unless the server is told otherwise: GitHub Actions' default for
// artifacts and logs.
const DefaultRunRetention = 90 * 24 * time.Hour

// RetentionEvery is how often runs past their retention are expired.
const RetentionEvery = time.Hour

// retentionBatch is how many runs one store call marks or lists.
const retentionBatch = 100

// RetentionReport says what one retention pass deleted.
type RetentionReport struct {
	Runs     int   // runs newly marked expired
	Purged   int   // expired runs whose logs and artifacts are now gone
	LogLines int64 // log lines deleted
	LogBytes int64
	// Artifacts counts artifact rows deleted; Blobs the blobs deleted with
	// them, BlobBytes their size; SharedBlobs those kept because another
	// run's artifact has the same content.
	Artifacts   int64
	Blobs       int
	BlobBytes   int64
	SharedBlobs int
}

// ExpireRuns deletes the logs and artifacts of the runs that ended before
// endedBefore and whose output is not in use (store.RetentionStore says
// which), and marks them expired. A run's rows go only after its blobs, so
// a pass cut short (the blob store down, the server stopping) leaves the
// run for the next pass to finish. An error is returned after the other
// runs were dealt with.
func (e *Engine) ExpireRuns(ctx context.Context, endedBefore time.Time) (RetentionReport, error) {
	var rep RetentionReport
	for {
		ids, err := e.Store.ExpireRuns(ctx, endedBefore, retentionBatch)
		if err != nil {
			return rep, fmt.Errorf("mark expired runs: %w", err)
		}
		rep.Runs += len(ids)
		if len(ids) < retentionBatch {
			break
		}
	}
	var failed int
	var first error
	for after := int64(0); ; {
		ids, err := e.Store.ExpiredRunsHolding(ctx, after, retentionBatch)
		if err != nil {
			return rep, fmt.Errorf("list expired runs: %w", err)
		}
		for _, id := range ids {
			if err := e.purgeRun(ctx, id, &rep); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				failed++
				if first == nil {
					first = fmt.Errorf("run %d: %w", id, err)
				}
				continue
			}
			rep.Purged++
		}
		if len(ids) < retentionBatch {
			break
		}
		after = ids[len(ids)-1]
	}
	if first != nil {
		return rep, fmt.Errorf("%d expired runs not purged yet (the next pass retries): %w", failed, first)
	}
	return rep, nil
}

// purgeRun deletes an expired run's log lines, the blobs of its artifacts
// that no other run's artifact names, then its artifact rows.
func (e *Engine) purgeRun(ctx context.Context, id int64, rep *RetentionReport) error {
	lines, bytes, err := e.Store.DeleteRunLogs(ctx, id)
	rep.LogLines += lines
	rep.LogBytes += bytes
	if err != nil {
		return fmt.Errorf("delete logs: %w", err)
	}
	arts, err := e.Store.ListArtifacts(ctx, id)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range arts {
		if seen[a.SHA256] {
			continue
		}
		seen[a.SHA256] = true
		shared := false
		freed, err := e.Artifacts.DeleteUnnamed(ctx, a.SHA256, func(ctx context.Context) (bool, error) {
			named, err := e.Store.ArtifactNamedElsewhere(ctx, a.SHA256, id)
			shared = named
			return named, err
		})
		if err != nil {
			return err
		}
		switch {
		case shared:
			rep.SharedBlobs++
		case freed > 0:
			rep.Blobs++
			rep.BlobBytes += freed
		}
	}
	n, err := e.Store.DeleteRunArtifacts(ctx, id)
	rep.Artifacts += n
	return err
}

// RetentionPass expires the runs that ended more than RunRetention ago
// (nothing when it is 0) and logs what it deleted: what the server does
// every RetentionEvery.
func (e *Engine) RetentionPass(ctx context.Context) (RetentionReport, error) {
	if e.RunRetention <= 0 {
		return RetentionReport{}, nil
	}
	rep, err := e.ExpireRuns(ctx, time.Now().Add(-e.RunRetention))
	if rep != (RetentionReport{}) {
		e.Log.Info("run retention", "older_than", e.RunRetention.String(), "runs_expired", rep.Runs, "runs_purged", rep.Purged,
			"log_lines", rep.LogLines, "log_bytes", rep.LogBytes, "artifacts", rep.Artifacts,
			"blobs_deleted", rep.Blobs, "blob_bytes", rep.BlobBytes, "blobs_kept_shared", rep.SharedBlobs)
	}
	return rep, err
}

// retentionLoop runs RetentionPass now and then every RetentionEvery.
func (e *Engine) retentionLoop(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(RetentionEvery)
	defer t.Stop()
	for {
		if _, err := e.RetentionPass(ctx); err != nil && ctx.Err() == nil {
			e.Log.Error("run retention", "err", err)
		}
		if n, err := e.sweepRefHomes(time.Now()); err != nil {
			e.Log.Error("remove idle build homes", "err", err)
		} else if n > 0 {
			e.Log.Info("removed the build homes of branches and tags not built for a week", "homes", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
