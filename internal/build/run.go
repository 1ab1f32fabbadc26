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

// Box is the container a build's phases run in, one after another.
type Box interface {
	// Exec runs args with env; when ctx ends it kills everything in the box.
	Exec(ctx context.Context, args, env []string, log io.Writer) (int, error)
}

// ContainerRoot is where the action's workspace appears inside its container.
const ContainerRoot = "/slipway"

// Run runs the phases in order with CodeBuild's failure flow: a failed
// install or pre_build skips the later phases; post_build still runs after a
// failed build with CODEBUILD_BUILD_SUCCEEDING=0; on-failure: CONTINUE goes on.
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
		succeeding := "1"
		if !res.Succeeded {
			succeeding = "0"
		}
		env := append(append([]string{}, job.Env...), "CODEBUILD_BUILD_SUCCEEDING="+succeeding)
		fmt.Fprintf(job.Log, "[slipway] Entering phase %s\n", strings.ToUpper(ph.name))
		start := time.Now()
		status, code := runCommands(ctx, shell, job, env, ph.p.Commands)
		if len(ph.p.Finally) > 0 && status != Stopped && status != TimedOut {
			fStatus, fCode := runCommands(ctx, shell, job, env, ph.p.Finally)
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
		fmt.Fprintf(job.Log, "[slipway] Phase %s %s (exit %d) in %s\n", strings.ToUpper(ph.name), status, code, pr.Duration.Round(time.Millisecond))
		if status == Succeeded {
			continue
		}
		if res.Succeeded {
			res.Succeeded = false
			res.ExitCode = code
			res.Reason = fmt.Sprintf("phase %s %s with exit code %d", ph.name, strings.ToLower(status), code)
		}
		switch {
		case status == TimedOut || status == Stopped:
			skipRest = true
		case ph.p.OnFailure == "CONTINUE":
		case ph.name == "install" || ph.name == "pre_build":
			skipRest = true
		}
	}
	res.Exported = readExported(job)
	return res
}

// readExported reads the NAME=VALUE\x00 records the phase shells appended; the last value wins.
func readExported(job Job) map[string]string {
	if job.VarsFile == "" || len(job.Spec.Env.ExportedVariables) == 0 {
		return nil
	}
	out := map[string]string{}
	b, err := os.ReadFile(job.VarsFile)
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

// runCommands runs commands in one shell, stopping at the first failure. The
// shell leads a process group of its own so a timeout or cancel kills every
// process the build started, and nothing outlives the phase.
func runCommands(ctx context.Context, shell string, job Job, env []string, commands []string) (string, int) {
	if len(commands) == 0 {
		return Succeeded, 0
	}
	varsFile := job.VarsFile
	if job.Box != nil && varsFile != "" {
		varsFile = ContainerRoot + "/" + filepath.Base(varsFile)
	}
	var script strings.Builder
	if varsFile != "" && len(job.Spec.Env.ExportedVariables) > 0 {
		// On every exit, even a failing one, record the exported variables' values.
		script.WriteString("__slipway_export() {\n")
		for _, name := range job.Spec.Env.ExportedVariables {
			fmt.Fprintf(&script, "  printf '%%s=%%s\\000' %s \"${%s-}\" >> %s\n", name, name, shellQuote(varsFile))
		}
		script.WriteString("}\ntrap __slipway_export EXIT\n")
	}
	script.WriteString("set -e\n")
	for _, c := range commands {
		fmt.Fprintf(&script, "printf '%%s\\n' %s\n%s\n", shellQuote("[slipway] Running command "+c), c)
	}
	if job.Box != nil {
		return runInBox(ctx, shell, script.String(), job, env)
	}
	cmd := exec.Command(shell, "-c", script.String())
	cmd.Dir = job.Dir
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout = job.Log
	cmd.Stderr = job.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(job.Log, "[slipway] cannot start %s: %v\n", shell, err)
		return Failed, 127
	}
	pgid := cmd.Process.Pid
	if job.Started != nil {
		job.Started(pgid)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // background children of the phase
	if err == nil {
		return Succeeded, 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if code < 0 {
			code = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
		return Failed, code
	}
	fmt.Fprintf(job.Log, "[slipway] %v\n", err)
	return Failed, 1
}

// runInBox runs the script from a file in the workspace, so neither the
// commands nor the environment show in the engine's or the host's process
// listings.
func runInBox(ctx context.Context, shell, script string, job Job, env []string) (string, int) {
	file := filepath.Join(filepath.Dir(job.Dir), ".phase.sh")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		fmt.Fprintf(job.Log, "[slipway] write the phase script: %v\n", err)
		return Failed, 1
	}
	code, err := job.Box.Exec(ctx, []string{shell, ContainerRoot + "/.phase.sh"}, env, job.Log)
	if ctx.Err() != nil {
		return Failed, code // Run turns this into TIMED_OUT or STOPPED
	}
	if err != nil {
		fmt.Fprintf(job.Log, "[slipway] %v\n", err)
		if code == 0 {
			code = 1
		}
		return Failed, code
	}
	if code != 0 {
		return Failed, code
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
				if fi.IsDir() {
					return nil // as for directories met on the walk: their files are matched by path
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
