package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/blob"
)

// Sizes of the blobs benchmark: one large object and many small ones,
// as an image has one big layer beside small ones and a run stores a
// bundle beside small reports.
const (
	blobsBig          = 64 << 20
	blobsSmall        = 100 << 10
	blobsSmallLayers  = 40
	blobsSmallObjects = 200
	blobsGoal         = 0.8
)

// blobsS3 measures blobs on S3 against the data directory in one run:
// versitygw on loopback (a real S3 server that checks signatures) serves
// the S3 side. Registry layers go through two slipway servers, one on each
// store, over the distribution API; artifacts through artifact.Store on
// each driver in this process. Rounds run filesystem, S3, S3, filesystem
// with fresh bytes each (the stores are content-addressed) and each figure
// is the best of its two rounds, so a moment of load elsewhere on the
// machine hurts neither side alone.
func blobsS3(e *env) (map[string]any, string, error) {
	ctx := context.Background()
	// main keeps its temporary directory when a bench fails (os.Exit), and
	// this one leaves a few hundred MiB there: remove it here either way,
	// once the server using it is stopped.
	defer func() {
		e.stop()
		os.RemoveAll(e.dir)
	}()
	vgw, err := startVersitygw(filepath.Join(e.dir, "s3"))
	if err != nil {
		return nil, "", err
	}
	defer vgw.stop()

	// The servers take --blob-store's default and the AWS credentials from
	// the environment they inherit; the filesystem one must not see S3.
	restore := setenv([]string{"SLIPWAY_BLOB_STORE="})
	defer restore()
	if err := e.start(); err != nil {
		return nil, "", err
	}
	restoreS3 := setenv(append(vgw.env(), "SLIPWAY_BLOB_STORE="+vgw.url("slipway")))
	defer restoreS3()
	se := &env{bin: e.bin, dir: filepath.Join(e.dir, "s3-server")}
	defer se.stop()
	if err := se.start(); err != nil {
		return nil, "", fmt.Errorf("server on S3: %w", err)
	}
	for _, srv := range []*env{e, se} {
		if err := srv.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
			return nil, "", err
		}
	}
	var regFS, regS3 tput
	for i, srv := range []*env{e, se, se, e} {
		t, err := registryRound(srv, filepath.Join(e.dir, fmt.Sprintf("layer%d.bin", i)))
		if err != nil {
			return nil, "", fmt.Errorf("registry round %d: %w", i, err)
		}
		if srv == e {
			regFS.best(t)
		} else {
			regS3.best(t)
		}
	}
	// Idle servers only add noise to the in-process part.
	se.stop()
	e.stop()

	fsDriver, err := blob.Open(ctx, blob.Config{}, filepath.Join(e.dir, "artifacts-fs"))
	if err != nil {
		return nil, "", err
	}
	cfg, err := blob.Parse(vgw.url("artifacts"))
	if err != nil {
		return nil, "", err
	}
	s3Driver, err := blob.Open(ctx, cfg, "")
	if err != nil {
		return nil, "", err
	}
	fsStore, s3Store := &artifact.Store{Driver: fsDriver}, &artifact.Store{Driver: s3Driver}
	var artFS, artS3, direct tput
	for i, st := range []*artifact.Store{fsStore, s3Store, s3Store, fsStore} {
		big, small := randomBlob(blobsBig), make([][]byte, blobsSmallObjects)
		for j := range small {
			small[j] = randomBlob(blobsSmall)
		}
		t, err := artifactRound(ctx, st, big, small)
		if err != nil {
			return nil, "", fmt.Errorf("artifact round %d: %w", i, err)
		}
		if st == fsStore {
			artFS.best(t)
			continue
		}
		artS3.best(t)
		// What Put would cost without blob.Upload's temporary key and Move
		// (a server-side copy on S3): the same bytes written to their final
		// key directly. Not what the store does; it shows where time goes.
		d, err := directPuts(ctx, s3Driver, fmt.Sprintf("/direct/%d", i), big, small)
		if err != nil {
			return nil, "", fmt.Errorf("direct puts: %w", err)
		}
		direct.best(d)
	}

	// The floor: what versitygw itself does for the plainest client, one
	// PutObject or GetObject per object from the SDK (no Slipway, no
	// multipart, no temporary key). Set against the artifact store on the
	// filesystem, a ratio below the goal is one Slipway cannot reach on
	// this S3 server and machine, whatever its own client does.
	var floorS3 tput
	for i := range 2 {
		big, small := randomBlob(blobsBig), make([][]byte, blobsSmallObjects)
		for j := range small {
			small[j] = randomBlob(blobsSmall)
		}
		t, err := vgw.objectRound(fmt.Sprintf("floor-%d", i), big, small)
		if err != nil {
			return nil, "", fmt.Errorf("S3 floor: %w", err)
		}
		floorS3.best(t)
	}

	f := map[string]any{"big_bytes": blobsBig, "small_bytes": blobsSmall, "small_layers": blobsSmallLayers,
		"small_objects": blobsSmallObjects, "goal_s3_vs_fs": blobsGoal}
	type row struct {
		name    string
		fs, s3  float64
		summary string
	}
	rows := []row{
		{"registry_big_upload", regFS.upBig, regS3.upBig, "registry 64 MiB layer upload"},
		{"registry_big_download", regFS.downBig, regS3.downBig, "download"},
		{"registry_small_upload", regFS.upSmall, regS3.upSmall, fmt.Sprintf("%d×100 KiB layers upload", blobsSmallLayers)},
		{"registry_small_download", regFS.downSmall, regS3.downSmall, "download"},
		{"artifact_big_put", artFS.upBig, artS3.upBig, "artifact 64 MiB put"},
		{"artifact_big_get", artFS.downBig, artS3.downBig, "get"},
		{"artifact_small_put", artFS.upSmall, artS3.upSmall, fmt.Sprintf("%d×100 KiB put", blobsSmallObjects)},
		{"artifact_small_get", artFS.downSmall, artS3.downSmall, "get"},
	}
	parts, below := []string{}, []string{}
	for _, r := range rows {
		ratio := r.s3 / r.fs
		f[r.name+"_fs_mib_s"], f[r.name+"_s3_mib_s"], f[r.name+"_s3_vs_fs"] = r.fs, r.s3, ratio
		if ratio < blobsGoal {
			below = append(below, r.name)
		}
		parts = append(parts, fmt.Sprintf("%s %.2f× (%.0f vs %.0f MiB/s)", r.summary, ratio, r.s3, r.fs))
	}
	f["below_goal"] = below
	floor := []row{
		{"floor_big_put", artFS.upBig, floorS3.upBig, "64 MiB put"},
		{"floor_big_get", artFS.downBig, floorS3.downBig, "get"},
		{"floor_small_put", artFS.upSmall, floorS3.upSmall, fmt.Sprintf("%d×100 KiB put", blobsSmallObjects)},
		{"floor_small_get", artFS.downSmall, floorS3.downSmall, "get"},
	}
	var floorParts, floorBelow []string
	for _, r := range floor {
		ratio := r.s3 / r.fs
		f[r.name+"_fs_mib_s"], f[r.name+"_s3_mib_s"], f[r.name+"_s3_vs_fs"] = r.fs, r.s3, ratio
		if ratio < blobsGoal {
			floorBelow = append(floorBelow, r.name)
		}
		floorParts = append(floorParts, fmt.Sprintf("%s %.2f× (%.0f vs %.0f MiB/s)", r.summary, ratio, r.s3, r.fs))
	}
	f["floor_below_goal"] = floorBelow
	f["s3_direct_big_put_mib_s"], f["s3_direct_small_put_mib_s"] = direct.upBig, direct.upSmall
	verdict := "goal ≥ 0.8× met everywhere"
	if len(below) > 0 {
		verdict = fmt.Sprintf("goal ≥ 0.8× not met for %s", strings.Join(below, ", "))
	}
	return f, fmt.Sprintf("S3 (versitygw) vs filesystem: %s; %s. S3 put straight to the final key, without the temporary key and copy: 64 MiB %.0f MiB/s, 100 KiB %.0f MiB/s. "+
		"The S3 server's floor, one PutObject/GetObject per object from the SDK, against the artifact store on the filesystem: %s",
		strings.Join(parts, ", "), verdict, direct.upBig, direct.upSmall, strings.Join(floorParts, ", ")), nil
}

// tput is throughput in MiB/s of one large and many small blobs.
type tput struct{ upBig, downBig, upSmall, downSmall float64 }

func (t *tput) best(o tput) {
	t.upBig, t.downBig = max(t.upBig, o.upBig), max(t.downBig, o.downBig)
	t.upSmall, t.downSmall = max(t.upSmall, o.upSmall), max(t.downSmall, o.downSmall)
}

func mibPerSec(bytes int, d time.Duration) float64 { return float64(bytes) / (1 << 20) / d.Seconds() }

func randomBlob(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// registryRound pushes and pulls one large layer (rawBlob, the
// registry-throughput bench's raw upload) and then the small ones, fresh
// random bytes each.
func registryRound(e *env, bigPath string) (tput, error) {
	if err := os.WriteFile(bigPath, randomBlob(blobsBig), 0o644); err != nil {
		return tput{}, err
	}
	defer os.Remove(bigPath)
	small := make([][]byte, blobsSmallLayers)
	for i := range small {
		small[i] = randomBlob(blobsSmall)
	}
	// Dirty pages of the last round or of the file just written are not
	// this round's to write back.
	syscall.Sync()
	up, down, err := rawBlob(e, bigPath)
	if err != nil {
		return tput{}, err
	}
	upSmall, downSmall, err := smallLayers(e, small)
	if err != nil {
		return tput{}, err
	}
	total := blobsSmallLayers * blobsSmall
	return tput{mibPerSec(blobsBig, up), mibPerSec(blobsBig, down), mibPerSec(total, upSmall), mibPerSec(total, downSmall)}, nil
}

// smallLayers uploads each blob, then downloads each, over the
// distribution API. Unlike rawBlob it times the upload's POST too: for a
// small layer that round trip is a good part of the cost.
func smallLayers(e *env, blobs [][]byte) (up, down time.Duration, err error) {
	digests := make([]string, len(blobs))
	for i, b := range blobs {
		sum := sha256.Sum256(b)
		digests[i] = "sha256:" + hex.EncodeToString(sum[:])
	}
	do := func(method, u string, body []byte) (*http.Response, error) {
		req, _ := http.NewRequest(method, u, bytes.NewReader(body))
		req.SetBasicAuth("bench", e.token)
		return http.DefaultClient.Do(req)
	}
	start := time.Now()
	for i, b := range blobs {
		resp, err := do("POST", e.url+"/v2/bench/blobs/uploads/", nil)
		if err != nil {
			return 0, 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return 0, 0, fmt.Errorf("start upload: %s", resp.Status)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			return 0, 0, err
		}
		base, _ := url.Parse(e.url)
		loc = base.ResolveReference(loc)
		q := loc.Query()
		q.Set("digest", digests[i])
		loc.RawQuery = q.Encode()
		resp, err = do("PUT", loc.String(), b)
		if err != nil {
			return 0, 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return 0, 0, fmt.Errorf("upload: %s", resp.Status)
		}
	}
	up = time.Since(start)
	start = time.Now()
	for i, b := range blobs {
		resp, err := do("GET", e.url+"/v2/bench/blobs/"+digests[i], nil)
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(b)) {
			return 0, 0, fmt.Errorf("download: %s, %d bytes, %v", resp.Status, n, err)
		}
	}
	return up, time.Since(start), nil
}

// artifactRound puts the large blob and gets it back, then the small ones.
func artifactRound(ctx context.Context, st *artifact.Store, big []byte, small [][]byte) (tput, error) {
	syscall.Sync()
	put := func(b []byte) (string, error) {
		sum, n, err := st.Put(ctx, stream(b))
		if err == nil && n != int64(len(b)) {
			err = fmt.Errorf("put stored %d of %d bytes", n, len(b))
		}
		return sum, err
	}
	get := func(sum string, size int) error {
		rc, err := st.Open(ctx, sum)
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil && n != int64(size) {
			err = fmt.Errorf("got %d of %d bytes", n, size)
		}
		return err
	}
	var t tput
	start := time.Now()
	sum, err := put(big)
	if err != nil {
		return t, err
	}
	t.upBig = mibPerSec(len(big), time.Since(start))
	start = time.Now()
	if err := get(sum, len(big)); err != nil {
		return t, err
	}
	t.downBig = mibPerSec(len(big), time.Since(start))
	sums := make([]string, len(small))
	start = time.Now()
	for i, b := range small {
		if sums[i], err = put(b); err != nil {
			return t, err
		}
	}
	t.upSmall = mibPerSec(len(small)*blobsSmall, time.Since(start))
	start = time.Now()
	for i, sum := range sums {
		if err := get(sum, len(small[i])); err != nil {
			return t, err
		}
	}
	t.downSmall = mibPerSec(len(small)*blobsSmall, time.Since(start))
	return t, nil
}

// directPuts writes each blob with the driver's own writer under dir,
// hashing it as Put does, with no temporary key and no move.
func directPuts(ctx context.Context, d storagedriver.StorageDriver, dir string, big []byte, small [][]byte) (tput, error) {
	put := func(key string, b []byte) error {
		w, err := d.Writer(ctx, key, false)
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), stream(b)); err != nil {
			w.Cancel(ctx)
			return err
		}
		if err := w.Commit(ctx); err != nil {
			w.Cancel(ctx)
			return err
		}
		return w.Close()
	}
	var t tput
	start := time.Now()
	if err := put(dir+"/big", big); err != nil {
		return t, err
	}
	t.upBig = mibPerSec(len(big), time.Since(start))
	start = time.Now()
	for i, b := range small {
		if err := put(fmt.Sprintf("%s/small/%d", dir, i), b); err != nil {
			return t, err
		}
	}
	t.upSmall = mibPerSec(len(small)*blobsSmall, time.Since(start))
	return t, nil
}

// objectRound puts and gets the blobs as objects under prefix, one
// PutObject or GetObject each: the least an S3 client can ask.
func (v *versitygw) objectRound(prefix string, big []byte, small [][]byte) (tput, error) {
	var t tput
	sess, err := session.NewSession(aws.NewConfig().
		WithCredentials(credentials.NewStaticCredentials(v.access, v.secret, "")).
		WithRegion(benchRegion).WithEndpoint(v.endpoint).WithS3ForcePathStyle(true))
	if err != nil {
		return t, err
	}
	c := s3.New(sess)
	put := func(key string, b []byte) error {
		_, err := c.PutObject(&s3.PutObjectInput{Bucket: aws.String(benchBucket), Key: aws.String(key), Body: bytes.NewReader(b)})
		return err
	}
	get := func(key string, want int) error {
		out, err := c.GetObject(&s3.GetObjectInput{Bucket: aws.String(benchBucket), Key: aws.String(key)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		n, err := io.Copy(io.Discard, out.Body)
		if err == nil && n != int64(want) {
			err = fmt.Errorf("%s: read %d bytes, want %d", key, n, want)
		}
		return err
	}
	start := time.Now()
	if err := put(prefix+"/big", big); err != nil {
		return t, err
	}
	t.upBig = mibPerSec(len(big), time.Since(start))
	start = time.Now()
	if err := get(prefix+"/big", len(big)); err != nil {
		return t, err
	}
	t.downBig = mibPerSec(len(big), time.Since(start))
	start = time.Now()
	for i, b := range small {
		if err := put(fmt.Sprintf("%s/small/%d", prefix, i), b); err != nil {
			return t, err
		}
	}
	t.upSmall = mibPerSec(len(small)*blobsSmall, time.Since(start))
	start = time.Now()
	for i := range small {
		if err := get(fmt.Sprintf("%s/small/%d", prefix, i), blobsSmall); err != nil {
			return t, err
		}
	}
	t.downSmall = mibPerSec(len(small)*blobsSmall, time.Since(start))
	return t, nil
}

// stream hides bytes.Reader's WriteTo, so that a put sees 32 KiB writes
// as from a pipe (a tar being packed) rather than one write of it all.
func stream(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }

// versitygw is an S3 server on loopback with one bucket, serving a posix
// directory; the process dies with this one (Pdeathsig).
type versitygw struct {
	endpoint, access, secret string
	cmd                      *exec.Cmd
	exited                   chan struct{}
}

const (
	benchBucket = "slipway-bench"
	benchRegion = "us-east-1"
)

// startVersitygw builds versitygw (the go.mod tool, cached after the first
// build) and starts it on a free port, retrying on another port if one
// was taken between picking and binding it.
func startVersitygw(dir string) (*versitygw, error) {
	out, err := exec.Command("go", "tool", "-n", "versitygw").Output()
	bin := strings.TrimSpace(string(out))
	if err != nil || bin == "" {
		return nil, fmt.Errorf("build versitygw (go tool -n versitygw): %v", err)
	}
	root := filepath.Join(dir, "posix")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "versitygw.log")
	v := &versitygw{access: "BENCH" + strings.ToUpper(hex.EncodeToString(randomBlob(7))), secret: hex.EncodeToString(randomBlob(20))}
	for range 3 {
		addr := freeAddr()
		v.endpoint = "http://" + addr
		if err = v.start(bin, addr, root, logPath); err == nil {
			break
		}
	}
	if err != nil {
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("versitygw: %v: %s", err, log)
	}
	sess, err := session.NewSession(aws.NewConfig().
		WithCredentials(credentials.NewStaticCredentials(v.access, v.secret, "")).
		WithRegion(benchRegion).WithEndpoint(v.endpoint).WithS3ForcePathStyle(true))
	if err == nil {
		_, err = s3.New(sess).CreateBucket(&s3.CreateBucketInput{Bucket: aws.String(benchBucket)})
	}
	if err != nil {
		v.stop()
		return nil, fmt.Errorf("versitygw: create bucket: %w", err)
	}
	return v, nil
}

func (v *versitygw) start(bin, addr, root, logPath string) error {
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "--access", v.access, "--secret", v.secret, "--region", benchRegion,
		"--port", addr, "--quiet", "--keep-alive", "posix", root)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	v.cmd, v.exited = cmd, exited
	// Any answer will do: versitygw refuses the unsigned request with 403.
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if resp, err := client.Get(v.endpoint + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			v.cmd = nil
			return errors.New("exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
	}
	v.stop()
	return errors.New("not answering after 30 s")
}

func (v *versitygw) stop() {
	if v.cmd != nil {
		_ = v.cmd.Process.Kill()
		<-v.exited
		v.cmd = nil
	}
}

// env is the AWS environment of a client of this server; it also keeps
// the developer's own AWS files and the EC2 metadata service out.
func (v *versitygw) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + v.access, "AWS_SECRET_ACCESS_KEY=" + v.secret, "AWS_SESSION_TOKEN=",
		"AWS_REGION=" + benchRegion, "AWS_ENDPOINT_URL_S3=" + v.endpoint, "AWS_PROFILE=",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_CONFIG_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// url is the --blob-store value for keys under prefix.
func (v *versitygw) url(prefix string) string {
	q := url.Values{"region": {benchRegion}, "endpoint": {v.endpoint}, "path-style": {"true"}}
	return "s3://" + benchBucket + "/" + prefix + "?" + q.Encode()
}

// setenv sets KEY=VALUE pairs in this process, for the servers it starts
// to inherit and for the S3 driver in it, and returns what puts the old
// values back.
func setenv(kvs []string) func() {
	type old struct {
		key, val string
		set      bool
	}
	var olds []old
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		val, set := os.LookupEnv(k)
		olds = append(olds, old{k, val, set})
		os.Setenv(k, v)
	}
	return func() {
		for i := len(olds) - 1; i >= 0; i-- {
			if o := olds[i]; o.set {
				os.Setenv(o.key, o.val)
			} else {
				os.Unsetenv(o.key)
			}
		}
	}
}
