package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/slipwayfile"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/container"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/sandbox"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
	"github.com/slipway-dev/slipway/internal/workflow"
	"github.com/slipway-dev/slipway/internal/workflow/expr"
)

// A builtin is an action Slipway runs itself instead of fetching its code:
// with holds its inputs (names lower-cased), env the step's env context;
// it sets outputs and returns why it failed ("" on success).
type builtin func(j *jobRun, ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string

// builtins are the actions a workflow may use, by owner/name (any version).
var builtins map[string]builtin

func init() {
	builtins = map[string]builtin{
		"actions/checkout":                              (*jobRun).checkout,
		"actions/upload-artifact":                       (*jobRun).uploadArtifact,
		"actions/download-artifact":                     (*jobRun).downloadArtifact,
		"actions/cache":                                 (*jobRun).cache,
		"actions/setup-go":                              setupTool("go", "go-version", "go", "version"),
		"actions/setup-node":                            setupTool("node", "node-version", "node", "--version"),
		"actions/setup-python":                          setupTool("python", "python-version", "python3", "--version"),
		"actions/setup-java":                            setupTool("java", "java-version", "java", "-version"),
		"aws-actions/configure-aws-credentials":         (*jobRun).configureAWS,
		"aws-actions/amazon-ecr-login":                  (*jobRun).ecrLogin,
		"aws-actions/amazon-ecs-render-task-definition": (*jobRun).renderTaskDef,
		"aws-actions/amazon-ecs-deploy-task-definition": (*jobRun).deployTaskDef,
		"docker/login-action":                           (*jobRun).dockerLogin,
		"docker/setup-buildx-action":                    (*jobRun).setupBuildx,
		"docker/build-push-action":                      (*jobRun).buildPush,
	}
}

// BuiltinActions lists the actions workflows may use.
func BuiltinActions() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// uses runs a uses: step of scope sc: a local composite action (./path)
// or a built-in action. callerEnv evaluates the step's expressions.
func (j *jobRun) uses(ctx context.Context, sc *stepScope, i int, s *workflow.Step, with map[string]string, env map[string]any, outputs map[string]string, callerEnv *expr.Env, ar *activeRun) string {
	if strings.HasPrefix(s.Uses, "./") || s.Uses == "." {
		return j.composite(ctx, sc, i, s, with, env, outputs, callerEnv, ar)
	}
	name, _, _ := strings.Cut(s.Uses, "@")
	fn, ok := builtins[strings.ToLower(name)]
	if !ok {
		kind := "is not built into Slipway"
		switch {
		case strings.HasPrefix(s.Uses, "docker://"):
			kind = "is a Docker action, which Slipway does not run"
		case strings.Count(name, "/") >= 2:
			kind = "is an action in another repository's directory, which Slipway does not fetch"
		}
		return fmt.Sprintf("uses: %s %s (Slipway runs no action code it would have to fetch); use a local composite action (uses: ./path, an action.yml with using: composite in this repository) or one of the built-in actions: %s",
			s.Uses, kind, strings.Join(BuiltinActions(), ", "))
	}
	return fn(j, ctx, with, env, outputs)
}

func (j *jobRun) note(format string, args ...any) {
	fmt.Fprintf(j.logs, "[slipway] "+format+"\n", args...)
}

// locate is where a path a step names is on the host: the directory to
// open as a root (the workspace or the app's build home) and the path
// inside it. Relative paths are relative to the checked-out commit.
func (j *jobRun) locate(p string) (string, string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = sandbox.Home + strings.TrimPrefix(p, "~")
	}
	if !path.IsAbs(p) {
		p = path.Join(wfWorkspace, p)
	}
	p = path.Clean(p)
	for _, m := range []struct{ prefix, host string }{{build.ContainerRoot, j.base}, {sandbox.Home, j.home}} {
		if p == m.prefix {
			return m.host, ".", nil
		}
		if rel, ok := strings.CutPrefix(p, m.prefix+"/"); ok {
			return m.host, rel, nil
		}
	}
	return "", "", fmt.Errorf("%s is outside the workspace (%s) and the build home (%s)", p, build.ContainerRoot, sandbox.Home)
}

// readStepFile reads a file a step names, never through a link that
// leads outside the workspace.
func (j *jobRun) readStepFile(p string) ([]byte, error) {
	dir, rel, err := j.locate(p)
	if err != nil {
		return nil, err
	}
	return readSpecFile(dir, rel)
}

func (j *jobRun) checkout(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	if p := with["path"]; p != "" && path.Clean(p) != "." {
		return "with.path: the commit is checked out at $GITHUB_WORKSPACE only; remove path"
	}
	if ref := with["ref"]; ref != "" {
		gh := j.e.runContexts(j.r, nil, "")["github"].(map[string]any)
		if ref != j.r.Ref && ref != j.r.Commit && ref != gh["ref_name"] && !strings.HasPrefix(j.r.Commit, ref) {
			return fmt.Sprintf("with.ref: %s is not this run's commit; a job checks out the commit that started its run (%s)", ref, shortSHA(j.r.Commit))
		}
	}
	if r := with["repository"]; r != "" && r != j.r.App {
		return fmt.Sprintf("with.repository: %s is not this app's repository; a job checks out its own app only", r)
	}
	j.note("Checked out %s at %s (%s)", j.r.Ref, shortSHA(j.r.Commit), wfWorkspace)
	outputs["ref"], outputs["commit"] = j.r.Ref, j.r.Commit
	return ""
}

// uploadArtifact keeps files as an artifact of the run, named as the step
// says; its root is the deepest directory the search paths share, as on
// GitHub.
func (j *jobRun) uploadArtifact(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	name := firstNonEmpty(with["name"], "artifact")
	if err := artifact.ValidName(name); err != nil {
		return "with.name: " + err.Error()
	}
	if name == slipwayfile.SourceArtifact {
		return "with.name: " + slipwayfile.SourceArtifact + " is the run's source; choose another name"
	}
	var includes, excludes []string
	for _, l := range strings.Split(with["path"], "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.HasPrefix(l, "!"):
			excludes = append(excludes, strings.TrimPrefix(l, "!"))
		default:
			includes = append(includes, l)
		}
	}
	if len(includes) == 0 {
		return "with.path: name the files to upload"
	}
	root, err := os.OpenRoot(j.base)
	if err != nil {
		return err.Error()
	}
	defer root.Close()
	// Patterns relative to the workspace root (/slipway), and the
	// directory each search starts from.
	var patterns, starts []string
	for _, p := range includes {
		dir, rel, err := j.locate(p)
		if err != nil || dir != j.base {
			return fmt.Sprintf("with.path: %s: upload files of the workspace (%s)", p, build.ContainerRoot)
		}
		start := literalPrefix(rel)
		if fi, err := root.Stat(rel); err == nil && fi.IsDir() {
			start, rel = rel, rel+"/**"
		} else if start == rel {
			start = path.Dir(rel)
		}
		patterns, starts = append(patterns, rel), append(starts, start)
	}
	base := commonDir(starts)
	var rels []string
	for _, p := range patterns {
		r := strings.TrimPrefix(strings.TrimPrefix(p, base), "/")
		if base == "." {
			r = p
		}
		rels = append(rels, r)
	}
	files, err := build.Collect(j.base, build.Artifacts{Files: rels, BaseDirectory: base})
	if err != nil {
		files = nil
		if !strings.Contains(err.Error(), "matched no file") {
			return err.Error()
		}
	}
	kept := files[:0]
	for _, f := range files {
		rel, _ := filepath.Rel(j.base, f.Path)
		drop := false
		for _, x := range excludes {
			_, xr, err := j.locate(x)
			if err == nil {
				if ok, _ := doublestar.Match(xr, filepath.ToSlash(rel)); ok {
					drop = true
				}
			}
		}
		if !drop {
			f.Path = rel
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		switch with["if-no-files-found"] {
		case "error":
			return fmt.Sprintf("no files were found with the provided path: %s", strings.Join(includes, ", "))
		case "ignore":
			return ""
		}
		fmt.Fprintf(j.logs, "##[warning]No files were found with the provided path: %s. No artifact will be uploaded.\n", strings.Join(includes, ", "))
		return ""
	}
	arts, err := j.e.Store.ListArtifacts(ctx, j.r.ID)
	if err != nil {
		return err.Error()
	}
	for _, a := range arts {
		if a.Name == name {
			return fmt.Sprintf("with.name: the run already has an artifact named %s; artifact names are unique within a run", name)
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(artifact.PackRoot(pw, root, kept)) }()
	var size int64
	_, size, err = j.e.Artifacts.PutRecorded(ctx, pr, func(sum string, n int64) error {
		return j.e.Store.PutArtifact(ctx, store.Artifact{RunID: j.r.ID, ActionID: j.row.ID, Name: name, SHA256: sum, Size: n})
	})
	pr.CloseWithError(err)
	if err != nil {
		return "upload: " + err.Error()
	}
	j.note("Uploaded artifact %s: %d files, %d bytes", name, len(kept), size)
	outputs["artifact-id"] = name
	return ""
}

// literalPrefix is the part of a pattern before its first wildcard's
// directory.
func literalPrefix(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.ContainsAny(part, "*?[{") {
			if i == 0 {
				return "."
			}
			return strings.Join(parts[:i], "/")
		}
	}
	return p
}

func commonDir(dirs []string) string {
	if len(dirs) == 0 {
		return "."
	}
	common := strings.Split(path.Clean(dirs[0]), "/")
	for _, d := range dirs[1:] {
		parts := strings.Split(path.Clean(d), "/")
		n := 0
		for n < len(common) && n < len(parts) && common[n] == parts[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 0 {
		return "."
	}
	return strings.Join(common, "/")
}

func (j *jobRun) downloadArtifact(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	arts, err := j.e.Store.ListArtifacts(ctx, j.r.ID)
	if err != nil {
		return err.Error()
	}
	dest, err := j.containerPath(firstNonEmpty(with["path"], wfWorkspace))
	if err != nil || !strings.HasPrefix(dest+"/", build.ContainerRoot+"/") {
		return fmt.Sprintf("with.path: %s: download into the workspace (%s)", with["path"], build.ContainerRoot)
	}
	var names []string
	if n := with["name"]; n != "" {
		names = []string{n}
	} else {
		for _, a := range arts {
			if a.Name != slipwayfile.SourceArtifact && a.ActionID != 0 {
				names = append(names, a.Name)
			}
		}
	}
	for _, n := range names {
		var found *store.Artifact
		for i := range arts {
			if arts[i].Name == n && n != slipwayfile.SourceArtifact {
				found = &arts[i]
			}
		}
		if found == nil {
			return fmt.Sprintf("with.name: the run has no artifact named %s (an earlier job uploads it with actions/upload-artifact)", n)
		}
		target := dest
		if with["name"] == "" {
			target = path.Join(dest, n) // each into a directory of its name, as on GitHub
		}
		rc, err := j.e.Artifacts.Open(ctx, found.SHA256)
		if err != nil {
			return fmt.Sprintf("open artifact %s: %v", n, err)
		}
		err = j.untar(ctx, rc, target)
		rc.Close()
		if err != nil {
			return fmt.Sprintf("download artifact %s: %v", n, err)
		}
		j.note("Downloaded artifact %s into %s", n, target)
	}
	outputs["download-path"] = dest
	return ""
}

// containerPath is a path a step names as the job's container sees it,
// which must be in the workspace or the build home.
func (j *jobRun) containerPath(p string) (string, error) {
	if _, _, err := j.locate(p); err != nil {
		return "", err
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = sandbox.Home + strings.TrimPrefix(p, "~")
	}
	if !path.IsAbs(p) {
		p = path.Join(wfWorkspace, p)
	}
	return path.Clean(p), nil
}

// untar unpacks a tar stream into dir inside the job's container, as the
// job's own user: the server writes nothing into the workspace, so a link
// or a race a step set up can only ever point the job at its own files.
func (j *jobRun) untar(ctx context.Context, r io.Reader, dir string) error {
	return j.boxRun(ctx, []string{"sh", "-c", `mkdir -p "$1" && exec tar -xf - -C "$1"`, "sh", dir}, r, io.Discard)
}

// boxRun runs argv in the job's container, as the job's user, with stdin
// from in and stdout to out; a failure carries what it said on stderr.
func (j *jobRun) boxRun(ctx context.Context, argv []string, in io.Reader, out io.Writer) error {
	stderr := &limitedBuffer{max: 4 << 10}
	code, err := j.box.ExecIO(ctx, argv, j.stepEnv(nil, nil), in, out, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s exited with %d: %s", argv[0], code, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	max int
	b   []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// maxTarBytes bounds a cache or an image build context a job makes.
const maxTarBytes = 10 << 30

// errTooMuch ends a stream that went over maxTarBytes.
var errTooMuch = fmt.Errorf("over %d GiB", maxTarBytes>>30)

// tarFrom returns a stream of a tar that tar makes in the job's container
// (args are tar's, after -cf -); the stream fails past maxTarBytes.
func (j *jobRun) tarFrom(ctx context.Context, args ...string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		lw := &limitWriter{w: pw, left: maxTarBytes}
		pw.CloseWithError(j.boxRun(ctx, append([]string{"tar", "-cf", "-"}, args...), nil, lw))
	}()
	return pr
}

type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errTooMuch
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// cacheSave is an actions/cache step's save, done when the job succeeds.
type cacheSave struct {
	key   string
	paths []string // as the container sees them
}

// Caches are scoped by ref, as GitHub scopes them by branch: a job saves
// into its run's ref and restores from it, then from the default branch.
// So a branch (a pull request's, say) can use main's caches but never put
// one where main's runs would restore it.

// cacheDir is where an app's workflow caches of one ref are kept in the
// blob store; cacheKey is one cache there. Refs and keys are the user's
// text, so each is encoded into one path element.
func (j *jobRun) cacheDir(ref string) string {
	return "/cache/" + j.r.App + "/gha/" + base64.RawURLEncoding.EncodeToString([]byte(ref))
}

func (j *jobRun) cacheKey(ref, key string) string {
	return j.cacheDir(ref) + "/" + base64.RawURLEncoding.EncodeToString([]byte(key)) + ".tar"
}

// cacheScopes are the refs a job restores caches from, in order: its
// run's, then the default branch when that is another.
func (j *jobRun) cacheScopes(ctx context.Context) []string {
	if j.cacheRefs != nil {
		return j.cacheRefs // looked up once a job, not at every cache step
	}
	scopes := []string{j.r.Ref}
	defer func() { j.cacheRefs = scopes }()
	def, err := j.e.Source.DefaultBranch(ctx, j.r.App)
	if err != nil {
		fmt.Fprintf(j.logs, "##[warning]Caches of the default branch not looked at: %v\n", err)
		return scopes
	}
	if def != j.r.Ref {
		scopes = append(scopes, def)
	}
	return scopes
}

func (j *jobRun) cache(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	key := strings.TrimSpace(with["key"])
	if key == "" {
		return "with.key: a cache needs a key"
	}
	if len(key) > 512 {
		return "with.key: at most 512 characters"
	}
	var paths []string
	for _, l := range strings.Split(with["path"], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if strings.HasPrefix(l, "!") || strings.ContainsAny(l, "*?[") {
				return fmt.Sprintf("with.path: %s: Slipway caches whole directories and files; name them without wildcards", l)
			}
			p, err := j.containerPath(l)
			if err != nil {
				return "with.path: " + err.Error()
			}
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return "with.path: name the directories to cache"
	}
	var restoreKeys []string
	for _, l := range strings.Split(with["restore-keys"], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			restoreKeys = append(restoreKeys, l)
		}
	}
	hit, ref, matched := j.findCache(ctx, key, restoreKeys)
	outputs["cache-hit"] = strconv.FormatBool(hit)
	if matched != "" {
		outputs["cache-matched-key"] = matched
		if err := j.restoreCache(ctx, ref, matched); err != nil {
			fmt.Fprintf(j.logs, "##[warning]Cache %s not restored: %v\n", matched, err)
			outputs["cache-hit"] = "false"
			hit = false
		} else {
			j.note("Cache restored from key %s (saved by %s)", matched, ref)
		}
	} else {
		j.note("Cache not found for key %s", key)
	}
	if !hit && with["lookup-only"] != "true" {
		j.caches = append(j.caches, cacheSave{key: key, paths: paths})
	}
	return ""
}

// findCache looks, in each scope in turn, for the key, then for the newest
// cache whose key starts with it, then with each restore key, as
// actions/cache does. hit is an exact match; ref and matched name the
// cache to restore ("" for none).
func (j *jobRun) findCache(ctx context.Context, key string, restoreKeys []string) (hit bool, ref, matched string) {
	for _, ref := range j.cacheScopes(ctx) {
		if _, err := j.e.Blobs.Stat(ctx, j.cacheKey(ref, key)); err == nil {
			return true, ref, key
		}
		all := j.cachesIn(ctx, ref)
		for _, prefix := range append([]string{key}, restoreKeys...) {
			for _, c := range all {
				if strings.HasPrefix(c, prefix) {
					return false, ref, c
				}
			}
		}
	}
	return false, "", ""
}

// cachesIn lists the keys of a ref's caches, newest first.
func (j *jobRun) cachesIn(ctx context.Context, ref string) []string {
	entries, err := j.e.Blobs.List(ctx, j.cacheDir(ref))
	if err != nil {
		return nil
	}
	type cached struct {
		key string
		mod time.Time
	}
	var all []cached
	for _, e := range entries {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimSuffix(path.Base(e), ".tar"))
		if err != nil {
			continue
		}
		fi, err := j.e.Blobs.Stat(ctx, e)
		if err != nil {
			continue
		}
		all = append(all, cached{string(b), fi.ModTime()})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].mod.After(all[b].mod) })
	keys := make([]string, len(all))
	for i, c := range all {
		keys[i] = c.key
	}
	return keys
}

// restoreCache unpacks a cache where its paths were, inside the container.
func (j *jobRun) restoreCache(ctx context.Context, ref, key string) error {
	f, err := fetchCache(ctx, j.e.Blobs, j.cacheKey(ref, key))
	if err != nil {
		return blob.Explain(err)
	}
	defer f.Close()
	return j.untar(ctx, f, "/")
}

// saveCache has tar in the container pack the cached paths (as the job's
// user sees them, so nothing of the host's), and keeps the stream.
func (j *jobRun) saveCache(ctx context.Context, c cacheSave) {
	rel := make([]string, len(c.paths))
	for i, p := range c.paths {
		rel[i] = strings.TrimPrefix(p, "/")
	}
	rc := j.tarFrom(ctx, append([]string{"--ignore-failed-read", "-C", "/", "--"}, rel...)...)
	defer rc.Close()
	// Whole or not at all (blob.Put): a job reading the cache while
	// another saves it gets the old one.
	n, err := blob.Put(ctx, j.e.Blobs, j.cacheKey(j.r.Ref, c.key), rc)
	if err != nil {
		fmt.Fprintf(j.logs, "##[warning]Cache %s not saved: %v\n", c.key, blob.Explain(err))
		return
	}
	j.note("Cache saved with key %s (%d bytes)", c.key, n)
}

// setupTool accepts a setup-* action when its toolchain is on the
// executor, and says which version that is.
func setupTool(tool, versionInput, command string, versionArgs ...string) builtin {
	return func(j *jobRun, ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
		var out strings.Builder
		vars := j.stepEnv(env, nil)
		code, err := j.box.Exec(ctx, append([]string{command}, versionArgs...), vars, &out)
		if err != nil || code != 0 {
			return fmt.Sprintf("%s is not installed on this executor; Slipway's build sandbox offers the server's toolchains under /usr and does not download others", tool)
		}
		have := strings.TrimSpace(out.String())
		if i := strings.IndexByte(have, '\n'); i >= 0 {
			have = have[:i]
		}
		if want := with[versionInput]; want != "" && !strings.Contains(have, strings.TrimPrefix(strings.TrimSuffix(want, ".x"), "v")) {
			fmt.Fprintf(j.logs, "##[warning]%s: %s asked for; the executor has %s and uses it (Slipway does not download toolchains)\n", versionInput, want, have)
		}
		j.note("Using %s", have)
		outputs[strings.TrimSuffix(versionInput, "-version")+"-version"] = have
		return ""
	}
}

func (j *jobRun) configureAWS(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	region := firstNonEmpty(with["aws-region"], "us-east-1")
	j.env = append(j.env, workflow.EnvVar{Name: "AWS_REGION", Value: escapeExpr(region)}, workflow.EnvVar{Name: "AWS_DEFAULT_REGION", Value: escapeExpr(region)})
	j.note("AWS credentials come from Slipway: the registry, task definitions and services of app %s are reached with the job's own token (region %s)", j.r.App, region)
	return ""
}

func (j *jobRun) ecrLogin(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	reg, err := j.e.registry()
	if err != nil {
		return err.Error()
	}
	outputs["registry"] = reg.Host
	outputs["docker_username_"+strings.NewReplacer(".", "_", ":", "_").Replace(reg.Host)] = reg.User
	j.note("Logged in to Slipway's registry %s (repositories %s and %s/*)", reg.Host, j.r.App, j.r.App)
	return ""
}

func (j *jobRun) dockerLogin(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	reg, err := j.e.registry()
	if err != nil {
		return err.Error()
	}
	if r := with["registry"]; r != "" && r != reg.Host {
		return fmt.Sprintf("with.registry: %s cannot be reached from Slipway; jobs push to Slipway's registry %s", r, reg.Host)
	}
	j.note("Logged in to Slipway's registry %s with the job's token", reg.Host)
	return ""
}

func (j *jobRun) setupBuildx(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	j.note("Images are built by Slipway's Docker engine; nothing to set up")
	outputs["name"], outputs["driver"] = "slipway", "docker"
	return ""
}

// renderTaskDef puts an image into a container of a task definition file
// and writes the result to a new file, as the AWS action does.
func (j *jobRun) renderTaskDef(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	file, name, image := with["task-definition"], with["container-name"], with["image"]
	if file == "" || name == "" || image == "" {
		return "with: task-definition, container-name and image are required"
	}
	data, err := j.readStepFile(file)
	if err != nil {
		return fmt.Sprintf("with.task-definition: %s: %v", file, err)
	}
	var td map[string]any
	if err := json.Unmarshal(data, &td); err != nil {
		return fmt.Sprintf("with.task-definition: %s is not JSON: %v", file, err)
	}
	defs, _ := td["containerDefinitions"].([]any)
	found := false
	for _, d := range defs {
		c, ok := d.(map[string]any)
		if !ok || c["name"] != name {
			continue
		}
		found = true
		c["image"] = image
		if ev := with["environment-variables"]; ev != "" {
			vars, _ := c["environment"].([]any)
			for _, l := range strings.Split(ev, "\n") {
				l = strings.TrimSpace(l)
				if l == "" {
					continue
				}
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Sprintf("with.environment-variables: %q is not NAME=value", l)
				}
				replaced := false
				for _, e := range vars {
					if m, ok := e.(map[string]any); ok && m["name"] == k {
						m["value"], replaced = v, true
					}
				}
				if !replaced {
					vars = append(vars, map[string]any{"name": k, "value": v})
				}
			}
			c["environment"] = vars
		}
	}
	if !found {
		return fmt.Sprintf("with.container-name: %s has no container named %s", file, name)
	}
	out, _ := json.MarshalIndent(td, "", "  ")
	rel := fmt.Sprintf("_temp/task-definition-%d-%d.json", j.row.ID, time.Now().UnixNano())
	dest := path.Join(build.ContainerRoot, rel)
	// Written by the job's own user inside its container, like its files.
	if err := j.boxRun(ctx, []string{"sh", "-c", `mkdir -p "${1%/*}" && cat > "$1"`, "sh", dest}, bytes.NewReader(append(out, '\n')), io.Discard); err != nil {
		return "write the rendered task definition: " + err.Error()
	}
	outputs["task-definition"] = path.Join(build.ContainerRoot, rel)
	j.note("Rendered %s with %s in container %s: %s", file, image, name, outputs["task-definition"])
	return ""
}

// deployTaskDef registers a task definition and rolls it out to a
// service: cluster names the environment; an appspec makes it blue/green.
func (j *jobRun) deployTaskDef(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	e := j.e
	if e.Deploys == nil || e.DeployStore == nil {
		return "this server cannot deploy (no deployment controller)"
	}
	file, service, cluster := with["task-definition"], with["service"], with["cluster"]
	if file == "" {
		return "with.task-definition: name the task definition file (the render action's output)"
	}
	data, err := j.readStepFile(file)
	if err != nil {
		return fmt.Sprintf("with.task-definition: %s: %v", file, err)
	}
	td, ignored, err := taskdef.Parse(data)
	if err != nil {
		return fmt.Sprintf("with.task-definition: %s: %v", file, err)
	}
	for _, f := range ignored {
		j.note("%s: %s ignored (no meaning on this platform)", file, f)
	}
	body, _ := json.Marshal(td)
	rev, err := e.DeployStore.RegisterRunTaskDef(ctx, td.Family, body, j.r.ID)
	if err != nil {
		return err.Error()
	}
	outputs["task-definition-arn"] = fmt.Sprintf("%s:%d", rev.Family, rev.Revision)
	j.note("Registered %s:%d", rev.Family, rev.Revision)
	if service == "" {
		return "" // as the AWS action: registering alone is allowed
	}
	if cluster == "" {
		cluster = "default"
	}
	svc, err := e.DeployStore.GetService(ctx, j.r.App, cluster, service)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("with.service: app %s has no service %s in environment %s (with.cluster names the environment); create the service first, as on ECS", j.r.App, service, cluster)
	}
	if err != nil {
		return err.Error()
	}
	settings := deploy.Settings{CircuitBreaker: true, Rollback: true}
	strategy := ""
	if p := with["codedeploy-appspec"]; p != "" {
		b, err := j.readStepFile(p)
		if err != nil {
			return fmt.Sprintf("with.codedeploy-appspec: %s: %v", p, err)
		}
		appspec, err := deploy.ParseAppSpec(b)
		if err != nil {
			return fmt.Sprintf("with.codedeploy-appspec: %s: %v", p, err)
		}
		settings.Hooks = appspec.Hooks
		strategy = "blue-green"
	}
	if svc.LoadBalancer != nil {
		l := *svc.LoadBalancer
		if err := deploy.ValidateLB(&l, td); err != nil {
			return err.Error()
		}
	}
	if n := with["desired-count"]; n != "" {
		if _, err := strconv.Atoi(n); err != nil {
			return fmt.Sprintf("with.desired-count: %q is not a number", n)
		}
		j.note("with.desired-count is not applied: the service keeps %d tasks (use slipway service scale)", svc.Desired)
	}
	d, err := e.Deploys.Create(ctx, deploy.Request{App: j.r.App, Env: cluster, Service: service, Family: rev.Family, Revision: rev.Revision,
		Strategy: strategy, Config: with["codedeploy-deployment-config"], Settings: settings, By: "run " + strconv.FormatInt(j.r.ID, 10)})
	if err != nil {
		return err.Error()
	}
	e.recordDeployment(ctx, j.row, d.ID)
	outputs["codedeploy-deployment-id"] = strconv.FormatInt(d.ID, 10)
	j.note("Deployment %d of %s:%d to service %s in %s", d.ID, rev.Family, rev.Revision, service, cluster)
	if with["wait-for-service-stability"] != "true" && with["wait-for-deployment"] != "true" {
		return ""
	}
	return e.follow(ctx, d.ID, e.timelineTo(ctx, d.ID, j.logs, time.Time{}))
}

// buildPush builds the workspace's Dockerfile with Slipway's engine and
// pushes the tags, which must be repositories of the app in Slipway's
// registry.
func (j *jobRun) buildPush(ctx context.Context, with map[string]string, env map[string]any, outputs map[string]string) string {
	reg, err := j.e.registry()
	if err != nil {
		return err.Error()
	}
	eng, err := container.Connect(ctx)
	if err != nil {
		return err.Error()
	}
	tags := splitList(with["tags"])
	if len(tags) == 0 {
		return "with.tags: name the image (REGISTRY/REPOSITORY:TAG)"
	}
	for _, t := range tags {
		repo, ok := strings.CutPrefix(t, reg.Host+"/")
		if i := strings.LastIndexAny(repo, ":@"); i > 0 {
			repo = repo[:i]
		}
		if !ok || (repo != j.r.App && !strings.HasPrefix(repo, j.r.App+"/")) {
			return fmt.Sprintf("with.tags: %s: a job pushes to its app's repositories in Slipway's registry, %s/%s or %s/%s/NAME", t, reg.Host, j.r.App, reg.Host, j.r.App)
		}
	}
	ctxDir, err := j.containerPath(firstNonEmpty(with["context"], "."))
	if err != nil {
		return "with.context: " + err.Error()
	}
	dockerfile := "Dockerfile"
	if f := with["file"]; f != "" {
		fp, err := j.containerPath(f)
		rel, ok := strings.CutPrefix(fp, strings.TrimSuffix(ctxDir, "/")+"/")
		if err != nil || !ok {
			return "with.file: the Dockerfile must be inside the build context " + ctxDir
		}
		dockerfile = rel
	}
	args := map[string]string{}
	for _, a := range splitLines(with["build-args"]) {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	scope, err := j.e.imageCacheScope(ctx, j.r)
	if err != nil {
		return err.Error()
	}
	// The context is packed by tar in the job's container: what the job's
	// user sees there, never the host's files behind a link.
	tarball := j.tarFrom(ctx, "-C", ctxDir, ".")
	defer tarball.Close()
	j.note("Building %s (context %s, %s)", strings.Join(tags, ", "), ctxDir, dockerfile)
	id, err := eng.Build(ctx, tarball, container.BuildOptions{Dockerfile: dockerfile, Target: with["target"], BuildArgs: args, Tags: tags,
		Labels: container.Labels(j.r.App, j.e.Installation, "slipway.commit", j.r.Commit), CacheScope: scope}, j.logs)
	if err != nil {
		return err.Error()
	}
	outputs["imageid"] = id
	if with["push"] != "true" {
		return ""
	}
	var pushed container.Pushed
	for _, t := range tags {
		j.note("Pushing %s", t)
		if pushed, err = eng.Push(ctx, t, reg.User, reg.Token, j.logs); err != nil {
			return err.Error()
		}
	}
	outputs["digest"] = pushed.Digest
	meta, _ := json.Marshal(map[string]any{"containerimage.digest": pushed.Digest, "image.name": strings.Join(tags, ",")})
	outputs["metadata"] = string(meta)
	return ""
}

func splitList(s string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// openRegular opens a file a job may have swapped for a FIFO or a link
// since it was listed: neither blocks nor is followed.
const openRegular = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOFOLLOW

// hashWorkspaceFiles is hashFiles(): the SHA-256 of the SHA-256 of each
// matching file, in path order; "" when none matches.
func hashWorkspaceFiles(base string, patterns []string) (string, error) {
	top, err := os.OpenRoot(base)
	if err != nil {
		return "", err
	}
	defer top.Close()
	root, err := top.OpenRoot("src") // a link at src stays inside the workspace
	if err != nil {
		return "", err
	}
	defer root.Close()
	var includes, excludes []string
	for _, p := range patterns {
		p = strings.TrimPrefix(strings.TrimPrefix(p, wfWorkspace+"/"), "./")
		if x, ok := strings.CutPrefix(p, "!"); ok {
			excludes = append(excludes, x)
		} else {
			includes = append(includes, p)
		}
	}
	var matched []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		in := false
		for _, pat := range includes {
			if ok, _ := doublestar.Match(pat, p); ok {
				in = true
			}
		}
		for _, pat := range excludes {
			if ok, _ := doublestar.Match(pat, p); ok {
				in = false
			}
		}
		if in {
			matched = append(matched, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(matched) == 0 {
		return "", nil
	}
	slices.Sort(matched)
	all := sha256.New()
	for _, p := range matched {
		f, err := root.OpenFile(p, openRegular, 0)
		if err != nil {
			return "", err
		}
		h := sha256.New()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return "", fmt.Errorf("hashFiles: %s is not a regular file", p)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		all.Write(h.Sum(nil))
	}
	return hex.EncodeToString(all.Sum(nil)), nil
}
