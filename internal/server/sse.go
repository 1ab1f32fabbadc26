package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// sseKeepalive is how long a stream may stay silent before a comment line
// keeps proxies and browsers from closing it.
const sseKeepalive = 15 * time.Second

// eventStream writes Server-Sent Events to one client.
type eventStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	last time.Time
}

// startEvents sends the stream's headers at once, so the client knows it is connected.
func startEvents(w http.ResponseWriter) *eventStream {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	es := &eventStream{w: w, rc: http.NewResponseController(w), last: time.Now()}
	_ = es.rc.Flush()
	return es
}

// event writes one event (id may be empty) without flushing.
func (es *eventStream) event(id, name string, data any) {
	b, _ := json.Marshal(data)
	if id != "" {
		fmt.Fprintf(es.w, "id: %s\n", id)
	}
	fmt.Fprintf(es.w, "event: %s\ndata: %s\n\n", name, b)
	es.last = time.Now()
}

// flush sends what was written; an error means the client is gone.
func (es *eventStream) flush() error { return es.rc.Flush() }

// keepalive writes a comment when the stream has been silent too long.
func (es *eventStream) keepalive() error {
	if time.Since(es.last) < sseKeepalive {
		return nil
	}
	fmt.Fprint(es.w, ": keepalive\n\n")
	es.last = time.Now()
	return es.rc.Flush()
}

// idle keeps a silent stream alive, then waits for wake, for poll to pass
// or for the client to leave; false when the client is gone.
func (es *eventStream) idle(ctx context.Context, wake <-chan struct{}, poll time.Duration) bool {
	if es.keepalive() != nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-time.After(poll):
	}
	return true
}
