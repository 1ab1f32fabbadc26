package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestNewReportsBadConfigurationAsError(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		expect string
	}{
		{"unknown driver", Config{Driver: "nosuchdriver", Parameters: map[string]any{}}, "nosuchdriver"},
		{"bad driver parameter", Config{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": t.TempDir(), "maxthreads": "many"}}, "maxthreads"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg, err := New(context.Background(), c.cfg, nil)
			if err == nil || reg != nil {
				t.Fatalf("got %v, %v; want an error", reg, err)
			}
			if !strings.Contains(err.Error(), c.expect) {
				t.Fatalf("error %q does not name %q", err, c.expect)
			}
		})
	}
}

// pushBlob uploads data to repo in one monolithic PUT.
func pushBlob(t *testing.T, base, repo string, data []byte) {
	t.Helper()
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusAccepted || err != nil {
		t.Fatalf("start upload: %d %v", resp.StatusCode, err)
	}
	q := loc.Query()
	q.Set("digest", digest.FromBytes(data).String())
	loc.RawQuery = q.Encode()
	req, _ := http.NewRequest("PUT", loc.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put blob: %d", resp.StatusCode)
	}
}

// Two different manifests pushed to one new immutable tag at once: exactly
// one lands, the other is refused, in every round.
func TestConcurrentPushesToAnImmutableTag(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateApp(ctx, store.App{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPolicy(ctx, store.RepoPolicy{Repo: "hello", ImmutableTags: true}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := New(ctx, Config{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": t.TempDir()}, Log: log}, db)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reg.Serve(w, r, "tester") }))
	defer srv.Close()

	layer := []byte("layer")
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	pushBlob(t, srv.URL, "hello", layer)
	pushBlob(t, srv.URL, "hello", config)
	manifest := func(variant string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config":      map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(config), "size": len(config)},
			"layers":      []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
			"annotations": map[string]string{"variant": variant},
		})
		return b
	}
	put := func(tag string, body []byte) int {
		req, _ := http.NewRequest("PUT", srv.URL+"/v2/hello/manifests/"+tag, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for round := range 30 {
		tag := fmt.Sprintf("r%d", round)
		bodies := [][]byte{manifest("a"), manifest("b")}
		codes := make([]int, len(bodies))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Go(func() {
				<-start
				codes[i] = put(tag, b)
			})
		}
		close(start)
		wg.Wait()
		slices.Sort(codes)
		if codes[0] != http.StatusCreated || codes[1] != http.StatusConflict {
			t.Errorf("round %d: statuses %v, want one 201 and one 409", round, codes)
		}
	}
}
