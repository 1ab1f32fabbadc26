package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testServer(t *testing.T) *Client {
	t.Helper()
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"error":{"code":"unauthorized","message":"a valid token is required"}}`)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /echo", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		io.Copy(w, r.Body)
	}))
	mux.HandleFunc("GET /bad", auth(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":"invalid","message":"must be lower-case","field":"name"}}`)
	}))
	mux.HandleFunc("GET /plain-500", auth(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	mux.HandleFunc("GET /events", auth(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "want SSE", http.StatusNotAcceptable)
			return
		}
		fmt.Fprint(w, "event: line\ndata: one\n\n: a comment\n\nevent: line\ndata: two\n\nevent: end\ndata: {}\n\n")
	}))
	mux.HandleFunc("GET /events-cut", auth(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "event: line\ndata: one\n\n")
	}))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return New(hs.URL+"/", "tok")
}

func TestDo(t *testing.T) {
	c := testServer(t)
	ctx := context.Background()
	var out map[string]int
	if err := c.Do(ctx, "POST", "/echo", map[string]int{"n": 7}, &out); err != nil || out["n"] != 7 {
		t.Fatalf("echo: %v %v", out, err)
	}
	tests := []struct {
		name, path string
		client     *Client
		status     int
		message    string
	}{
		{"server error body", "/bad", c, 400, "must be lower-case (field name)"},
		{"no error body", "/plain-500", c, 500, "server answered 500 Internal Server Error"},
		{"bad token", "/bad", New(c.URL(), "nope"), 401, "a valid token is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.client.Do(ctx, "GET", tt.path, nil, nil)
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.status || err.Error() != tt.message {
				t.Fatalf("err = %v (%T), want %d %q", err, err, tt.status, tt.message)
			}
		})
	}
	down := New("http://127.0.0.1:1", "tok")
	if err := down.Do(ctx, "GET", "/x", nil, nil); err == nil || !strings.Contains(err.Error(), "cannot reach the Slipway server at http://127.0.0.1:1") {
		t.Fatalf("unreachable server: %v", err)
	}
}

func TestEvents(t *testing.T) {
	c := testServer(t)
	var got []string
	err := c.Events(context.Background(), "/events", func(event string, data []byte) (bool, error) {
		got = append(got, event+"="+string(data))
		return event == "end", nil
	})
	if err != nil || strings.Join(got, ",") != "line=one,line=two,end={}" {
		t.Fatalf("events %v, err %v", got, err)
	}
	err = c.Events(context.Background(), "/events-cut", func(string, []byte) (bool, error) { return false, nil })
	if err == nil || !strings.Contains(err.Error(), "ended before") {
		t.Fatalf("a cut stream: %v", err)
	}
	stop := errors.New("stop")
	if err := c.Events(context.Background(), "/events", func(string, []byte) (bool, error) { return false, stop }); err != stop {
		t.Fatalf("fn's error: %v", err)
	}
	if _, err := c.Stream(context.Background(), "/bad", ""); err == nil || !strings.Contains(err.Error(), "lower-case") {
		t.Fatalf("stream of an error: %v", err)
	}
}
