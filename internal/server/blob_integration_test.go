package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/blob/s3test"
)

// TestIntegrationBlobStoreOnS3: with --blob-store on a real S3 server
// (versitygw, checking signatures), push → build (with a cache) → image →
// deploy works, the registry's layers, the artifacts and the caches are in
// the bucket and not in the data directory; with S3 down a run fails
// saying so, and once S3 is back the next run succeeds without a restart.
func TestIntegrationBlobStoreOnS3(t *testing.T) {
	s3 := s3test.Start(t)
	s3.Setenv(t) // for this process's own look into the bucket
	data := t.TempDir()
	app := fmt.Sprintf("sss%d", time.Now().UnixNano()%1e6)
	cleanupRuntime(t, app, data)
	storeURL := s3.URL("slipway")
	srv := startProcServerEnv(t, slipwayBinary(t), data, "", append(s3.Env(), "SLIPWAY_BLOB_STORE="+storeURL)...)
	srv.createApp(app)
	prodPort := freePort(t)
	files := func(version string) map[string]string {
		return webappPipeline(t, app, version, "cache:\n  paths: ['deps/**/*']\n", fmt.Sprintf(`strategy: rolling
			desired-count: 1
			listener-port: %d
			health-check-path: /health`, prodPort))
	}
	w := newWork(t)
	shipVersion(t, srv, w, app, 1, files("1"), prodPort)
	// The blobs are in the bucket, under the prefix, and not on disk.
	cfg, err := blob.Parse(storeURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := blob.Open(ctx, cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/artifacts/sha256", "/registry/docker/registry/v2/blobs", "/cache/" + app} {
		if list, err := d.List(ctx, dir); err != nil || len(list) == 0 {
			t.Errorf("%s on S3: %v %v", dir, list, err)
		}
	}
	for _, dir := range []string{"artifacts", "registry", "cache"} {
		if _, err := os.Stat(filepath.Join(data, dir)); !os.IsNotExist(err) {
			t.Errorf("DATA/%s exists with --blob-store on S3: %v", dir, err)
		}
	}
	// An artifact downloads through the API from S3.
	code, body := srv.call("GET", "/api/v1/runs/1", srv.Admin, nil)
	if code != 200 {
		t.Fatalf("run 1: %d %v", code, body)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/runs/1/artifacts/BuildOut", nil)
	req.Header.Set("Authorization", "Bearer "+srv.Admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("download BuildOut: %v %v", resp, err)
	} else {
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n < 1<<20 {
			t.Fatalf("BuildOut is %d bytes", n)
		}
	}

	// S3 goes down: the next run fails and says why.
	s3.Stop()
	w.commit("v2", files("2"))
	w.git("push", "-q", repoURL(srv.URL, srv.Admin, app), "main")
	run := srv.waitRun(2, 240*time.Second)
	t.Logf("run with S3 down: %v", run["reason"])
	if run["state"] != "failed" || !strings.Contains(fmt.Sprint(run["reason"])+srv.logText(2), "S3 endpoint unreachable") {
		t.Fatalf("run with S3 down %v: %v\n%s", run["state"], run["reason"], srv.logText(2))
	}
	// S3 returns: the next run succeeds on the same server, the cache restored.
	s3.Restart()
	if logs := shipVersion(t, srv, w, app, 3, files("3"), prodPort); !strings.Contains(logs, "Restored cache deps") {
		t.Fatalf("run after S3 returned did not restore the cache:\n%s", logs)
	}
}
