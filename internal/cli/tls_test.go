package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/testtool"
	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// testCA is a throwaway CA that issues certificates into a directory.
type testCA struct {
	*tlstest.CA
	dir, file string // file: the CA's certificate, PEM
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca := &testCA{CA: tlstest.NewCA(t), dir: t.TempDir()}
	ca.file = ca.write(t, name+"-ca.pem", ca.PEM)
	return ca
}

func (ca *testCA) write(t *testing.T, name string, pemBytes []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a server certificate for 127.0.0.1 and localhost, valid
// from notBefore to notAfter, and returns its certificate and key files.
func (ca *testCA) issue(t *testing.T, name string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	crt, key := ca.Issue(t, notBefore, notAfter, "localhost", "127.0.0.1", "::1")
	return ca.write(t, name+".pem", crt), ca.write(t, name+"-key.pem", key)
}

// startTLSServer runs `slipway server --tls-cert --tls-key` in-process on a
// free loopback port until the test ends, and returns its address, data
// directory and what it printed at start.
func startTLSServer(t *testing.T, certFile, keyFile, caFile string) (addr, data string, startup *testtool.Output) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	data = t.TempDir()
	root := NewRoot()
	root.SetArgs([]string{"server", "--addr", addr, "--data", data, "--tls-cert", certFile, "--tls-key", keyFile, "--log-format", "json"})
	startup = &testtool.Output{}
	root.SetOut(startup)
	root.SetErr(startup)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	hc := httpsClient(t, caFile, true)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := hc.Get("https://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v\n%s", err, startup)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start\n%s", startup)
		}
	}
	return addr, data, startup
}

// httpsClient trusts the CA in caFile; h2 says whether it offers HTTP/2.
func httpsClient(t *testing.T, caFile string, h2 bool) *http.Client {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestIntegrationControlPlaneTLS(t *testing.T) {
	ca := newTestCA(t, "slipway-test")
	other := newTestCA(t, "other")
	certFile, keyFile := ca.issue(t, "server", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	addr, data, startup := startTLSServer(t, certFile, keyFile, ca.file)
	url := "https://" + addr
	tok, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(tok))
	if out := startup.String(); !strings.Contains(out, "slipway login "+url+" --token") || !strings.Contains(out, "--ca-file") {
		t.Fatalf("the start-up message does not give the https:// login:\n%s", out)
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("SLIPWAY_URL", "")
	t.Setenv("SLIPWAY_TOKEN", "")
	t.Setenv("SLIPWAY_CA_FILE", "")

	// Not trusted: the error says what to pass, also when the CA given is another.
	_, _, err = slipway(t, "", "login", url, "--token", admin)
	if err == nil || !strings.Contains(err.Error(), "does not trust") || !strings.Contains(err.Error(), "pass --ca-file FILE") {
		t.Fatalf("login without --ca-file: %v", err)
	}
	_, _, err = slipway(t, "", "login", url, "--token", admin, "--ca-file", other.file)
	if err == nil || !strings.Contains(err.Error(), "the CA in "+other.file+" (--ca-file) did not sign it") {
		t.Fatalf("login with another CA: %v", err)
	}
	if _, _, err := slipway(t, "", "login", "http://"+addr, "--token", admin); err == nil || !strings.Contains(err.Error(), "serves HTTPS only: use "+url) {
		t.Fatalf("login at http://: %v", err)
	}

	// Logged in with the CA, later commands verify the server with it.
	out, _, err := slipway(t, "", "login", url, "--token", admin, "--ca-file", ca.file)
	if err != nil || !strings.Contains(out, "trust the CA in "+ca.file) {
		t.Fatalf("login --ca-file: %q %v", out, err)
	}
	cfgPath, _ := configPath()
	if b, _ := os.ReadFile(cfgPath); !strings.Contains(string(b), "ca_file: "+ca.file) {
		t.Fatalf("the config does not keep the CA file:\n%s", b)
	}
	app := fmt.Sprintf("tls%d", time.Now().UnixNano()%1e6) // the engine's images of it go by its name
	if _, _, err := slipway(t, "", "app", "create", app); err != nil {
		t.Fatalf("app create: %v", err)
	}
	out, _, err = slipway(t, "", "app", "list", "--output", "json")
	var apps []struct{ Name string }
	if err != nil || json.Unmarshal([]byte(out), &apps) != nil || len(apps) != 1 || apps[0].Name != app {
		t.Fatalf("app list: %q %v", out, err)
	}

	// Elsewhere (no stored config): SLIPWAY_CA_FILE works as --ca-file does.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("SLIPWAY_URL", url)
	t.Setenv("SLIPWAY_TOKEN", admin)
	if _, _, err := slipway(t, "", "app", "list", "--output", "json"); err == nil || !strings.Contains(err.Error(), "pass --ca-file FILE") {
		t.Fatalf("app list without a CA: %v", err)
	}
	if _, _, err := slipway(t, "", "app", "list", "--ca-file", filepath.Join(ca.dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "read the CA file (--ca-file)") {
		t.Fatalf("a missing CA file: %v", err)
	}
	t.Setenv("SLIPWAY_CA_FILE", ca.file)
	if out, _, err := slipway(t, "", "app", "list", "--output", "json"); err != nil || !strings.Contains(out, app) {
		t.Fatalf("app list with SLIPWAY_CA_FILE: %q %v", out, err)
	}

	// HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 at least.
	for _, h2 := range []bool{true, false} {
		resp, err := httpsClient(t, ca.file, h2).Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want || resp.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("HTTP/2 offered %v: got %s over TLS %x", h2, resp.Proto, resp.TLS.Version)
		}
	}
	old := httpsClient(t, ca.file, true)
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if resp, err := old.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 client was served")
	}

	// git over https trusting the CA, and a pipeline whose image action
	// has the Docker engine push to the registry at the same address.
	t.Cleanup(func() {
		if ids, _ := exec.Command("docker", "images", "-q", "--filter", "label=slipway.app="+app).Output(); len(bytes.TrimSpace(ids)) > 0 {
			exec.Command("docker", append([]string{"rmi", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
	})
	work := t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "http.sslCAInfo=" + ca.file}, args...)...)
		cmd.Dir = dir
		// GIT_SSL_CAINFO would win over http.sslCAInfo.
		env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GIT_SSL_CAINFO=") })
		cmd.Env = append(env, "HOME="+work, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	files := map[string]string{
		"slipway.yaml": "on: {}\nstages:\n  - name: Package\n    actions:\n      - {name: image, type: image, tags: [latest]}\n",
		"Dockerfile":   "FROM scratch\nLABEL slipway.test=1\nCOPY payload.txt /payload.txt\n",
		"payload.txt":  "payload",
	}
	for name, body := range files {
		os.WriteFile(filepath.Join(work, name), []byte(body), 0o644)
	}
	remote := "https://x:" + admin + "@" + addr + "/git/" + app + ".git"
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-qm", "x")
	git(work, "push", "-q", remote, "main")
	git(work, "clone", "-q", remote, filepath.Join(work, "clone"))
	out, _, err = slipway(t, "", "run", "start", app, "--ref", "main", "--watch")
	if err != nil || !strings.Contains(out, "succeeded Package/image") {
		logs, _, _ := slipway(t, "", "run", "logs", "1")
		t.Fatalf("run over https: %v\n%s\n%s", err, out, logs)
	}
	logs, _, err := slipway(t, "", "run", "logs", "1")
	if err != nil || !strings.Contains(logs, fmt.Sprintf("Pushed %s/%s@sha256:", addr, app)) {
		t.Fatalf("the image was not pushed to %s: %v\n%s", addr, err, logs)
	}
	// The engine pulls from there as a deployment's tasks do, with a
	// Docker config of the test's own.
	dockerConfig := t.TempDir()
	docker := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command("docker", append([]string{"--config", dockerConfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %v: %v %s", args, err, out)
		}
	}
	docker(admin, "login", "-u", "x", "--password-stdin", addr)
	docker("", "pull", "-q", addr+"/"+app+":latest")
}

// `slipway server` refuses, before it makes its data directory, a TLS
// flag set that would fail every client.
func TestServerTLSFlagErrors(t *testing.T) {
	ca := newTestCA(t, "flags")
	now := time.Now()
	cert, key := ca.issue(t, "good", now.Add(-time.Hour), now.Add(time.Hour))
	_, otherKey := ca.issue(t, "other", now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := ca.issue(t, "expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	early, earlyKey := ca.issue(t, "early", now.Add(time.Hour), now.Add(48*time.Hour))
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"certificate without key", []string{"--tls-cert", cert}, "--tls-cert needs --tls-key"},
		{"key without certificate", []string{"--tls-key", key}, "--tls-key needs --tls-cert"},
		{"missing key file", []string{"--tls-cert", cert, "--tls-key", cert + ".nope"}, "--tls-key: open " + cert + ".nope: no such file"},
		{"swapped", []string{"--tls-cert", key, "--tls-key", cert}, "are --tls-cert and --tls-key swapped?"},
		{"mismatched pair", []string{"--tls-cert", cert, "--tls-key", otherKey}, "--tls-key " + otherKey + " is not the private key of the certificate in --tls-cert " + cert},
		{"expired", []string{"--tls-cert", expired, "--tls-key", expiredKey}, "--tls-cert " + expired + " expired on"},
		{"not yet valid", []string{"--tls-cert", early, "--tls-key", earlyKey}, "is not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			_, _, err := slipway(t, "", append([]string{"server", "--addr", "127.0.0.1:0", "--data", data}, tt.flags...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("the server started making its data directory: %v", err)
			}
		})
	}
}

func TestLoginURLNamesTheCertificatesHost(t *testing.T) {
	leaf := &x509.Certificate{DNSNames: []string{"*.example.com", "slipway.example.com"}}
	for addr, want := range map[string]string{
		"0.0.0.0:7070":            "https://slipway.example.com:7070",
		"slipway.example.com:443": "https://slipway.example.com:443",
	} {
		if got := loginURL(addr, leaf); got != want {
			t.Errorf("loginURL(%s) = %s, want %s", addr, got, want)
		}
	}
	if got := loginURL("127.0.0.1:7070", nil); got != "http://127.0.0.1:7070" {
		t.Errorf("without TLS: %s", got)
	}
}
