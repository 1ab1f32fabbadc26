package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// session is the one shell a buildspec 0.2 build runs every command of
// every phase in, as CodeBuild does: a cd or a variable set by one command
// is there for the next, in the next phase too. Commands go to the
// shell's stdin one at a time, each followed by a marker line carrying its
// exit status, so each command line's own status decides (not set -e,
// which ignores `false && x` and stops at `go test > t.json; s=$?`).
// A command that ends the shell (exit N, set -e and a failure) counts with
// the shell's exit status; the next command gets a new shell.
type session struct {
	job   Job
	shell string
	out   *statusWriter
	env   []string // the shell's environment when it starts

	stdin  io.WriteCloser
	exited chan struct{}
	code   int // the shell's exit status, once exited is closed
	err    error
	spent  bool // the shell ended; the next command needs a new one
}

func newSession(job Job, shell string) *session {
	s := &session{job: job, shell: shell, out: newStatusWriter(job.Log)}
	s.env = append(append([]string{}, job.Env...), "CODEBUILD_BUILD_SUCCEEDING=1")
	return s
}

// setEnv changes a variable for the running shell, if any, and for any
// shell started later.
func (s *session) setEnv(k, v string) {
	s.env = append(s.env, k+"="+v)
	if s.stdin != nil && !s.spent {
		s.send(fmt.Sprintf("export %s=%s\n", k, shellQuote(v)))
	}
}

// start runs a new shell reading from a pipe.
func (s *session) start(ctx context.Context) error {
	s.exited, s.spent, s.err, s.code = make(chan struct{}), false, nil, 0
	exited := s.exited
	if s.job.Box != nil {
		r, w := io.Pipe()
		s.stdin = w
		go func() {
			defer close(exited)
			s.code, s.err = s.job.Box.ExecInput(ctx, []string{s.shell}, s.env, r, s.out)
			r.CloseWithError(io.EOF)
		}()
	} else {
		// An *os.File as stdin: exec.Cmd then copies nothing, so Wait
		// returns when the shell exits even while the pipe stays open.
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		s.stdin = w
		cmd := exec.Command(s.shell)
		cmd.Dir = s.job.Dir
		cmd.Env = append(baseEnv(), s.env...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r, s.out, s.out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = cmd.Start()
		r.Close()
		if err != nil {
			w.Close()
			return fmt.Errorf("cannot start %s: %w", s.shell, err)
		}
		pgid := cmd.Process.Pid
		if s.job.Started != nil {
			s.job.Started(pgid)
		}
		go func() {
			defer close(exited)
			killed := make(chan struct{})
			go func() {
				select {
				case <-ctx.Done():
					_ = syscall.Kill(-pgid, syscall.SIGTERM)
					select {
					case <-killed:
					case <-time.After(3 * time.Second):
						_ = syscall.Kill(-pgid, syscall.SIGKILL)
					}
				case <-killed:
				}
			}()
			err := cmd.Wait()
			close(killed)
			_ = syscall.Kill(-pgid, syscall.SIGKILL) // what the shell left in the background
			s.code, s.err = exitStatus(err)
		}()
	}
	s.send(s.preamble())
	return nil
}

// preamble defines the status marker and, for exported variables, the
// function that records them, also when a command ends the shell.
func (s *session) preamble() string {
	var b strings.Builder
	fmt.Fprintf(&b, "__slipway_status() { printf '%s %%s\\n' \"$1\"; }\n", s.out.marker)
	varsFile := s.job.VarsFile
	if s.job.Box != nil && varsFile != "" {
		varsFile = ContainerRoot + "/" + filepath.Base(varsFile)
	}
	if varsFile != "" && len(s.job.Spec.Env.ExportedVariables) > 0 {
		b.WriteString("__slipway_export() {\n")
		for _, name := range s.job.Spec.Env.ExportedVariables {
			fmt.Fprintf(&b, "  printf '%%s=%%s\\000' %s \"${%s-}\" >> %s\n", name, name, shellQuote(varsFile))
		}
		b.WriteString("}\ntrap __slipway_export EXIT\n")
	}
	return b.String()
}

func (s *session) send(text string) {
	_, _ = io.WriteString(s.stdin, text) // a shell that is gone shows as exited
}

// run runs one command line and returns its exit status. err is set when
// ctx ended first (the shell is then being killed) or the shell could not
// run at all.
func (s *session) run(ctx context.Context, command string) (int, error) {
	if s.stdin == nil || s.spent {
		if s.stdin != nil {
			s.out.note("[slipway] The shell exited (status %d); the next commands run in a new shell, without the old one's variables and directory", s.code)
		}
		if err := s.start(ctx); err != nil {
			return 127, err
		}
	}
	// eval keeps the command in this shell (its cd and variables stay);
	// stdin is /dev/null so a command that reads input does not eat the
	// commands that follow.
	s.send("eval " + shellQuote(command) + " </dev/null; __slipway_status $?\n")
	select {
	case st := <-s.out.statuses:
		return st, nil
	case <-s.exited:
		s.spent = true
		// The marker may come after the exit has been seen.
		select {
		case st := <-s.out.statuses:
			return st, nil
		default:
		}
		if ctx.Err() != nil {
			return s.code, ctx.Err()
		}
		if s.err != nil {
			return s.code, s.err
		}
		return s.code, nil
	case <-ctx.Done():
		<-s.exited // the runner kills the shell and what it started
		s.spent = true
		return s.code, ctx.Err()
	}
}

// restart ends the shell so that the next command gets a fresh one, with
// no note in the log (buildspec 0.1 runs every command so).
func (s *session) restart() {
	s.end()
	s.stdin = nil
}

// end records the exported variables and lets the shell exit, killing
// anything it left running.
func (s *session) end() {
	if s.stdin == nil {
		return
	}
	if !s.spent {
		if len(s.job.Spec.Env.ExportedVariables) > 0 {
			s.send("__slipway_export; trap - EXIT\n")
		}
		s.send("exit 0\n")
	}
	s.stdin.Close()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	s.spent = true
}

func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if code < 0 {
			code = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
		return code, nil
	}
	return 1, err
}

// statusWriter passes a shell's output on to the log, takes out the
// status markers the session's commands print, and keeps the session's
// own notes on lines of their own.
type statusWriter struct {
	mu       sync.Mutex
	out      io.Writer
	marker   string // random: a build cannot print it by chance
	buf      []byte
	midLine  bool // the last byte passed on was not a newline
	statuses chan int
}

func newStatusWriter(out io.Writer) *statusWriter {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &statusWriter{out: out, marker: "\x1eslipway-status-" + hex.EncodeToString(b), statuses: make(chan int, 1)}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	full := w.marker + " "
	for {
		i := bytes.Index(w.buf, []byte(full))
		if i < 0 {
			break
		}
		nl := bytes.IndexByte(w.buf[i+len(full):], '\n')
		if nl < 0 {
			w.pass(w.buf[:i])
			w.buf = w.buf[i:]
			return len(p), nil
		}
		w.pass(w.buf[:i])
		st, err := strconv.Atoi(string(w.buf[i+len(full) : i+len(full)+nl]))
		if err != nil {
			st = 1
		}
		w.buf = w.buf[i+len(full)+nl+1:]
		select {
		case w.statuses <- st:
		default:
			// A status nobody waits for (a build printing the marker
			// itself): dropping it keeps the output flowing.
		}
	}
	// Hold back a tail that may be the start of a marker.
	keep := 0
	for n := min(len(full)-1, len(w.buf)); n > 0; n-- {
		if bytes.HasSuffix(w.buf, []byte(full[:n])) {
			keep = n
			break
		}
	}
	w.pass(w.buf[:len(w.buf)-keep])
	w.buf = append(w.buf[:0], w.buf[len(w.buf)-keep:]...)
	return len(p), nil
}

func (w *statusWriter) pass(b []byte) {
	if len(b) == 0 {
		return
	}
	_, _ = w.out.Write(b)
	w.midLine = b[len(b)-1] != '\n'
}

// note writes one of Slipway's own lines, on a line of its own.
func (w *statusWriter) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.midLine {
		_, _ = io.WriteString(w.out, "\n")
	}
	fmt.Fprintf(w.out, format+"\n", args...)
	w.midLine = false
}
