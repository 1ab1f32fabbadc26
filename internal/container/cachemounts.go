package container

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"encoding/hex"
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

// scopeContext is a build context tar stream with a copy of its Dockerfile
// (the path BuildOptions.Dockerfile names, "Dockerfile" by default)
// rewritten by scopeDockerfile, added at the end under name, a fresh name
// at the context's root that the build then uses. The engine never reads
// the Dockerfile through a path the context chose: a Dockerfile that is a
// link, or under a directory that is one, would lead it to a file this
// did not rewrite. The Dockerfile's own .dockerignore follows the copy.
func scopeContext(context io.Reader, dockerfile, scope string) (r io.ReadCloser, name string) {
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	want := path.Clean(strings.TrimPrefix(dockerfile, "/"))
	var b [16]byte
	_, _ = rand.Read(b[:])
	name = ".slipway-dockerfile-" + hex.EncodeToString(b[:])
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(func() error {
			tr := tar.NewReader(bufio.NewReader(context))
			tw := tar.NewWriter(pw)
			var text, ignore []byte
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return fmt.Errorf("build context: %w", err)
				}
				if err := tw.WriteHeader(h); err != nil {
					return err
				}
				var keep *[]byte
				switch entry := path.Clean(strings.TrimPrefix(h.Name, "./")); entry {
				case want, want + ".dockerignore":
					if h.Typeflag != tar.TypeReg {
						return fmt.Errorf("%s: not a regular file in the build context (a link is not followed)", entry)
					}
					if h.Size > maxDockerfile {
						return fmt.Errorf("%s: %d bytes; at most %d", entry, h.Size, maxDockerfile)
					}
					keep = &text
					if entry != want {
						keep = &ignore
					}
				}
				if keep == nil {
					if _, err := io.Copy(tw, tr); err != nil {
						return err
					}
					continue
				}
				data, err := io.ReadAll(tr)
				if err != nil {
					return fmt.Errorf("build context: %w", err)
				}
				*keep = data // a later entry of the name replaces an earlier one, as when unpacked
				if _, err := tw.Write(data); err != nil {
					return err
				}
			}
			if text == nil {
				return fmt.Errorf("%s: no such regular file in the build context", dockerfile)
			}
			text, err := scopeDockerfile(text, scope)
			if err != nil {
				return fmt.Errorf("%s: %w", dockerfile, err)
			}
			add := func(n string, data []byte) error {
				if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
					return err
				}
				_, err := tw.Write(data)
				return err
			}
			if err := add(name, text); err != nil {
				return err
			}
			if ignore != nil {
				if err := add(name+".dockerignore", ignore); err != nil {
					return err
				}
			}
			return tw.Close()
		}())
	}()
	return pr, name
}
