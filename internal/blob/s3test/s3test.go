// Package s3test runs a real S3 server for tests: versitygw serving a posix
// directory on 127.0.0.1, with a root access key and secret it makes for
// each Start. versitygw checks every request's signature (SigV4, presigned
// URLs included), so a test passes only if the client signs as AWS would.
//
// versitygw is a `tool` in go.mod; Start builds it with `go tool -n
// versitygw`, which the build cache keeps between runs (the first build
// takes about a minute on two cores), and skips the test when that fails.
package s3test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"

	"github.com/slipway-dev/slipway/internal/testtool"
)

// S3 is a running versitygw with one bucket; it stops when the test ends.
type S3 struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string

	t    testing.TB
	bin  string
	dir  string // the posix root: one directory per bucket
	addr string

	mu   sync.Mutex
	proc *process
	out  *testtool.Output
}

// Start runs versitygw until the test ends, with Bucket created. It skips
// the test if versitygw cannot be built and fails it if it does not come up.
func Start(t testing.TB) *S3 {
	t.Helper()
	bin := testtool.Binary(t, "versitygw")
	dir := t.TempDir()
	root := filepath.Join(dir, "posix")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s := &S3{
		Bucket:    "slipway-test",
		AccessKey: "SLIPWAY" + strings.ToUpper(randomHex(6)), // 19 characters, like AWS's 20
		SecretKey: randomHex(20),
		Region:    "us-east-1",
		t:         t,
		bin:       bin,
		dir:       root,
		out:       &testtool.Output{},
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", s.out.String())
		}
	})
	// A port is picked by listening and closing, so another process can
	// take it before versitygw binds it; versitygw then exits and we try
	// again on another.
	var err error
	for range 3 {
		s.addr, err = freeAddr()
		if err != nil {
			break
		}
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: %v; versitygw said:\n%s", err, s.out.String())
	}
	if err := s.createBucket(); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", s.Bucket, err)
	}
	return s
}

// Env is the AWS environment of a client of this server, for a child
// process (cmd.Env = append(os.Environ(), s.Env()...)). It also keeps the
// developer's own AWS files and the EC2 metadata service out of the test.
func (s *S3) Env() []string {
	none := filepath.Join(filepath.Dir(s.dir), "no-such-file")
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_PROFILE=",
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_CONFIG_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env in this process for the rest of the test (t.Setenv, so
// not in parallel tests; their parallel subtests are fine).
func (s *S3) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// URL is the --blob-store value for keys under prefix in Bucket.
func (s *S3) URL(prefix string) string {
	q := url.Values{"region": {s.Region}, "endpoint": {s.Endpoint}, "path-style": {"true"}}
	return "s3://" + s.Bucket + "/" + strings.Trim(prefix, "/") + "?" + q.Encode()
}

// Stop kills the server, to see how clients fare when S3 is down. The
// objects stay on disk for Restart.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.stop()
		s.proc = nil
	}
}

// Restart brings a stopped server back on the same address with the same
// objects and keys.
func (s *S3) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("s3test: restart: %v; versitygw said:\n%s", err, s.out.String())
}

func (s *S3) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin,
		"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.addr, "--quiet", "--keep-alive",
		"posix", s.dir)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	cmd.SysProcAttr = testtool.SysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := waitReady(s.Endpoint, p.exited); err != nil {
		p.stop()
		return err
	}
	s.proc = p
	return nil
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// waitReady waits for any HTTP answer: versitygw refuses an unsigned
// request with 403, which proves it is serving.
func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(endpoint + "/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				return fmt.Errorf("unsigned request answered %s, want 403 Forbidden: the server does not check signatures", res.Status)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not ready after 30s: %v", err)
		}
		select {
		case <-exited:
			return errors.New("versitygw exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *S3) createBucket() error {
	sess, err := session.NewSession(aws.NewConfig().
		WithCredentials(credentials.NewStaticCredentials(s.AccessKey, s.SecretKey, "")).
		WithRegion(s.Region).WithEndpoint(s.Endpoint).WithS3ForcePathStyle(true))
	if err != nil {
		return err
	}
	_, err = s3.New(sess).CreateBucket(&s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	return err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
