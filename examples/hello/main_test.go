package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	version, commit = "1.2.3", "0123456789abcdef"
	srv := httptest.NewServer(handler())
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "hello from slipway: version=1.2.3 commit=0123456789ab\n"},
		{"/health", 200, "ok\n"},
		{"/nope", 404, "404 page not found\n"},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.EqualFold(string(b), tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}
