// Package source hosts app repositories over smart HTTP and turns pushes —
// direct or announced by a GitHub webhook — into push events and runs.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

// ZeroSHA is git's name for "no object": the old side of a new ref, the new side of a deleted one.
const ZeroSHA = "0000000000000000000000000000000000000000"

// Store is what this package needs from the state store.
type Store interface {
	store.AppStore
	store.EventStore
}

// Service owns the bare repositories under Root.
type Service struct {
	Store Store
	Root  string
	Keys  *secret.Keyring
	Log   *slog.Logger
	// RunCreated is called after a push has started a run (the pipeline engine wakes on it).
	RunCreated func(store.Run)

	gitPath string
	locks   sync.Map // app name → *sync.Mutex; serialises ref updates per repository
}

// NewService checks that git is installed and prepares the repository
// root. Source URL credentials stored in the clear by older versions are
// sealed on the way.
func NewService(st Store, root string, keys *secret.Keyring, log *slog.Logger) (*Service, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, errors.New("git is not installed: Slipway hosts repositories with git http-backend; install git")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create git root: %w", err)
	}
	s := &Service{Store: st, Root: root, Keys: keys, Log: log, gitPath: gitPath}
	if st != nil && keys != nil {
		s.sealStoredCredentials(context.Background())
	}
	return s, nil
}

// AppNameRule is the rule app names follow; it appears in the error as is.
const AppNameRule = `^[a-z0-9][a-z0-9-]{0,62}$`

var appName = regexp.MustCompile(AppNameRule)

// ValidAppName reports whether name can be an app.
func ValidAppName(name string) bool { return appName.MatchString(name) }

// RepoPath is where an app's bare repository lives.
func (s *Service) RepoPath(app string) string { return filepath.Join(s.Root, app+".git") }

func (s *Service) lock(app string) func() {
	m, _ := s.locks.LoadOrStore(app, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// git runs a git command in the app's repository and returns its stdout.
func (s *Service) git(ctx context.Context, app string, args ...string) ([]byte, error) {
	return s.gitEnv(ctx, app, nil, args...)
}

// gitEnv is git with env added to its environment (later entries win).
func (s *Service) gitEnv(ctx context.Context, app string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.gitPath, args...)
	cmd.Dir = s.RepoPath(app)
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// CreateRepo initialises an empty bare repository whose default branch is main.
func (s *Service) CreateRepo(ctx context.Context, app string) error {
	path := s.RepoPath(app)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("repository directory %s already exists", path)
	}
	cmd := exec.CommandContext(ctx, s.gitPath, "init", "--bare", "--quiet", "--initial-branch=main", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %w: %s", err, out)
	}
	// Force pushes and branch deletes are allowed, as on GitHub.
	for _, kv := range [][2]string{{"receive.denyNonFastForwards", "false"}, {"receive.denyDeletes", "false"}, {"http.receivepack", "true"}} {
		if _, err := s.git(ctx, app, "config", kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteRepo removes the repository data.
func (s *Service) DeleteRepo(app string) error {
	return os.RemoveAll(s.RepoPath(app))
}

// refs returns every ref and the object it points at.
func (s *Service) refs(ctx context.Context, app string) (map[string]string, error) {
	out, err := s.git(ctx, app, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if sha, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = sha
		}
	}
	return refs, nil
}

// RefUpdate is one ref a push changed.
type RefUpdate struct {
	Ref, Old, New string
}

func diffRefs(before, after map[string]string) []RefUpdate {
	var ups []RefUpdate
	for ref, n := range after {
		if o, ok := before[ref]; !ok {
			ups = append(ups, RefUpdate{Ref: ref, Old: ZeroSHA, New: n})
		} else if o != n {
			ups = append(ups, RefUpdate{Ref: ref, Old: o, New: n})
		}
	}
	for ref, o := range before {
		if _, ok := after[ref]; !ok {
			ups = append(ups, RefUpdate{Ref: ref, Old: o, New: ZeroSHA})
		}
	}
	// In ref order, for events and messages in the same order at every push.
	slices.SortFunc(ups, func(a, b RefUpdate) int { return strings.Compare(a.Ref, b.Ref) })
	return ups
}

// MaxFetchRequestBytes caps the body of a fetch or clone (git-upload-pack)
// request, which viewers may send and which is spooled to disk. A real
// negotiation is a few KiB even for a large repository. Pushes carry the
// pack itself and are for deployers: they are not capped here.
const MaxFetchRequestBytes = 10 << 20

// ServeGit answers a smart-HTTP request that changes nothing (the ref
// advertisement, a fetch) for an app's repository through git
// http-backend; pushes go to ServePush.
func (s *Service) ServeGit(w http.ResponseWriter, r *http.Request, app, pusher string) {
	s.serveGit(w, r, app, pusher, false, nil)
}

// ServePush answers a push (git-receive-pack) through git http-backend. It
// compares the refs before and after, under the repository's lock, so
// every updated ref becomes exactly one push event, and it tells
// the pusher on git's sideband what each updated ref started, or why
// nothing; runURL makes a run's link for them (see sideband.go).
func (s *Service) ServePush(w http.ResponseWriter, r *http.Request, app, pusher string, runURL func(id int64) string) {
	s.serveGit(w, r, app, pusher, true, runURL)
}

func (s *Service) serveGit(w http.ResponseWriter, r *http.Request, app, pusher string, push bool, runURL func(id int64) string) {
	h := &cgi.Handler{
		Path: s.gitPath,
		Args: []string{"http-backend"},
		Root: "/git",
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.Root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + pusher,
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_HTTP_MAX_REQUEST_BUFFER=100M",
		},
		InheritEnv: []string{"PATH", "HOME"},
		Logger:     slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
		Stderr:     logWriter{s.Log},
	}
	if !push {
		if r.ContentLength > MaxFetchRequestBytes {
			fetchTooLarge(w)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxFetchRequestBytes)
	}
	// git sends bodies over http.postBuffer (1 MiB) chunked, which CGI cannot
	// carry; spooling to disk gives http-backend the CONTENT_LENGTH it needs.
	if len(r.TransferEncoding) > 0 {
		spooled, cleanup, err := s.spool(r)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.Log.Warn("git fetch request refused", "app", app, "by", pusher, "limit", MaxFetchRequestBytes)
			fetchTooLarge(w)
			return
		}
		if err != nil {
			s.Log.Error("spool git request", "app", app, "err", err)
			http.Error(w, "cannot buffer the request body: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer cleanup()
		r = spooled
	}
	if !push {
		h.ServeHTTP(w, r)
		return
	}
	unlock := s.lock(app)
	defer unlock()
	before, err := s.refs(r.Context(), app)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rw := newReportWriter(w, pushSideband(r))
	h.ServeHTTP(rw, r)
	// The push is complete on disk; record it even if the client has gone away.
	ctx := context.WithoutCancel(r.Context())
	var messages []string
	defer func() { rw.finish(messages) }() // always ends the response, with or without messages
	after, err := s.refs(ctx, app)
	if err != nil {
		s.Log.Error("read refs after push", "app", app, "err", err)
		return
	}
	for _, up := range diffRefs(before, after) {
		ev, err := s.recordPush(ctx, app, "git", pusher, "", nil, up, nil)
		if err != nil {
			s.Log.Error("record push", "app", app, "ref", up.Ref, "err", err)
		}
		messages = append(messages, pushMessages(up, ev, err, runURL)...)
	}
}

func fetchTooLarge(w http.ResponseWriter) {
	http.Error(w, fmt.Sprintf("git-upload-pack request body is over the %d MiB limit for fetches and clones; a fetch sends a few KiB", MaxFetchRequestBytes>>20),
		http.StatusRequestEntityTooLarge)
}

// spool copies the body to a file under Root/.spool; the file is removed by
// the returned cleanup, or at once if copying fails (a capped body too).
func (s *Service) spool(r *http.Request) (*http.Request, func(), error) {
	dir := filepath.Join(s.Root, ".spool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(dir, "body-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	n, err := io.Copy(f, r.Body)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	r2 := r.Clone(r.Context())
	r2.Body = f
	r2.ContentLength = n
	r2.TransferEncoding = nil
	return r2, cleanup, nil
}

type logWriter struct{ log *slog.Logger }

func (l logWriter) Write(p []byte) (int, error) {
	l.log.Warn("git http-backend", "stderr", strings.TrimSpace(string(p)))
	return len(p), nil
}

// Archive writes the tree of commit as a tar stream: the run's SourceArtifact.
func (s *Service) Archive(ctx context.Context, app, commit string, w io.Writer) error {
	cmd := exec.CommandContext(ctx, s.gitPath, "archive", "--format=tar", commit)
	cmd.Dir = s.RepoPath(app)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	var stderr bytes.Buffer
	cmd.Stdout = w
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("git archive %s: %w: %s", short(commit), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// MaxReadFileBytes caps a file read from a commit to be parsed
// (slipway.yaml): parsing a 20 MB YAML file took the server from 54 MB to
// 845 MB of memory, and a real pipeline file is a few KiB.
const MaxReadFileBytes = 1 << 20

// FileTooLargeError is a file ReadFile refused by its size, before reading it.
type FileTooLargeError struct {
	Path   string
	Commit string
	Size   int64
	Limit  int64
}

func (e *FileTooLargeError) Error() string {
	return fmt.Sprintf("%s at commit %s is %s, over the %s limit for files Slipway reads from a commit; make it smaller",
		e.Path, short(e.Commit), sizeText(e.Size), sizeText(e.Limit))
}

func sizeText(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// ReadFile returns a file's content at a commit. A file over
// MaxReadFileBytes is a *FileTooLargeError; its size is asked first, so
// its content is never read.
func (s *Service) ReadFile(ctx context.Context, app, commit, path string) ([]byte, error) {
	object := commit + ":" + path
	out, err := s.git(ctx, app, "cat-file", "-s", object)
	if err != nil {
		return nil, err
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("size of %s at commit %s: %w", path, short(commit), err)
	}
	if size > MaxReadFileBytes {
		return nil, &FileTooLargeError{Path: path, Commit: commit, Size: size, Limit: MaxReadFileBytes}
	}
	return s.git(ctx, app, "cat-file", "blob", object)
}

// ResolveRef turns a branch, tag or SHA into a full ref name and commit.
func (s *Service) ResolveRef(ctx context.Context, app, ref string) (fullRef, commit string, err error) {
	if strings.HasPrefix(ref, "-") || ref == "" {
		return "", "", fmt.Errorf("ref %q is not a branch, tag or commit", ref)
	}
	for _, candidate := range []string{ref, "refs/heads/" + ref, "refs/tags/" + ref} {
		if !strings.HasPrefix(candidate, "refs/") {
			continue
		}
		if out, err := s.git(ctx, app, "rev-parse", "--verify", "--quiet", candidate+"^{commit}"); err == nil {
			return candidate, strings.TrimSpace(string(out)), nil
		}
	}
	if out, err := s.git(ctx, app, "rev-parse", "--verify", "--quiet", ref+"^{commit}"); err == nil {
		sha := strings.TrimSpace(string(out))
		return sha, sha, nil
	}
	return "", "", fmt.Errorf("ref %q is not a branch, tag or commit of app %s", ref, app)
}
