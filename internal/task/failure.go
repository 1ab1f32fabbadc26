package task

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	ctr "github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipway-dev/slipway/internal/secret"
)

// FailureKind tells how a container failed its task.
type FailureKind string

const (
	// NotStarted: the engine could not start the container (a missing
	// entrypoint, a bad user).
	NotStarted FailureKind = "not_started"
	// Exited: the container ran and exited.
	Exited FailureKind = "exited"
	// Unhealthy: the container failed its health check.
	Unhealthy FailureKind = "unhealthy"
)

// Sizes of what a Failure quotes of a container's output: it goes into
// events and deployment reasons, while the whole output is in the log store.
const (
	FailureOutputLines = 10
	failureLineBytes   = 512
)

// Failure is why a task's container failed, as the engine tells it: the
// exit code, the engine's own error, an OOM kill, the last health check's
// answer and the last lines the container wrote. It is the error Start
// returns when a container cannot start or a dependency fails.
type Failure struct {
	Kind      FailureKind `json:"kind"`
	Task      string      `json:"task,omitempty"`
	Container string      `json:"container"`
	Essential bool        `json:"essential"`
	ExitCode  int         `json:"exit_code"`
	// EngineError is the engine's error (State.Error, or the start
	// request's), short of the runtime's wrapping: exec: "/app": stat
	// /app: no such file or directory.
	EngineError string `json:"engine_error,omitempty"`
	OOMKilled   bool   `json:"oom_killed,omitempty"`
	MemoryLimit int64  `json:"memory_limit_bytes,omitempty"`
	// Health is the last health check's exit code and output, when it failed.
	Health string `json:"health_check,omitempty"`
	// Output is the container's last lines (at most FailureOutputLines).
	Output []string `json:"output,omitempty"`
	cause  error
}

// Headline says what happened, without the output: one line.
func (f *Failure) Headline() string {
	var b strings.Builder
	switch f.Kind {
	case NotStarted:
		fmt.Fprintf(&b, "container %s could not start", f.Container)
		if f.EngineError != "" {
			b.WriteString(": " + f.EngineError)
		}
		if f.ExitCode != 0 {
			fmt.Fprintf(&b, " (exit code %d)", f.ExitCode)
		}
		return b.String()
	case Unhealthy:
		fmt.Fprintf(&b, "container %s failed its health check", f.Container)
		if f.Health != "" {
			b.WriteString(" (" + f.Health + ")")
		}
		return b.String()
	}
	if f.Essential {
		b.WriteString("essential ")
	}
	fmt.Fprintf(&b, "container %s exited with code %d", f.Container, f.ExitCode)
	switch {
	case f.OOMKilled:
		b.WriteString(": OOM-killed")
		if f.MemoryLimit > 0 {
			fmt.Fprintf(&b, " at its memory limit of %d MiB", f.MemoryLimit>>20)
		}
	case f.ExitCode == 137 && f.MemoryLimit > 0:
		// The engine misses some OOM kills (its event comes after the
		// exit, or never): a SIGKILL under a limit may well be one.
		fmt.Fprintf(&b, ": killed (SIGKILL), perhaps out of memory at its memory limit of %d MiB", f.MemoryLimit>>20)
	}
	if f.EngineError != "" {
		b.WriteString(" (engine: " + f.EngineError + ")")
	}
	return b.String()
}

// OutputText is the last output on one line, lines apart by " | ".
func (f *Failure) OutputText() string { return strings.Join(f.Output, " | ") }

// Error is the headline and the last output, on one line: what a
// deployment's reason quotes.
func (f *Failure) Error() string {
	if len(f.Output) == 0 {
		return f.Headline()
	}
	return f.Headline() + "; last output: " + f.OutputText()
}

// Unwrap is the engine's error that stopped a start, if any.
func (f *Failure) Unwrap() error { return f.cause }

// Mask replaces the secrets in what the failure quotes; nil masks nothing.
func (f *Failure) Mask(m *strings.Replacer) {
	if f == nil || m == nil {
		return
	}
	f.EngineError, f.Health = m.Replace(f.EngineError), m.Replace(f.Health)
	for i, l := range f.Output {
		f.Output[i] = m.Replace(l)
	}
}

// engineCause cuts the runtime's wrapping from an engine error: "failed to
// create shim task: OCI runtime create failed: runc create failed: unable
// to start container process: exec: …: unknown" says only what follows
// the last wrapper.
func engineCause(msg string) string {
	msg = strings.TrimSpace(msg)
	for _, wrapper := range []string{"error during container init: ", "unable to start container process: "} {
		if i := strings.LastIndex(msg, wrapper); i >= 0 {
			msg = msg[i+len(wrapper):]
			break
		}
	}
	return strings.TrimSuffix(msg, ": unknown")
}

// Failure tells why task t failed: its first essential container that
// exited, else its first container failing its health check; nil when
// neither.
func (r *Runtime) Failure(ctx context.Context, t Task) *Failure {
	for _, c := range t.Containers {
		if c.Essential && c.State == "exited" {
			return r.containerFailure(ctx, t.ID, c.Name, c.ID, true, Exited, nil)
		}
	}
	for _, c := range t.Containers {
		if c.Health == "unhealthy" {
			return r.containerFailure(ctx, t.ID, c.Name, c.ID, c.Essential, Unhealthy, nil)
		}
	}
	return nil
}

// containerFailure reads a failed container's state and last lines from
// the engine; cause is the error of a start that failed.
func (r *Runtime) containerFailure(ctx context.Context, taskID, name, cid string, essential bool, kind FailureKind, cause error) *Failure {
	// The container goes soon after: a cancelled caller still gets the
	// cause, within a bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	f := &Failure{Kind: kind, Task: taskID, Container: name, Essential: essential, cause: cause}
	if info, err := r.cli.ContainerInspect(ctx, cid); err == nil && info.State != nil {
		st := info.State
		f.ExitCode, f.OOMKilled, f.EngineError = st.ExitCode, st.OOMKilled, engineCause(st.Error)
		if info.HostConfig != nil {
			f.MemoryLimit = info.HostConfig.Memory
		}
		if kind == Unhealthy && st.Health != nil && len(st.Health.Log) > 0 {
			last := st.Health.Log[len(st.Health.Log)-1]
			f.Health = "exit code " + strconv.Itoa(last.ExitCode)
			if out := strings.TrimSpace(last.Output); out != "" {
				f.Health += ": " + capLine(strings.Join(strings.Fields(out), " "), failureLineBytes)
			}
		}
	}
	if f.EngineError == "" && cause != nil {
		f.EngineError = engineCause(cause.Error())
	}
	f.Output = r.tail(ctx, cid, FailureOutputLines)
	return f
}

// tail reads a container's last n lines (blank ones left out), each cut
// to failureLineBytes. The engine logs stdout and stderr apart, and a
// burst on stdout can land after the error a program wrote to stderr last:
// a wider window is read, and its last stderr lines are kept among the n.
func (r *Runtime) tail(ctx context.Context, cid string, n int) []string {
	const errLines = 3
	rc, err := r.cli.ContainerLogs(ctx, cid, ctr.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(4 * n)})
	if err != nil {
		return nil
	}
	defer rc.Close()
	type line struct {
		text   string
		stderr bool
	}
	var window []line
	keep := func(stderr bool) func([]byte) {
		return func(b []byte) {
			s := strings.TrimRight(string(b), "\r")
			if strings.TrimSpace(s) != "" {
				window = append(window, line{capLine(s, failureLineBytes), stderr})
			}
		}
	}
	stdout := &lineWriter{max: failureLineBytes + 1, emit: keep(false)}
	stderr := &lineWriter{max: failureLineBytes + 1, emit: keep(true)}
	_, _ = stdcopy.StdCopy(stdout, stderr, rc)
	stdout.Close()
	stderr.Close()
	// From the newest back: the last stderr lines first, then the newest
	// of the rest up to n, shown in the engine's order.
	chosen := make([]bool, len(window))
	picked := 0
	for i := len(window) - 1; i >= 0 && picked < errLines && picked < n; i-- {
		if window[i].stderr {
			chosen[i], picked = true, picked+1
		}
	}
	for i := len(window) - 1; i >= 0 && picked < n; i-- {
		if !chosen[i] {
			chosen[i], picked = true, picked+1
		}
	}
	var out []string
	for i, l := range window {
		if chosen[i] {
			out = append(out, l.text)
		}
	}
	return out
}

// capLine cuts s to at most max bytes at a character boundary, marking the cut.
func capLine(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// lineWriter splits what is written into lines, handing each to emit
// without its newline. A line longer than max is handed over cut to max
// bytes, once, and the rest of it dropped: memory stays bounded whatever
// a container writes.
type lineWriter struct {
	max      int
	emit     func([]byte)
	buf      []byte
	skipping bool // the current line was cut and handed over
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !w.skipping {
			if room := w.max - len(w.buf); len(chunk) > room {
				w.buf = append(w.buf, chunk[:room]...)
				w.emit(w.buf)
				w.buf, w.skipping = w.buf[:0], true
			} else {
				w.buf = append(w.buf, chunk...)
			}
		}
		if i < 0 {
			break
		}
		if !w.skipping {
			w.emit(w.buf)
		}
		w.buf, w.skipping = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// Close hands over a last line that had no newline.
func (w *lineWriter) Close() {
	if len(w.buf) > 0 && !w.skipping {
		w.emit(w.buf)
	}
	w.buf, w.skipping = w.buf[:0], false
}

// secretMasker masks the values of a task's secrets (nil: none).
func secretMasker(secrets map[string]map[string]string) *strings.Replacer {
	var values []string
	for _, vals := range secrets {
		for _, v := range vals {
			values = append(values, v)
		}
	}
	return secret.Masker(values)
}
