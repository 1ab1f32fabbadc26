package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
)

// logWriter splits an action's output into timestamped lines and stores
// them: a line after a quiet spell at once, a burst in batches at most
// logFlushEvery apart, so followers see a line promptly without one
// database write per line.
type logWriter struct {
	store    store.ExecStore
	actionID int64
	log      *slog.Logger
	mask     *strings.Replacer
	secrets  []string

	mu      sync.Mutex
	partial []byte
	pending []store.LogLine
	kick    chan struct{} // a line is pending
	done    chan struct{}
	flushed chan struct{}
}

const (
	logFlushEvery = 50 * time.Millisecond
	maxLineBytes  = 16 << 10
)

func newLogWriter(st store.ExecStore, actionID int64, log *slog.Logger, secrets []string) *logWriter {
	w := &logWriter{store: st, actionID: actionID, log: log, secrets: secrets, mask: masker(secrets), kick: make(chan struct{}, 1), done: make(chan struct{}), flushed: make(chan struct{})}
	go w.loop()
	return w
}

// AddSecrets masks more values from now on (secrets resolved once the
// action knows which it needs).
func (w *logWriter) AddSecrets(values ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, values...)
	w.mask = masker(w.secrets)
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			if len(w.partial) > maxLineBytes { // a line without end still gets stored
				w.add(w.partial)
				w.partial = nil
			}
			return len(p), nil
		}
		w.add(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
}

// add stores one complete line. Masking works on whole lines, so a secret
// the build wrote in two pieces is joined before it is masked.
func (w *logWriter) add(line []byte) {
	text := string(bytes.TrimSuffix(line, []byte("\r")))
	if w.mask != nil {
		text = w.mask.Replace(text)
	}
	w.pending = append(w.pending, store.LogLine{At: time.Now().UTC(), Line: text})
	select {
	case w.kick <- struct{}{}:
	default: // already kicked
	}
}

// Mask replaces secret values in log lines.
const Mask = secret.Mask

func masker(secrets []string) *strings.Replacer { return secret.Masker(secrets) }

func (w *logWriter) loop() {
	defer close(w.flushed)
	var last time.Time
	for {
		select {
		case <-w.kick:
			if wait := logFlushEvery - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-w.done:
					w.finish()
					return
				}
			}
			w.flush()
			last = time.Now()
		case <-w.done:
			w.finish()
			return
		}
	}
}

// finish stores what is left, an unterminated last line included.
func (w *logWriter) finish() {
	w.mu.Lock()
	if len(w.partial) > 0 {
		w.add(w.partial)
		w.partial = nil
	}
	w.mu.Unlock()
	w.flush()
}

func (w *logWriter) flush() {
	w.mu.Lock()
	lines := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	if err := w.store.AppendLog(context.Background(), w.actionID, lines); err != nil {
		w.log.Error("store action log", "action", w.actionID, "err", err)
	}
}

// Close stores what is left and waits until it is stored.
func (w *logWriter) Close() {
	close(w.done)
	<-w.flushed
}
