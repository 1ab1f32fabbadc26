package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/blob/s3test"
)

// TestIntegrationRunRetention: with a tiny --run-retention, a pass expires
// the older of two runs of one commit: its logs and artifact rows go, its
// own artifact's blob is deleted from the blob store (the data directory,
// or S3), the source archive it shares with the newer run stays, and
// downloading its artifacts answers 410 Gone. The newer run, the app's
// newest success, keeps everything.
func TestIntegrationRunRetention(t *testing.T) {
	for _, where := range []string{"filesystem", "s3"} {
		t.Run(where, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir(), RunRetention: time.Millisecond}
			if where == "s3" {
				s3 := s3test.Start(t)
				s3.Setenv(t)
				var err error
				if cfg.Blobs, err = blob.Parse(s3.URL("retention")); err != nil {
					t.Fatal(err)
				}
			}
			logs := &lockedBuffer{}
			cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
			testRunRetention(t, newEnvWith(t, cfg), logs)
		})
	}
}

func testRunRetention(t *testing.T, e *testEnv, logs *lockedBuffer) {
	e.createApp("keep")
	e.pushPipeline("keep", "main", map[string]string{
		"slipway.yaml": `on:
  push:
    branches: [main]
stages:
  - name: Build
    actions:
      - {name: compile, type: build, outputs: [BuildOut]}
`,
		"buildspec.yml": `version: 0.2
phases:
  build:
    commands:
      - mkdir -p out && date +%s%N > out/stamp
      - echo building
artifacts:
  files: ['**/*']
  base-directory: out
`,
	})
	if run := e.waitRun(1, 60*time.Second); run["state"] != "succeeded" {
		t.Fatalf("run 1: %v\n%s", run, e.logText(1))
	}
	if id := e.startRun("keep", "main"); id != 2 {
		t.Fatalf("second run is %d", id)
	}
	if run := e.waitRun(2, 60*time.Second); run["state"] != "succeeded" {
		t.Fatalf("run 2: %v\n%s", run, e.logText(2))
	}
	sums := map[string]string{}
	for _, id := range []int{1, 2} {
		_, run := e.call("GET", fmt.Sprintf("/api/v1/runs/%d", id), e.Admin, nil)
		for _, a := range run["artifacts"].([]any) {
			m := a.(map[string]any)
			sums[fmt.Sprintf("%d/%s", id, m["name"])] = m["sha256"].(string)
		}
		if !strings.Contains(e.logText(id), "building") {
			t.Fatalf("run %d's log: %s", id, e.logText(id))
		}
	}
	if sums["1/SourceArtifact"] == "" || sums["1/SourceArtifact"] != sums["2/SourceArtifact"] || sums["1/BuildOut"] == sums["2/BuildOut"] {
		t.Fatalf("want one source blob shared by both runs and a build output each: %v", sums)
	}

	ctx := context.Background()
	rep, err := e.srv.engine.RetentionPass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 1 || rep.Purged != 1 || rep.Artifacts != 2 || rep.Blobs != 1 || rep.SharedBlobs != 1 || rep.BlobBytes == 0 || rep.LogLines == 0 {
		t.Errorf("report %+v", rep)
	}
	if l := logs.String(); !strings.Contains(l, "msg=\"run retention\"") || !strings.Contains(l, "blobs_deleted=1") || !strings.Contains(l, "blobs_kept_shared=1") {
		t.Errorf("server log has no retention record:\n%s", l)
	}

	_, old := e.call("GET", "/api/v1/runs/1", e.Admin, nil)
	if old["expired_at"] == nil || len(old["artifacts"].([]any)) != 0 || len(old["actions"].([]any)) != 1 {
		t.Errorf("run 1 after the pass: %v", old)
	}
	if text := e.logText(1); text != "" {
		t.Errorf("run 1's log after the pass: %q", text)
	}
	for _, name := range []string{"BuildOut", "SourceArtifact"} {
		code, body := e.call("GET", "/api/v1/runs/1/artifacts/"+name, e.Admin, nil)
		if code != http.StatusGone || errorField(body, "code") != "gone" || !strings.Contains(errorField(body, "message"), "expired") {
			t.Errorf("download of expired %s: %d %v", name, code, body)
		}
	}
	web, _ := e.signin(e.Admin)
	if resp, err := web.Get(e.URL + "/runs/1"); err != nil {
		t.Fatal(err)
	} else {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Artifacts and logs expired") {
			t.Errorf("run 1's page: %d, no expiry note", resp.StatusCode)
		}
	}
	if !e.blobStored(sums["2/SourceArtifact"]) || !e.blobStored(sums["2/BuildOut"]) {
		t.Error("a blob of run 2 was deleted")
	}
	if e.blobStored(sums["1/BuildOut"]) {
		t.Error("run 1's own BuildOut blob is still in the blob store")
	}

	_, recent := e.call("GET", "/api/v1/runs/2", e.Admin, nil)
	if recent["expired_at"] != nil || len(recent["artifacts"].([]any)) != 2 || !strings.Contains(e.logText(2), "building") {
		t.Errorf("run 2 after the pass: %v", recent)
	}
	for _, name := range []string{"BuildOut", "SourceArtifact"} {
		req, _ := http.NewRequest("GET", e.URL+"/api/v1/runs/2/artifacts/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+e.Admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			t.Errorf("download of run 2's %s: %d, %d bytes", name, resp.StatusCode, n)
		}
	}
	// Run 2 is the newest success: however old, the next pass keeps it.
	if rep, err := e.srv.engine.RetentionPass(ctx); err != nil || rep.Runs != 0 || rep.Purged != 0 {
		t.Errorf("second pass: %+v %v", rep, err)
	}
}

// blobStored looks for an artifact's blob in the server's blob store.
func (e *testEnv) blobStored(sum string) bool {
	e.t.Helper()
	_, err := e.srv.blobs.Stat(context.Background(), "/artifacts/sha256/"+sum[:2]+"/"+sum)
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true
}

// TestIntegrationRegistryGCOnS3: with the registry on S3, a lifecycle
// policy (keep the newest tagged image) and the collection it feeds work
// through the storage driver: the expired images' layers leave the bucket,
// the kept image's stay and still pull. (Blob ages cannot be back-dated on
// S3, so the grace period is 0.)
func TestIntegrationRegistryGCOnS3(t *testing.T) {
	s3 := s3test.Start(t)
	s3.Setenv(t)
	cfg, err := blob.Parse(s3.URL("gc"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, Config{DataDir: t.TempDir(), Blobs: cfg})
	e.createApp("gc")
	o := &oci{t: t, base: e.URL, token: e.Admin}
	var layers []string
	for i := range 3 {
		_, m := o.pushImage("gc", fmt.Sprintf("v%d", i))
		var manifest struct {
			Layers []struct{ Digest string } `json:"layers"`
		}
		if err := json.Unmarshal(m, &manifest); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, manifest.Layers[0].Digest)
		time.Sleep(5 * time.Millisecond) // pushed_at orders the images
	}
	if code, body := e.call("PUT", "/api/v1/images/policy", e.Admin, map[string]any{"repository": "gc", "keep_last": 1}); code != 200 {
		t.Fatalf("policy: %d %v", code, body)
	}
	code, rep := e.call("POST", "/api/v1/images/gc", e.Admin, map[string]any{"grace": "0s"})
	if code != 200 || len(rep["expired_manifests"].([]any)) != 2 {
		t.Fatalf("gc: %d %v", code, rep)
	}
	d, err := blob.Open(context.Background(), cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	inBucket := func(dg string) bool {
		hex := strings.TrimPrefix(dg, "sha256:")
		_, err := d.Stat(context.Background(), "/registry/docker/registry/v2/blobs/sha256/"+hex[:2]+"/"+hex+"/data")
		var nf storagedriver.PathNotFoundError
		if err != nil && !errors.As(err, &nf) {
			t.Fatal(err)
		}
		return err == nil
	}
	deleted := fmt.Sprint(rep["deleted_blobs"])
	for i, l := range layers[:2] {
		if !strings.Contains(deleted, l) || inBucket(l) {
			t.Errorf("layer of expired v%d: reported deleted %v, still in the bucket %v", i, strings.Contains(deleted, l), inBucket(l))
		}
	}
	if !inBucket(layers[2]) {
		t.Error("the kept image's layer left the bucket")
	}
	if resp, body := o.do("GET", "/v2/gc/blobs/"+layers[2], nil, nil); resp.StatusCode != 200 || len(body) != 1024 {
		t.Errorf("pull the kept layer: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := o.do("GET", "/v2/gc/manifests/v0", nil, nil); resp.StatusCode != 404 {
		t.Errorf("expired v0: %d", resp.StatusCode)
	}
}
