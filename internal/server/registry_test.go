package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// oci talks the distribution API with basic auth, as any registry client does.
type oci struct {
	t     *testing.T
	base  string
	token string
}

func (o *oci) do(method, path string, body []byte, header map[string]string) (*http.Response, []byte) {
	o.t.Helper()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = o.base + path
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if o.token != "" {
		req.SetBasicAuth("ci", o.token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// pushBlob uploads data (claiming digest claimed, or its real digest).
func (o *oci) pushBlob(repo string, data []byte, claimed string) (int, string) {
	o.t.Helper()
	resp, body := o.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		o.t.Fatalf("start upload: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = o.base + loc
	}
	d := digest.FromBytes(data).String()
	if claimed == "" {
		claimed = d
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, body = o.do("PUT", loc+sep+"digest="+claimed, data, map[string]string{"Content-Type": "application/octet-stream"})
	return resp.StatusCode, string(body)
}

func desc(mediaType string, data []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest.FromBytes(data).String(), "size": len(data)}
}

// pushImage uploads a random layer and config and puts a manifest under ref.
func (o *oci) pushImage(repo, ref string) (string, []byte) {
	o.t.Helper()
	layer := make([]byte, 1024)
	_, _ = rand.Read(layer)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":%q}`, digest.FromBytes(layer)))
	for _, b := range [][]byte{layer, config} {
		if code, body := o.pushBlob(repo, b, ""); code != http.StatusCreated {
			o.t.Fatalf("push blob: %d %s", code, body)
		}
	}
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	resp, body := o.do("PUT", "/v2/"+repo+"/manifests/"+ref, m, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if resp.StatusCode != http.StatusCreated {
		o.t.Fatalf("put manifest %s:%s: %d %s", repo, ref, resp.StatusCode, body)
	}
	return resp.Header.Get("Docker-Content-Digest"), m
}

func ociCode(body []byte) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func TestIntegrationRegistrySpec(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	o := &oci{t: t, base: e.URL, token: e.Token("pusher", "deployer")}

	// The ping challenges anonymous clients the way Docker expects.
	anon := &oci{t: t, base: e.URL}
	resp, body := anon.do("GET", "/v2/", nil, nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") || resp.Header.Get("Docker-Distribution-API-Version") == "" || ociCode(body) != "UNAUTHORIZED" {
		t.Fatalf("anonymous ping: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := o.do("GET", "/v2/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("ping: %d", resp.StatusCode)
	}
	if resp, body := o.do("GET", "/v2/nope/tags/list", nil, nil); resp.StatusCode != 404 || ociCode(body) != "NAME_UNKNOWN" {
		t.Fatalf("unknown repository: %d %s", resp.StatusCode, body)
	}
	if code, body := o.pushBlob("hello", []byte("some bytes"), digest.FromString("other bytes").String()); code != 400 || ociCode([]byte(body)) != "DIGEST_INVALID" {
		t.Fatalf("digest mismatch: %d %s", code, body)
	}
	missing, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", []byte("{}")), "layers": []any{desc("application/vnd.oci.image.layer.v1.tar", []byte("never uploaded"))}})
	if resp, body := o.do("PUT", "/v2/hello/manifests/broken", missing, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 400 || ociCode(body) != "MANIFEST_BLOB_UNKNOWN" {
		t.Fatalf("manifest with missing blob: %d %s", resp.StatusCode, body)
	}
	huge := append([]byte(`{"schemaVersion":2,"annotations":{"x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
	if resp, body := o.do("PUT", "/v2/hello/manifests/huge", huge, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 413 {
		t.Fatalf("huge manifest: %d %s", resp.StatusCode, body)
	}

	subject, _ := o.pushImage("hello", "v1")
	// Two referrers (an SBOM and a signature) pointing at v1.
	empty := []byte("{}")
	if code, body := o.pushBlob("hello", empty, ""); code != 201 {
		t.Fatalf("empty config: %d %s", code, body)
	}
	var referrers []string
	for _, at := range []string{"application/vnd.example.sbom", "application/vnd.example.signature"} {
		payload := []byte("payload of " + at)
		if code, body := o.pushBlob("hello", payload, ""); code != 201 {
			t.Fatalf("artifact blob: %d %s", code, body)
		}
		m, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": at,
			"config":  desc("application/vnd.oci.empty.v1+json", empty),
			"layers":  []any{desc("application/octet-stream", payload)},
			"subject": map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 100},
		})
		resp, body := o.do("PUT", "/v2/hello/manifests/"+digest.FromBytes(m).String(), m, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
		if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != subject {
			t.Fatalf("referrer push: %d OCI-Subject=%q %s", resp.StatusCode, resp.Header.Get("OCI-Subject"), body)
		}
		referrers = append(referrers, digest.FromBytes(m).String())
	}
	var index struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest       string `json:"digest"`
			ArtifactType string `json:"artifactType"`
			Size         int64  `json:"size"`
		} `json:"manifests"`
	}
	resp, body = o.do("GET", "/v2/hello/referrers/"+subject, nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" || json.Unmarshal(body, &index) != nil || len(index.Manifests) != 2 {
		t.Fatalf("referrers: %d %s", resp.StatusCode, body)
	}
	if index.Manifests[0].Digest != referrers[0] || index.Manifests[0].Size == 0 || index.Manifests[0].ArtifactType != "application/vnd.example.sbom" {
		t.Fatalf("referrer descriptor: %+v", index.Manifests[0])
	}
	resp, body = o.do("GET", "/v2/hello/referrers/"+subject+"?artifactType=application/vnd.example.signature", nil, nil)
	if json.Unmarshal(body, &index) != nil || len(index.Manifests) != 1 || index.Manifests[0].Digest != referrers[1] || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %s %v", body, resp.Header)
	}
	resp, body = o.do("GET", "/v2/hello/referrers/"+digest.FromString("nothing").String(), nil, nil)
	if resp.StatusCode != 200 || json.Unmarshal(body, &index) != nil || len(index.Manifests) != 0 {
		t.Fatalf("referrers of an unknown digest: %d %s", resp.StatusCode, body)
	}
	if resp, _ := o.do("GET", "/v2/hello/referrers/not-a-digest", nil, nil); resp.StatusCode != 400 {
		t.Fatalf("bad digest: %d", resp.StatusCode)
	}

	// Roles: a viewer pulls but cannot push or delete.
	viewer := &oci{t: t, base: e.URL, token: e.Token("puller", "viewer")}
	if resp, _ := viewer.do("GET", "/v2/hello/manifests/v1", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 200 {
		t.Fatalf("viewer pull: %d", resp.StatusCode)
	}
	if resp, body := viewer.do("POST", "/v2/hello/blobs/uploads/", nil, nil); resp.StatusCode != 403 || ociCode(body) != "DENIED" {
		t.Fatalf("viewer push: %d %s", resp.StatusCode, body)
	}

	// Immutable tags refuse a moved tag, accept the same content again.
	if code, body := e.call("PUT", "/api/v1/images/policy", e.Admin, map[string]any{"repository": "hello", "immutable_tags": true}); code != 200 {
		t.Fatalf("policy: %d %v", code, body)
	}
	_, v1 := o.do("GET", "/v2/hello/manifests/v1", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	if resp, body := o.do("PUT", "/v2/hello/manifests/v1", v1, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 201 {
		t.Fatalf("same content again: %d %s", resp.StatusCode, body)
	}
	o.pushImage("hello", "v2")
	_, v2 := o.do("GET", "/v2/hello/manifests/v2", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	if resp, body := o.do("PUT", "/v2/hello/manifests/v1", v2, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 409 || !strings.Contains(string(body), "immutable") {
		t.Fatalf("moved immutable tag: %d %s", resp.StatusCode, body)
	}

	// The index records who pushed what.
	_, list := e.call("GET", "/api/v1/images?repository=hello", e.Admin, nil)
	found := false
	for _, it := range list["items"].([]any) {
		img := it.(map[string]any)
		if img["digest"] == subject {
			found = img["pushed_by"] == "pusher" && fmt.Sprint(img["tags"]) == "[v1]" && img["size"].(float64) > 1024
		}
	}
	if !found {
		t.Fatalf("image list: %v", list)
	}
	// Removing the image removes its referrers too.
	if code, body := e.call("DELETE", "/api/v1/images?reference=hello@"+subject, e.Admin, nil); code != 200 {
		t.Fatalf("rm: %d %v", code, body)
	}
	if resp, _ := o.do("GET", "/v2/hello/manifests/"+referrers[0], nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 404 {
		t.Fatalf("referrer survived its subject: %d", resp.StatusCode)
	}
	if code, body := e.call("DELETE", "/api/v1/images?reference=hello", e.Admin, nil); code != 400 || errorField(body, "field") != "reference" {
		t.Fatalf("bad reference: %d %v", code, body)
	}
}

func TestIntegrationRegistryGCUnderConcurrentPush(t *testing.T) {
	e := newEnv(t)
	e.createApp("gc")
	o := &oci{t: t, base: e.URL, token: e.Admin}

	// Garbage: an orphan blob and the blobs of a removed image, all old.
	orphan := []byte("orphan blob nobody references")
	if code, body := o.pushBlob("gc", orphan, ""); code != 201 {
		t.Fatalf("orphan: %d %s", code, body)
	}
	_, doomed := o.pushImage("gc", "doomed")
	if code, _ := e.call("DELETE", "/api/v1/images?reference=gc:doomed", e.Admin, nil); code != 200 {
		t.Fatal("rm doomed")
	}
	var doomedManifest struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	_ = json.Unmarshal(doomed, &doomedManifest)
	old := time.Now().Add(-2 * time.Hour)
	filepath.Walk(filepath.Join(e.srv.DataDir(), "registry"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	// Keep-last: four tagged images in a nested repository, keep two.
	for i := 0; i < 4; i++ {
		o.pushImage("gc/keep", fmt.Sprintf("keep-%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := e.call("PUT", "/api/v1/images/policy", e.Admin, map[string]any{"repository": "gc/keep", "keep_last": 2}); code != 200 {
		t.Fatalf("policy: %d %v", code, body)
	}
	code, dry := e.call("POST", "/api/v1/images/gc", e.Admin, map[string]any{"dry_run": true, "grace": "1h"})
	if code != 200 || len(dry["expired_manifests"].([]any)) != 2 || len(dry["deleted_blobs"].([]any)) < 3 {
		t.Fatalf("dry run: %d %v", code, dry)
	}

	// Pushes race with repeated collections; blobs wait 200 ms for their manifest.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var gcRuns int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, body := e.call("POST", "/api/v1/images/gc", e.Admin, map[string]any{"grace": "5s"}); code != 200 {
				t.Errorf("gc: %d %v", code, body)
				return
			}
			gcRuns++
		}
	}()
	var pushed sync.Map
	var pushers sync.WaitGroup
	for w := 0; w < 3; w++ {
		pushers.Add(1)
		go func(w int) {
			defer pushers.Done()
			for i := 0; i < 6; i++ {
				layer := make([]byte, 4096)
				_, _ = rand.Read(layer)
				config := []byte(fmt.Sprintf(`{"w":%d,"i":%d,"l":%q}`, w, i, digest.FromBytes(layer)))
				for _, b := range [][]byte{layer, config} {
					if code, body := o.pushBlob("gc", b, ""); code != 201 {
						t.Errorf("blob: %d %s", code, body)
						return
					}
				}
				time.Sleep(200 * time.Millisecond)
				m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
					"config": desc("application/vnd.oci.image.config.v1+json", config), "layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)}})
				tag := fmt.Sprintf("w%d-%d", w, i)
				resp, body := o.do("PUT", "/v2/gc/manifests/"+tag, m, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
				if resp.StatusCode != 201 {
					t.Errorf("push %s during gc: %d %s", tag, resp.StatusCode, body)
					return
				}
				pushed.Store(tag, m)
			}
		}(w)
	}
	pushers.Wait()
	close(stop)
	wg.Wait()
	if gcRuns < 2 {
		t.Fatalf("only %d collections ran during the pushes", gcRuns)
	}
	// Every blob of every pushed manifest is still there.
	n := 0
	pushed.Range(func(k, v any) bool {
		n++
		var m struct {
			Config struct{ Digest string }   `json:"config"`
			Layers []struct{ Digest string } `json:"layers"`
		}
		_ = json.Unmarshal(v.([]byte), &m)
		for _, d := range append([]string{m.Config.Digest}, m.Layers[0].Digest) {
			if resp, _ := o.do("HEAD", "/v2/gc/blobs/"+d, nil, nil); resp.StatusCode != 200 {
				t.Errorf("%s: referenced blob %s is gone (%d)", k, d, resp.StatusCode)
			}
		}
		if resp, _ := o.do("GET", "/v2/gc/manifests/"+k.(string), nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 200 {
			t.Errorf("%s: manifest gone", k)
		}
		return true
	})
	if n != 18 {
		t.Fatalf("%d pushes completed, want 18", n)
	}
	// The garbage went, and keep-last removed the two oldest kept images.
	if resp, _ := o.do("HEAD", "/v2/gc/blobs/"+digest.FromBytes(orphan).String(), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("orphan blob survived: %d", resp.StatusCode)
	}
	if resp, _ := o.do("HEAD", "/v2/gc/blobs/"+doomedManifest.Layers[0].Digest, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("removed image's layer survived: %d", resp.StatusCode)
	}
	for tag, want := range map[string]int{"keep-0": 404, "keep-1": 404, "keep-2": 200, "keep-3": 200} {
		if resp, _ := o.do("GET", "/v2/gc/keep/manifests/"+tag, nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", tag, resp.StatusCode, want)
		}
	}
}

// dockerEnv runs the real docker CLI with its own config directory.
type dockerEnv struct {
	t      *testing.T
	config string
	images []string
}

func newDocker(t *testing.T) *dockerEnv {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker CLI not installed")
	}
	d := &dockerEnv{t: t, config: t.TempDir()}
	t.Cleanup(func() {
		for _, img := range d.images {
			exec.Command("docker", "rmi", "-f", img).Run()
		}
	})
	return d
}

func (d *dockerEnv) run(stdin string, args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+d.config)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// importImage makes a one-file image without pulling anything.
func (d *dockerEnv) importImage(ref, content string) {
	d.t.Helper()
	dir := d.t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content), 0o644)
	tarFile := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", tarFile, "hello.txt").CombinedOutput(); err != nil {
		d.t.Fatalf("tar: %v %s", err, out)
	}
	d.images = append(d.images, ref)
	if out, err := d.run("", "import", "--change", "LABEL slipway.test=1", tarFile, ref); err != nil {
		d.t.Fatalf("docker import: %v %s", err, out)
	}
}

func TestIntegrationDockerLoginPushPull(t *testing.T) {
	e := newEnv(t)
	e.createApp("hello")
	d := newDocker(t)
	host := strings.TrimPrefix(e.URL, "http://")
	ref := host + "/hello:v1"
	d.importImage(ref, "version one")

	if out, err := d.run("slw_wrong\n", "login", host, "-u", "ci", "--password-stdin"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("login with a bad token: %v %s", err, out)
	}
	viewer := e.Token("puller", "viewer")
	if out, err := d.run(viewer+"\n", "login", host, "-u", "ci", "--password-stdin"); err != nil {
		t.Fatalf("viewer login: %v %s", err, out)
	}
	if out, err := d.run("", "push", ref); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("viewer push: %v %s", err, out)
	}
	if out, err := d.run(e.Token("pusher", "deployer")+"\n", "login", host, "-u", "ci", "--password-stdin"); err != nil {
		t.Fatalf("login: %v %s", err, out)
	}
	out, err := d.run("", "push", ref)
	if err != nil {
		t.Fatalf("push: %v %s", err, out)
	}
	_, list := e.call("GET", "/api/v1/images?repository=hello", e.Admin, nil)
	img := list["items"].([]any)[0].(map[string]any)
	if !strings.Contains(out, img["digest"].(string)) || img["pushed_by"] != "pusher" {
		t.Fatalf("push output %q vs recorded image %v", out, img)
	}
	if out, err := d.run("", "rmi", ref); err != nil {
		t.Fatalf("rmi: %v %s", err, out)
	}
	if out, err := d.run("", "pull", ref); err != nil || !strings.Contains(out, img["digest"].(string)) {
		t.Fatalf("pull: %v %s", err, out)
	}
	if out, err := d.run("", "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref); err != nil || strings.TrimSpace(out) != host+"/hello@"+img["digest"].(string) {
		t.Fatalf("pulled digest: %v %q", err, out)
	}
	if out, err := d.run("", "tag", ref, host+"/unknown:v1"); err == nil {
		d.images = append(d.images, host+"/unknown:v1")
		if out, err := d.run("", "push", host+"/unknown:v1"); err == nil || !strings.Contains(out, "does not belong to an app") {
			t.Fatalf("push to an unknown repository: %v %s", err, out)
		}
	} else {
		t.Fatalf("tag: %s", out)
	}
}

// Deleting an app removes its registry repositories, nested ones too, and
// nothing of an app whose name merely starts the same: an app made again
// under the name starts with no images, tags or policy, and the old layers
// go at the next collection.
func TestIntegrationAppDeleteRemovesItsRepositories(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop")
	e.createApp("shop-two")
	o := &oci{t: t, base: e.URL, token: e.Admin}
	oldDigest, oldManifest := o.pushImage("shop", "v1")
	o.pushImage("shop/api", "v1")
	_, neighbour := o.pushImage("shop-two", "v1")
	if code, body := e.call("PUT", "/api/v1/images/policy", e.Admin, map[string]any{"repository": "shop", "immutable_tags": true}); code != 200 {
		t.Fatalf("policy: %d %v", code, body)
	}

	if code, body := e.call("DELETE", "/api/v1/apps/shop", e.Admin, nil); code != 204 {
		t.Fatalf("delete app: %d %v", code, body)
	}
	imagesOf := func(repo string) int {
		t.Helper()
		resp, body := o.do("GET", "/api/v1/images?repository="+repo, nil, map[string]string{"Authorization": "Bearer " + e.Admin})
		var imgs []map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(body, &imgs) != nil {
			t.Fatalf("list %s: %d %s", repo, resp.StatusCode, body)
		}
		return len(imgs)
	}
	if n, nested, other := imagesOf("shop"), imagesOf("shop/api"), imagesOf("shop-two"); n != 0 || nested != 0 || other != 1 {
		t.Fatalf("images after delete: shop %d, shop/api %d, shop-two %d; want 0, 0, 1", n, nested, other)
	}
	if resp, body := o.do("GET", "/v2/shop/manifests/v1", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("pull from a deleted app: %d %s", resp.StatusCode, body)
	}

	e.createApp("shop")
	if resp, body := o.do("GET", "/v2/shop/manifests/"+oldDigest, nil, nil); resp.StatusCode != 404 || ociCode(body) != "MANIFEST_UNKNOWN" {
		t.Fatalf("the old app's manifest in the new one: %d %s", resp.StatusCode, body)
	}
	if code, body := e.call("GET", "/api/v1/images/policy?repository=shop", e.Admin, nil); code != 200 || body["immutable_tags"] == true {
		t.Fatalf("the old app's policy in the new one: %d %v", code, body)
	}
	newDigest, _ := o.pushImage("shop", "v1")
	if resp, body := o.do("GET", "/v2/shop/tags/list", nil, nil); resp.StatusCode != 200 || !strings.Contains(string(body), `"v1"`) || newDigest == oldDigest {
		t.Fatalf("tags of the new app: %d %s", resp.StatusCode, body)
	}

	code, report := e.call("POST", "/api/v1/images/gc", e.Admin, map[string]any{"grace": "0s"})
	if code != 200 {
		t.Fatalf("gc: %d %v", code, report)
	}
	var layers struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	_ = json.Unmarshal(oldManifest, &layers)
	deleted := fmt.Sprint(report["deleted_blobs"])
	if !strings.Contains(deleted, layers.Layers[0].Digest) {
		t.Fatalf("the deleted app's layer %s survived gc: %v", layers.Layers[0].Digest, report)
	}
	_ = json.Unmarshal(neighbour, &layers)
	if resp, _ := o.do("HEAD", "/v2/shop-two/blobs/"+layers.Layers[0].Digest, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("shop-two's layer after gc: %d", resp.StatusCode)
	}
}
