package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/container"
)

// stepRunner is one shell in a job's sandbox that runs the job's steps one
// after another: each step's script is written to its file, run by its
// shell in a subshell, and followed by a marker line with a random token
// and the exit status. A docker exec per step costs the engine about
// 70 ms; a line on a pipe costs next to nothing.
type stepRunner struct {
	in     *io.PipeWriter
	token  string
	cancel context.CancelFunc
	exited chan struct{}
	err    error // why the shell ended, once exited is closed

	mu        sync.Mutex
	logs      io.Writer // where output between steps goes
	out       io.Writer // the running step's output (nil: between steps)
	done      chan int  // the running step's exit status
	partial   []byte
	heldEmpty bool // an empty line that may be the one before a marker
}

// startRunner starts the shell. Ending ctx, or cancel, kills the box.
func startRunner(ctx context.Context, box *container.Box, env []string, logs io.Writer) *stepRunner {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	r := &stepRunner{in: pw, token: "SLIPWAY_STEP_" + hex.EncodeToString(b), cancel: cancel, exited: make(chan struct{}), logs: logs}
	go func() {
		defer close(r.exited)
		code, err := box.ExecInput(ctx, []string{"sh"}, env, pr, r)
		if err == nil {
			err = fmt.Errorf("the job's shell ended with exit code %d", code)
		}
		r.err = err
		pr.CloseWithError(err)
	}()
	return r
}

// close ends the shell after the last step.
func (r *stepRunner) close() {
	r.in.Close() // the shell reads its end and exits
	select {
	case <-r.exited:
	case <-time.After(2 * time.Second):
		r.cancel()
		<-r.exited
	}
}

// run runs one step: script goes to file, the files in empty are made
// empty, then argv runs in dir with env (exactly: nothing of the shell's
// own environment is kept). It returns
// the step's exit status; an error means the shell is gone.
func (r *stepRunner) run(ctx context.Context, file, script string, argv, env []string, dir string, empty []string, out io.Writer) (int, error) {
	done := make(chan int, 1)
	r.mu.Lock()
	r.out, r.done = out, done
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.flushHeld()
		r.out, r.done = nil, nil
		r.mu.Unlock()
	}()
	if !strings.HasSuffix(script, "\n") {
		script += "\n"
	}
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "mkdir -p %s && cat > %s <<'%s'\n%s%s\n", shQuote(parentDir(file)), shQuote(file), r.token, script, r.token)
	for _, f := range empty { // the step's command files, made by the sandbox's user
		cmd.WriteString(": > " + shQuote(f) + "\n")
	}
	cmd.WriteString("( cd " + shQuote(dir) + " 2>/dev/null || { echo \"working-directory " + strings.ReplaceAll(dir, `"`, ``) + " does not exist\"; exit 1; }\n")
	// Exported in the subshell, not passed as arguments: a process's
	// arguments are for every process in the container to read.
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !envName.MatchString(k) {
			fmt.Fprintf(out, "##[warning]%s is not a variable name a shell can export; left out\n", k)
			continue
		}
		cmd.WriteString("export " + k + "=" + shQuote(v) + "\n")
	}
	cmd.WriteString("exec")
	for _, a := range argv {
		cmd.WriteString(" " + shQuote(a))
	}
	cmd.WriteString(" ) </dev/null 2>&1\nprintf '\\n" + r.token + " %d\\n' $?\n")
	if _, err := io.WriteString(r.in, cmd.String()); err != nil {
		<-r.exited
		return 1, r.err
	}
	select {
	case code := <-done:
		return code, nil
	case <-r.exited:
		return 1, r.err
	case <-ctx.Done():
		// The step's processes go with the box: a timed-out step ends the
		// job, as a killed runner would.
		r.cancel()
		<-r.exited
		return 137, ctx.Err()
	}
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Write splits the shell's output into lines: the marker line ends a
// step; other lines go to the step (or, between steps, to the log).
func (r *stepRunner) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, p...)
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		r.line(r.partial[:i+1])
		r.partial = r.partial[i+1:]
	}
	if len(r.partial) > maxLineBytes {
		r.flushHeld()
		r.dest().Write(r.partial)
		r.partial = r.partial[:0]
	}
	return len(p), nil
}

func (r *stepRunner) dest() io.Writer {
	if r.out != nil {
		return r.out
	}
	return r.logs
}

// line handles one complete line (with its newline); r.mu is held.
func (r *stepRunner) line(l []byte) {
	text := strings.TrimSuffix(string(l), "\n")
	if rest, ok := strings.CutPrefix(text, r.token+" "); ok && r.done != nil {
		// The marker's own leading newline ended the step's last line;
		// when that line had its newline already, it made this empty one.
		r.heldEmpty = false
		code, err := strconv.Atoi(rest)
		if err != nil {
			code = 1
		}
		select {
		case r.done <- code:
		default:
		}
		r.out, r.done = nil, nil
		return
	}
	r.flushHeld()
	if text == "" {
		r.heldEmpty = true
		return
	}
	r.dest().Write(l)
}

func (r *stepRunner) flushHeld() {
	if r.heldEmpty {
		r.heldEmpty = false
		r.dest().Write([]byte("\n"))
	}
}
