package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/slipway-dev/slipway/internal/container/containertest"
)

func TestScopeDockerfile(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		err            error
	}{
		{"a cache mount by its target", "FROM x\nRUN --mount=type=cache,target=/root/.cache go build\n",
			"FROM x\nRUN --mount=type=cache,target=/root/.cache,id=app/s/root/.cache go build\n", nil},
		{"its own id follows the scope", "RUN --mount=type=cache,id=gomod,target=/go/pkg/mod go mod download\n",
			"RUN --mount=type=cache,target=/go/pkg/mod,id=app/s/gomod go mod download\n", nil},
		{"an id naming another app's cache stays under this scope", "RUN --mount=type=cache,id=other/x/root/.cache,target=/c true\n",
			"RUN --mount=type=cache,target=/c,id=app/s/other/x/root/.cache true\n", nil},
		{"quoted, upper case, dst", `RUN --mount="type=cache","dst=/c" true` + "\n",
			`RUN --mount="type=cache","dst=/c",id=app/s/c true` + "\n", nil},
		{"two flags on a continued line", "RUN --mount=type=cache,target=/a \\\n  --mount=type=bind,source=x,target=/x \\\n  --mount=type=cache,target=/b true\n",
			"RUN --mount=type=cache,target=/a,id=app/s/a \\\n  --mount=type=bind,source=x,target=/x \\\n  --mount=type=cache,target=/b,id=app/s/b true\n", nil},
		{"other mounts untouched", "RUN --mount=type=secret,id=npm cat /run/secrets/npm\n", "RUN --mount=type=secret,id=npm cat /run/secrets/npm\n", nil},
		{"Docker's frontend", "# syntax=docker/dockerfile:1.7\nFROM x\n", "# syntax=docker/dockerfile:1.7\nFROM x\n", nil},
		{"another frontend", "# syntax=example.com/evil/frontend:1\nFROM x\n", "", ErrOwnFrontend},
		{"another frontend, spaced and upper case", "#  SYNTAX = evil/frontend\nFROM x\n", "", ErrOwnFrontend},
		{"a comment after the first instruction is no directive", "FROM x\n# syntax=evil/frontend\n", "FROM x\n# syntax=evil/frontend\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := scopeDockerfile([]byte(c.in), "app/s")
			if !errors.Is(err, c.err) || c.err == nil && string(got) != c.want {
				t.Fatalf("scopeDockerfile =\n%s (%v)\nwant\n%s (%v)", got, err, c.want, c.err)
			}
		})
	}
}

// Two builds on the engine with the same cache mount: the second sees
// what the first left only in the same scope. (The engine's BuildKit.)
func TestIntegrationCacheMountsKeptPerScope(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := Connect(ctx)
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	if e.builder != "2" {
		t.Skip("the engine builds without BuildKit: no cache mounts")
	}
	base := containertest.BusyboxImage(t)
	// buildContext is a build context of the Dockerfile running script with a
	// cache mount, its .dockerignore leaving out everything, and, with
	// link, the Dockerfile a link to the file holding it.
	buildContext := func(script string, link bool) *bytes.Buffer {
		var ctxTar bytes.Buffer
		tw := tar.NewWriter(&ctxTar)
		df := "FROM " + base + "\nRUN --mount=type=cache,target=/cache sh -c '" + script + "'\n"
		name := "./Dockerfile"
		if link {
			name = "real"
		}
		for n, text := range map[string]string{name: df, ".dockerignore": "*\n"} {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(text)), Typeflag: tar.TypeReg})
			io.WriteString(tw, text)
		}
		if link {
			tw.WriteHeader(&tar.Header{Name: "Dockerfile", Linkname: "real", Mode: 0o777, Typeflag: tar.TypeSymlink})
		}
		tw.Close()
		return &ctxTar
	}
	// What the RUN step printed (BuildKit's log carries it): RESULT=...
	build := func(scope, script string) string {
		t.Helper()
		var log bytes.Buffer
		id, err := e.Build(ctx, buildContext(script, false), BuildOptions{CacheScope: scope, Labels: map[string]string{"slipway.test": "1"}}, &log)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		t.Cleanup(func() { e.cli.ImageRemove(context.Background(), id, image.RemoveOptions{Force: true}) })
		for line := range strings.SplitSeq(log.String(), "\n") {
			if _, v, ok := strings.Cut(line, "RESULT="); ok && !strings.Contains(line, "echo") {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no RESULT in the build's log:\n%s", log.String())
		return ""
	}
	// Scopes unique to this test run: the engine's cache outlives it.
	nonce := time.Now().Format("150405.000000")
	if got := build("test-"+nonce+"/branch", "echo POISON > /cache/lib; echo RESULT=$(cat /cache/lib)"); got != "POISON" {
		t.Fatalf("the first build: %q", got)
	}
	if got := build("test-"+nonce+"/main", "echo RESULT=$(cat /cache/lib 2>/dev/null || echo clean)"); got != "clean" {
		t.Fatalf("another scope's build saw %q in its cache mount", got)
	}
	if got := build("test-"+nonce+"/branch", "echo RESULT=$(cat /cache/lib 2>/dev/null || echo nothing) again"); got != "POISON again" {
		t.Fatalf("the same scope's next build saw %q, not its own cache", got)
	}
	// A Dockerfile that is a link would have the engine read a file the
	// rewrite never saw (it did: the other scope read POISON).
	var log bytes.Buffer
	_, err = e.Build(ctx, buildContext("echo RESULT=$(cat /cache/lib 2>/dev/null || echo clean) link", true), BuildOptions{CacheScope: "test-" + nonce + "/main", Labels: map[string]string{"slipway.test": "1"}}, &log)
	if err == nil || !strings.Contains(err.Error(), "Dockerfile: not a regular file in the build context") {
		t.Fatalf("a Dockerfile that is a link: %v\n%s", err, log.String())
	}
}
