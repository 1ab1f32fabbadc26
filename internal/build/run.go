package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/specfile"
)

// Phase statuses, as CodeBuild names them.
const (
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
	TimedOut  = "TIMED_OUT"
	Stopped   = "STOPPED"
	Skipped   = "SKIPPED"
)

// PhaseResult is how one phase ended.
type PhaseResult struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration"`
}

// Result is how the whole build ended.
type Result struct {
	Phases    []PhaseResult
	Succeeded bool
	ExitCode  int
	Reason    string
	// Exported holds env.exported-variables as the last phase left them.
	Exported map[string]string
}

// Job is one build to run.
type Job struct {
	Spec *Spec
	Dir  string   // CODEBUILD_SRC_DIR
	Env  []string // KEY=VALUE, on top of the server's PATH and HOME
	Log  io.Writer
	// Stopped tells a cancel (STOPPED) from a timeout when ctx ends.
	Stopped func() bool
	// Started, when set, learns each phase's process group id, so a crashed
	// server's successor can kill what it left behind.
	Started func(pgid int)
	// VarsFile receives the final values of env.exported-variables; it must
	// sit in Dir's parent so a sandbox can reach it too.
	VarsFile string
	// Box, when set, runs the phases in the build's container (Dir's parent
	// mounted at ContainerRoot) instead of on the host.
	Box Box
	// Shell runs the commands when the buildspec names none ("": bash if
	// the host has it, else sh).
	Shell string
}

// Box is the container a build's shell runs in.
type Box interface {
	// ExecInput runs args with env and stdin read from in; when ctx ends
	// it stops everything in the box.
	ExecInput(ctx context.Context, args, env []string, in io.Reader, log io.Writer) (int, error)
}

// ContainerRoot is where the action's workspace appears inside its container.
const ContainerRoot = "/slipway"

// Run runs the phases in order with CodeBuild's failure flow: a failed
// install or pre_build skips the later phases; post_build still runs after a
// failed build with CODEBUILD_BUILD_SUCCEEDING=0; on-failure: CONTINUE goes
// on, on-failure: ABORT (said explicitly) stops there. Version 0.2 runs
// every command in one shell; 0.1 each command in a shell of its own.
func Run(ctx context.Context, job Job) Result {
	shell := job.Spec.Env.Shell
	if shell == "" {
		shell = job.Shell
	}
	if shell == "" {
		shell = "bash"
		if _, err := exec.LookPath("bash"); err != nil {
			shell = "sh"
		}
	}
	phases := []struct {
		name string
		p    *Phase
	}{{"install", job.Spec.Phases.Install}, {"pre_build", job.Spec.Phases.PreBuild}, {"build", job.Spec.Phases.Build}, {"post_build", job.Spec.Phases.PostBuild}}
	sess := newSession(job, shell)
	res := Result{Succeeded: true}
	skipRest := false
	for _, ph := range phases {
		if ph.p == nil {
			continue
		}
		if skipRest {
			res.Phases = append(res.Phases, PhaseResult{Name: ph.name, Status: Skipped})
			continue
		}
		sess.out.note("[slipway] Entering phase %s", strings.ToUpper(ph.name))
		start := time.Now()
		status, code := runCommands(ctx, sess, ph.p.Commands)
		if len(ph.p.Finally) > 0 && status != Stopped && status != TimedOut && ctx.Err() == nil {
			fStatus, fCode := runCommands(ctx, sess, ph.p.Finally)
			if status == Succeeded && fStatus != Succeeded {
				status, code = fStatus, fCode
			}
		}
		if status == Failed && ctx.Err() != nil {
			status = TimedOut
			if job.Stopped != nil && job.Stopped() {
				status = Stopped
			}
		}
		pr := PhaseResult{Name: ph.name, Status: status, ExitCode: code, Duration: time.Since(start)}
		res.Phases = append(res.Phases, pr)
		sess.out.note("[slipway] Phase %s %s (exit %d) in %s", strings.ToUpper(ph.name), status, code, pr.Duration.Round(time.Millisecond))
		if status == Succeeded {
			continue
		}
		if res.Succeeded {
			res.Succeeded = false
			res.ExitCode = code
			res.Reason = fmt.Sprintf("phase %s %s with exit code %d", ph.name, strings.ToLower(status), code)
			sess.setEnv("CODEBUILD_BUILD_SUCCEEDING", "0")
		}
		switch {
		case status == TimedOut || status == Stopped:
			skipRest = true
		case ph.p.OnFailure == "CONTINUE":
		case ph.p.OnFailure == "ABORT":
			skipRest = true
		case ph.name == "install" || ph.name == "pre_build":
			skipRest = true
		}
	}
	sess.end()
	res.Exported = readExported(job)
	return res
}

// readExported reads the NAME=VALUE\x00 records the shells appended; the last value wins.
func readExported(job Job) map[string]string {
	if job.VarsFile == "" || len(job.Spec.Env.ExportedVariables) == 0 {
		return nil
	}
	out := map[string]string{}
	b, err := readOwnFile(job.VarsFile, 1<<20)
	if err != nil {
		return out
	}
	for _, rec := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(rec, "="); ok {
			out[k] = v
		}
	}
	return out
}

// runCommands runs commands one by one in the build's shell and stops at
// the first whose exit status is not 0.
func runCommands(ctx context.Context, sess *session, commands []string) (string, int) {
	for _, c := range commands {
		sess.out.note("[slipway] Running command %s", c)
		code, err := sess.run(ctx, c)
		if sess.job.Spec.Version == "0.1" {
			sess.restart() // each command in a shell of its own
		}
		if err != nil {
			if ctx.Err() == nil {
				sess.out.note("[slipway] %v", err)
			}
			if code == 0 {
				code = 1
			}
			return Failed, code
		}
		if code != 0 {
			return Failed, code
		}
	}
	return Succeeded, 0
}

func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Collect lists the files an artifacts section selects, with their names
// in the artifact. Everything is resolved inside dir: a symbolic link that
// leads out of it (made by a build, or committed to git) is refused, so an
// artifact, report or cache never carries a file from elsewhere on the host.
func Collect(dir string, a Artifacts) ([]artifact.File, error) {
	if len(a.Files) == 0 {
		return nil, errors.New("artifacts.files is empty; list the files to keep, e.g. '**/*'")
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("collect artifacts: %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("collect artifacts: %w", err)
	}
	defer root.Close()
	baseRel := "."
	if a.BaseDirectory != "" {
		if !filepath.IsLocal(a.BaseDirectory) {
			return nil, fmt.Errorf("artifacts.base-directory %q must be inside the source directory", a.BaseDirectory)
		}
		baseRel = filepath.Clean(a.BaseDirectory)
	}
	base, err := root.OpenRoot(baseRel)
	if err != nil {
		return nil, fmt.Errorf("artifacts.base-directory %q: %w", a.BaseDirectory, err)
	}
	defer base.Close()
	baseDir := filepath.Join(dir, baseRel)
	var files []artifact.File
	seen := map[string]bool{}
	for _, pattern := range a.Files {
		re, err := specfile.Glob(strings.TrimPrefix(pattern, "./"))
		if err != nil {
			return nil, fmt.Errorf("artifacts.files %q: %w", pattern, err)
		}
		matched := false
		err = fs.WalkDir(base.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !re.MatchString(rel) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				fi, err := base.Stat(rel)
				if err != nil {
					return fmt.Errorf("artifacts.files %q: %s is a symbolic link that leads outside %s: %w", pattern, rel, orDot(a.BaseDirectory), err)
				}
				if !fi.Mode().IsRegular() {
					return nil // as for directories and special files met on the walk
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			matched = true
			name := rel
			if a.DiscardPaths {
				name = filepath.Base(rel)
			}
			if !seen[name] {
				seen[name] = true
				files = append(files, artifact.File{Name: name, Path: filepath.Join(baseDir, filepath.FromSlash(rel))})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("collect artifacts: %w", err)
		}
		if !matched {
			return nil, fmt.Errorf("artifacts.files %q matched no file under %s", pattern, orDot(a.BaseDirectory))
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

func orDot(s string) string {
	if s == "" {
		return "the source directory"
	}
	return s
}

// readOwnFile reads a file the build wrote, never through a link (the
// build could point it at the server's own files) and at most limit bytes.
func readOwnFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadRegular(f, path, limit)
}

// TooLargeError is a file over the limit of what Slipway reads of it.
type TooLargeError struct {
	Name        string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is %d bytes, over the %d-byte limit for files Slipway reads; make it smaller", e.Name, e.Size, e.Limit)
}

// ReadRegular reads an open file that must be a regular one (not a FIFO a
// read would wait on forever, nor a device) of at most limit bytes.
func ReadRegular(f *os.File, name string, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Size() > limit {
		return nil, &TooLargeError{Name: name, Size: fi.Size(), Limit: limit}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, &TooLargeError{Name: name, Size: int64(len(b)), Limit: limit}
	}
	return b, err
}
