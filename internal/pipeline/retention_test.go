package pipeline

import (
	"context"
	"errors"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/store"
)

// failingDeletes is the filesystem driver with Delete failing while on.
type failingDeletes struct {
	storagedriver.StorageDriver
	on bool
}

func (d *failingDeletes) Delete(ctx context.Context, path string) error {
	if d.on {
		return errors.New("blob store unavailable")
	}
	return d.StorageDriver.Delete(ctx, path)
}

// retentionEngine is an engine over a real store and a filesystem blob
// store, with two failed runs of app a, "old" ended before "recent"; both
// have the same slipwayfile.SourceArtifact and a
// BuildOut of their own, and a log.
func retentionEngine(t *testing.T) (e *Engine, driver *failingDeletes, old, recent int64, sums map[string]string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateApp(ctx, store.App{Name: "a", RegistryRepo: "a"}); err != nil {
		t.Fatal(err)
	}
	fsys, err := blob.Open(ctx, blob.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	driver = &failingDeletes{StorageDriver: fsys}
	e = &Engine{Store: db, Artifacts: &artifact.Store{Driver: driver}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	sums = map[string]string{}
	for _, out := range []string{"old", "recent"} {
		r, err := db.CreateRun(ctx, store.Run{App: "a", Trigger: "manual", Ref: "main", Commit: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.StartRun(ctx, r.ID, slipwayfile.ModeParallel, []store.Action{{Stage: "Build", Name: "compile", Type: "build", RunOrder: 1}}); err != nil {
			t.Fatal(err)
		}
		acts, _ := db.ListActions(ctx, r.ID)
		if err := db.AppendLog(ctx, acts[0].ID, []store.LogLine{{At: time.Now(), Line: "building " + out}}); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{slipwayfile.SourceArtifact: "the same source", "BuildOut": "built by " + out} {
			sum, _, err := e.Artifacts.PutRecorded(ctx, strings.NewReader(content), func(sum string, size int64) error {
				return db.PutArtifact(ctx, store.Artifact{RunID: r.ID, Name: name, SHA256: sum, Size: size})
			})
			if err != nil {
				t.Fatal(err)
			}
			sums[out+"/"+name] = sum
		}
		if err := db.FinishRun(ctx, r.ID, store.RunFailed, ""); err != nil {
			t.Fatal(err)
		}
		if out == "old" {
			old = r.ID
		} else {
			recent = r.ID
		}
	}
	return e, driver, old, recent, sums
}

func blobExists(t *testing.T, e *Engine, sum string) bool {
	t.Helper()
	rc, err := e.Artifacts.Open(context.Background(), sum)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	return true
}

func TestExpireRunsDeletesUnsharedBlobsAndLogs(t *testing.T) {
	e, driver, old, recent, sums := retentionEngine(t)
	ctx := context.Background()
	// Between the two runs' ends: the old run is past the retention.
	oldRun, _ := e.Store.GetRun(ctx, old)
	recentRun, _ := e.Store.GetRun(ctx, recent)
	cutoff := oldRun.EndedAt.Add(recentRun.EndedAt.Sub(*oldRun.EndedAt) / 2)

	// The blob store fails: the run is marked and its log goes, its
	// artifact rows stay for the next pass.
	driver.on = true
	rep, err := e.ExpireRuns(ctx, cutoff)
	if err == nil || !strings.Contains(err.Error(), "blob store unavailable") || rep.Runs != 1 || rep.Purged != 0 {
		t.Fatalf("pass with the blob store failing: %+v %v", rep, err)
	}
	if arts, _ := e.Store.ListArtifacts(ctx, old); len(arts) != 2 {
		t.Fatalf("artifact rows after a failed pass: %v", arts)
	}
	driver.on = false
	rep, err = e.ExpireRuns(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	want := RetentionReport{Runs: 0, Purged: 1, Artifacts: 2, Blobs: 1, BlobBytes: int64(len("built by old")), SharedBlobs: 1}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if r, _ := e.Store.GetRun(ctx, old); r.ExpiredAt == nil {
		t.Errorf("old run not marked expired: %+v", r)
	}
	if r, _ := e.Store.GetRun(ctx, recent); r.ExpiredAt != nil {
		t.Errorf("recent run marked expired: %+v", r)
	}
	if l, _ := e.Store.ListLog(ctx, old, 0, 10); len(l) != 0 {
		t.Errorf("old run's log: %v", l)
	}
	if l, _ := e.Store.ListLog(ctx, recent, 0, 10); len(l) != 1 {
		t.Errorf("recent run's log: %v", l)
	}
	if arts, _ := e.Store.ListArtifacts(ctx, old); len(arts) != 0 {
		t.Errorf("old run's artifacts: %v", arts)
	}
	if blobExists(t, e, sums["old/BuildOut"]) {
		t.Error("the old run's own blob is still stored")
	}
	for _, k := range []string{"recent/" + slipwayfile.SourceArtifact, "recent/BuildOut"} {
		if !blobExists(t, e, sums[k]) {
			t.Errorf("%s's blob was deleted", k)
		}
	}
	// Nothing is left to do.
	if rep, err := e.ExpireRuns(ctx, cutoff); err != nil || rep != (RetentionReport{}) {
		t.Errorf("third pass: %+v %v", rep, err)
	}
}
