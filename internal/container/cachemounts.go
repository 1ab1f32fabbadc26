package container

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// BuildKit's cache mounts (RUN --mount=type=cache) live in the engine's
// builder, one namespace for every build it runs: by default a mount's id
// is its target path, so a build of one app (or of a branch anyone may
// push) could fill /root/.cache/go-build, or a module cache, for the next
// build of another app, or of the default branch, to compile from. Slipway
// rewrites each cache mount's id under the build's scope (its app and ref,
// see BuildOptions.CacheScope) before the Dockerfile reaches the engine,
// and refuses what would choose its own ids: a frontend other than
// Docker's own (# syntax=, or the BUILDKIT_SYNTAX build argument).

// maxDockerfile bounds the Dockerfile read to rewrite it.
const maxDockerfile = 1 << 20

// mountFlag is a RUN instruction's --mount=SPEC flag.
var mountFlag = regexp.MustCompile(`--mount=(\S+)`)

// syntaxDirective is the parser directive that names the frontend.
var syntaxDirective = regexp.MustCompile(`(?i)^#\s*syntax\s*=\s*(\S+)\s*$`)

// dockerFrontend is Docker's own Dockerfile frontend, any version: it
// reads the rewritten file as the engine's built-in one does.
var dockerFrontend = regexp.MustCompile(`^(docker\.io/)?docker/dockerfile(-upstream)?(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$`)

// ErrOwnFrontend refuses a Dockerfile frontend other than Docker's.
var ErrOwnFrontend = errors.New("a Dockerfile frontend other than docker/dockerfile")

// scopeDockerfile gives every cache mount of a Dockerfile an id under
// scope; a mount's own id (or, without one, its target) follows it, so
// the mounts of one scope still share as the file intends.
func scopeDockerfile(text []byte, scope string) ([]byte, error) {
	directives := true
	for line := range strings.SplitSeq(string(text), "\n") {
		l := strings.TrimSpace(line)
		if !directives || l == "" {
			break
		}
		if !strings.HasPrefix(l, "#") {
			break // parser directives come first, before any instruction
		}
		if m := syntaxDirective.FindStringSubmatch(l); m != nil && !dockerFrontend.MatchString(m[1]) {
			return nil, fmt.Errorf("# syntax=%s: %w; Slipway builds with Docker's own, which keeps cache mounts apart per app and ref", m[1], ErrOwnFrontend)
		}
	}
	var bad error
	out := mountFlag.ReplaceAllFunc(text, func(flag []byte) []byte {
		spec := string(flag[len("--mount="):])
		fields := strings.Split(spec, ",")
		typ, id, target := "", "", ""
		kept := fields[:0:0]
		for _, f := range fields {
			k, v, _ := strings.Cut(f, "=")
			switch strings.ToLower(strings.Trim(k, `"`)) {
			case "type":
				typ = strings.ToLower(strings.Trim(v, `"`))
			case "id":
				id = strings.Trim(v, `"`)
				continue
			case "target", "dst", "destination":
				target = strings.Trim(v, `"`)
			}
			kept = append(kept, f)
		}
		if typ != "cache" {
			return flag
		}
		if id == "" {
			id = target
		}
		if id == "" {
			bad = fmt.Errorf("--mount=%s: a cache mount needs a target", spec)
			return flag
		}
		return []byte("--mount=" + strings.Join(append(kept, "id="+scope+"/"+strings.TrimPrefix(id, "/")), ","))
	})
	return out, bad
}

// scopeContext is a build context tar stream with its Dockerfile (the
// path BuildOptions.Dockerfile names, "Dockerfile" by default) rewritten
// by scopeDockerfile; other entries pass through unchanged.
func scopeContext(context io.Reader, dockerfile, scope string) io.ReadCloser {
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	want := path.Clean(strings.TrimPrefix(dockerfile, "/"))
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(func() error {
			tr := tar.NewReader(bufio.NewReader(context))
			tw := tar.NewWriter(pw)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					return tw.Close()
				}
				if err != nil {
					return fmt.Errorf("build context: %w", err)
				}
				if h.Typeflag == tar.TypeReg && path.Clean(strings.TrimPrefix(h.Name, "./")) == want {
					if h.Size > maxDockerfile {
						return fmt.Errorf("%s: %d bytes; a Dockerfile may have at most %d", dockerfile, h.Size, maxDockerfile)
					}
					text, err := io.ReadAll(tr)
					if err != nil {
						return fmt.Errorf("build context: %w", err)
					}
					if text, err = scopeDockerfile(text, scope); err != nil {
						return fmt.Errorf("%s: %w", dockerfile, err)
					}
					h.Size = int64(len(text))
					if err := tw.WriteHeader(h); err != nil {
						return err
					}
					if _, err := io.Copy(tw, bytes.NewReader(text)); err != nil {
						return err
					}
					continue
				}
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				if _, err := io.Copy(tw, tr); err != nil {
					return err
				}
			}
		}())
	}()
	return pr
}
