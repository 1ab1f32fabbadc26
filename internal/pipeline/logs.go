package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	// keep is how many bytes of an unterminated line stay buffered when
	// a piece of it is stored: the longest masked form less one, so the
	// start of a secret whose rest is still to come is never stored.
	keep int
	// forms are what mask replaces, longest first, by first byte.
	forms [256][][]byte

	// limit caps the bytes of log kept for the action (MaxLogBytes);
	// kept counts them. Past the limit the action runs on, unlogged.
	limit, kept int64
	cut         bool

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

// MaxLogBytes is how much of one action's output is kept: a build that
// prints a gigabyte must not fill the database (nor, while lines wait to
// be stored, the server's memory).
const MaxLogBytes = 64 << 20

func newLogWriter(st store.ExecStore, actionID int64, log *slog.Logger, secrets []string) *logWriter {
	w := &logWriter{store: st, actionID: actionID, log: log, secrets: secrets, limit: MaxLogBytes,
		kick: make(chan struct{}, 1), done: make(chan struct{}), flushed: make(chan struct{})}
	w.setMask()
	go w.loop()
	return w
}

// AddSecrets masks more values from now on (secrets resolved once the
// action knows which it needs).
func (w *logWriter) AddSecrets(values ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, values...)
	w.setMask()
}

// setMask rebuilds the masker and keep from w.secrets; w.mu is held or w
// is not shared yet.
func (w *logWriter) setMask() {
	w.mask, w.keep, w.forms = masker(w.secrets), 0, [256][][]byte{}
	forms := secret.Forms(w.secrets)
	if len(forms) > 0 {
		w.keep = len(forms[0]) - 1 // longest first
	}
	for _, f := range forms {
		w.forms[f[0]] = append(w.forms[f[0]], []byte(f))
	}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.add(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > maxLineBytes+w.keep {
		// A line without end still gets stored, in pieces. The last keep
		// bytes stay raw, as they may begin a secret (or a longer form of
		// one already complete) whose rest has not been written yet; the
		// front is masked as a whole before it is cut, so no secret is
		// split between two pieces where neither half would match.
		cut := w.safeCut(w.partial, len(w.partial)-w.keep)
		text := w.maskText(w.partial[:cut])
		for len(text) > maxLineBytes {
			end := pieceEnd(text)
			w.queue(text[:end])
			text = text[end:]
		}
		// The masked rest holds no secret and ends where the masker's
		// choices end, so masking it again with what follows finds only
		// secrets that start after it.
		w.partial = append([]byte(text), w.partial[cut:]...)
	}
	return len(p), nil
}

// safeCut moves a cut at at forward past the end of a secret that starts
// before it, following the masker's own left-to-right, first-key-wins
// choice of what to replace. Every form fits in b from a start before at
// (at is len(b)-keep), so bytes still to come do not change these choices.
func (w *logWriter) safeCut(b []byte, at int) int {
	for p := 0; p < at; {
		n := w.formAt(b[p:])
		if n == 0 {
			p++
			continue
		}
		if p+n > at {
			return p + n
		}
		p += n
	}
	return at
}

// formAt is the length of the form mask would replace at the start of b,
// 0 if none: the first (longest) that matches, as strings.Replacer picks
// the first key in argument order.
func (w *logWriter) formAt(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	for _, f := range w.forms[b[0]] {
		if bytes.HasPrefix(b, f) {
			return len(f)
		}
	}
	return 0
}

// add stores one complete line, in pieces of at most maxLineBytes. Masking
// works on the whole line, so a secret the build wrote in two pieces is
// joined before it is masked.
func (w *logWriter) add(line []byte) {
	text := w.maskText(bytes.TrimSuffix(line, []byte("\r")))
	for len(text) > maxLineBytes {
		cut := pieceEnd(text)
		w.queue(text[:cut])
		text = text[cut:]
	}
	w.queue(text)
}

// Mask hides in s every secret the log hides: for what an action keeps
// beside its log (its failure reason, a job's summary and annotations).
func (w *logWriter) Mask(s string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maskText([]byte(s))
}

func (w *logWriter) maskText(b []byte) string {
	if w.mask == nil {
		return string(b)
	}
	return w.mask.Replace(string(b))
}

// pieceEnd is where the first piece of a text over maxLineBytes ends: at
// most maxLineBytes, not inside a UTF-8 sequence.
func pieceEnd(text string) int {
	cut := maxLineBytes
	for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(text[cut]); i++ {
		cut--
	}
	return cut
}

// queue queues one line for the next flush, until the log reaches its
// limit, which the last kept line says.
func (w *logWriter) queue(text string) {
	if w.cut {
		return
	}
	if w.kept += int64(len(text)) + 1; w.kept > w.limit {
		w.cut = true
		text = fmt.Sprintf("[slipway] The log reached %d MiB: what the action prints from here on is not kept (the action goes on)", w.limit>>20)
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
	var retry <-chan time.Time // set while the database is unreachable
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
		case <-retry:
		case <-w.done:
			w.finish()
			return
		}
		retry = nil
		if !w.flush() {
			retry = time.After(logRetryEvery)
		}
		last = time.Now()
	}
}

// logRetryEvery is how often lines the database did not take are offered
// again; logRetryFor is how long the last ones are, once the action ended.
const (
	logRetryEvery = time.Second
	logRetryFor   = 30 * time.Second
)

// finish stores what is left, an unterminated last line included, waiting
// a while for a database that does not answer.
func (w *logWriter) finish() {
	w.mu.Lock()
	if len(w.partial) > 0 {
		w.add(w.partial)
		w.partial = nil
	}
	w.mu.Unlock()
	for deadline := time.Now().Add(logRetryFor); !w.flush(); {
		if time.Now().After(deadline) {
			w.mu.Lock()
			lost := len(w.pending)
			w.pending = nil
			w.mu.Unlock()
			w.log.Error("the database stayed unreachable: log lines of the action were not stored", "action", w.actionID, "lines", lost)
			return
		}
		time.Sleep(logRetryEvery)
	}
}

// flush stores the pending lines. It is false when the database did not
// answer: the lines stay pending, in order, for the next try (up to the
// log's size limit, which queue already enforces). Lines refused for any
// other reason are dropped with an error in the server's log, as retrying
// them would fail the same way.
func (w *logWriter) flush() bool {
	w.mu.Lock()
	lines := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(lines) == 0 {
		return true
	}
	err := w.store.AppendLog(context.Background(), w.actionID, lines)
	if err == nil {
		return true
	}
	if store.Unavailable(err) {
		w.mu.Lock()
		w.pending = append(lines, w.pending...)
		w.mu.Unlock()
		w.log.Warn("the database does not answer; keeping the action's log lines to store them later", "action", w.actionID, "lines", len(lines), "err", err)
		return false
	}
	w.log.Error("store action log", "action", w.actionID, "err", err)
	return true
}

// Close stores what is left and waits until it is stored.
func (w *logWriter) Close() {
	close(w.done)
	<-w.flushed
}
