// Package httpguard holds the limits an HTTP server puts on its clients'
// pace: net/http bounds the header and idle time, but a body that trickles
// in a byte every few seconds would hold its handler (and a connection)
// for as long as the client likes.
package httpguard

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Limits bound how slowly a request body may arrive.
type Limits struct {
	// Idle is the longest wait for any next bytes of the body.
	Idle time.Duration
	// Grace is how long a body may take before MinRate applies.
	Grace time.Duration
	// MinRate is the average bytes per second a body must keep after Grace.
	MinRate int64
}

// Defaults suit people on slow links pushing large images and repositories:
// a body must average 1 KiB/s once it has taken ten seconds.
var Defaults = Limits{Idle: 30 * time.Second, Grace: 10 * time.Second, MinRate: 1 << 10}

// Server timeouts for net/http servers facing clients: the header must
// arrive within HeaderTimeout of the connection (or of the previous
// response), and an idle keep-alive connection closes after IdleTimeout.
const (
	HeaderTimeout  = 10 * time.Second
	IdleTimeout    = 60 * time.Second
	MaxHeaderBytes = 64 << 10
)

// ErrTooSlow is the body's read error when a client sends too slowly.
var ErrTooSlow = errors.New("request body arrives too slowly")

// Guard makes r's body obey l; reading past a limit fails with ErrTooSlow
// (or a deadline error) and the connection is closed.
func (l Limits) Guard(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	r.Body = &slowBody{ReadCloser: r.Body, rc: http.NewResponseController(w), l: l, start: time.Now()}
}

type slowBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	l     Limits
	start time.Time
	n     int64
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.l.Idle > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.l.Idle)) // not every writer supports it (tests' recorders)
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == nil && b.l.MinRate > 0 {
		if elapsed := time.Since(b.start); elapsed > b.l.Grace && float64(b.n) < float64(b.l.MinRate)*elapsed.Seconds() {
			_ = b.rc.SetReadDeadline(time.Now()) // the connection goes with the request
			return n, ErrTooSlow
		}
	}
	return n, err
}
