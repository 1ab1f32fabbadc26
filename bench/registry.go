package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// registryThroughput pushes and pulls a 200 MiB single-layer image with the
// real docker CLI and compares each with a plain copy of the same bytes on
// the same disk.
func registryThroughput(e *env) (map[string]any, string, error) {
	const size = 200 << 20
	if err := e.start(); err != nil {
		return nil, "", err
	}
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, "", err
	}
	dir := filepath.Join(e.dir, "img")
	os.MkdirAll(dir, 0o755)
	blob := filepath.Join(dir, "blob.bin")
	f, err := os.Create(blob)
	if err != nil {
		return nil, "", err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return nil, "", err
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nLABEL slipway.bench=1\nCOPY blob.bin /blob.bin\n"), 0o644)
	host := strings.TrimPrefix(e.url, "http://")
	ref := host + "/bench:big"
	dockerCfg := filepath.Join(e.dir, "docker")
	docker := func(stdin string, args ...string) error {
		c := exec.Command("docker", args...)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg, "DOCKER_BUILDKIT=0")
		c.Stdin = strings.NewReader(stdin)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("docker %s: %v: %s", args[0], err, out)
		}
		return nil
	}
	defer docker("", "rmi", "-f", ref)
	if err := docker("", "build", "-q", "-t", ref, dir); err != nil {
		return nil, "", err
	}
	if err := docker(e.token+"\n", "login", host, "-u", "bench", "--password-stdin"); err != nil {
		return nil, "", err
	}
	start := time.Now()
	if err := docker("", "push", ref); err != nil {
		return nil, "", err
	}
	push := time.Since(start)
	if err := docker("", "rmi", "-f", ref); err != nil {
		return nil, "", err
	}
	start = time.Now()
	if err := docker("", "pull", ref); err != nil {
		return nil, "", err
	}
	pull := time.Since(start)
	// Reference: copy the same bytes to a new file on the same disk, synced.
	start = time.Now()
	src, _ := os.Open(blob)
	dst, _ := os.Create(blob + ".copy")
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	src.Close()
	dst.Close()
	if err != nil {
		return nil, "", err
	}
	cp := time.Since(start)
	rawUp, rawDown, err := rawBlob(e, blob)
	if err != nil {
		return nil, "", err
	}
	mibps := func(d time.Duration) float64 { return float64(size>>20) / d.Seconds() }
	f2 := map[string]any{"bytes": size, "push_mib_s": mibps(push), "pull_mib_s": mibps(pull), "copy_mib_s": mibps(cp),
		"push_vs_copy": cp.Seconds() / push.Seconds(), "pull_vs_copy": cp.Seconds() / pull.Seconds(),
		"raw_upload_mib_s": mibps(rawUp), "raw_download_mib_s": mibps(rawDown),
		"raw_upload_vs_copy": cp.Seconds() / rawUp.Seconds(), "raw_download_vs_copy": cp.Seconds() / rawDown.Seconds()}
	return f2, fmt.Sprintf("200 MiB layer: docker push %.0f MiB/s (%.2f× file copy), docker pull %.0f MiB/s (%.2f×); raw blob upload %.0f MiB/s (%.2f×), download %.0f MiB/s (%.2f×); copy %.0f MiB/s",
		f2["push_mib_s"], f2["push_vs_copy"], f2["pull_mib_s"], f2["pull_vs_copy"], f2["raw_upload_mib_s"], f2["raw_upload_vs_copy"],
		f2["raw_download_mib_s"], f2["raw_download_vs_copy"], f2["copy_mib_s"]), nil
}

// rawBlob uploads and downloads the file as one blob over the distribution
// API, without docker's compression, to show the server's own throughput.
func rawBlob(e *env, path string) (up, down time.Duration, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return 0, 0, err
	}
	dgst := "sha256:" + hex.EncodeToString(h.Sum(nil))
	f.Seek(0, io.SeekStart)
	st, _ := f.Stat()
	req, _ := http.NewRequest("POST", e.url+"/v2/bench/blobs/uploads/", nil)
	req.SetBasicAuth("bench", e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = e.url + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	start := time.Now()
	req, _ = http.NewRequest("PUT", loc+sep+"digest="+dgst, f)
	req.ContentLength = st.Size()
	req.SetBasicAuth("bench", e.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return 0, 0, fmt.Errorf("raw upload: %s", resp.Status)
	}
	up = time.Since(start)
	start = time.Now()
	req, _ = http.NewRequest("GET", e.url+"/v2/bench/blobs/"+dgst, nil)
	req.SetBasicAuth("bench", e.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != st.Size() {
		return 0, 0, fmt.Errorf("raw download: %d bytes, %v", n, err)
	}
	return up, time.Since(start), nil
}
