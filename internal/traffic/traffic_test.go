package traffic

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadCountsAnswersAndFailures(t *testing.T) {
	var n atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch i := n.Add(1); {
		case i%10 == 0:
			http.Error(w, "overloaded\nsecond line", http.StatusServiceUnavailable)
		case i%2 == 0:
			w.Write([]byte("version=2 from b\n"))
		default:
			w.Write([]byte("version=1 from a\n"))
		}
	}))
	defer hs.Close()

	l := Start(Options{URLs: []string{hs.URL + "/a", hs.URL + "/b"}, Clients: 4})
	deadline := time.Now().Add(10 * time.Second)
	for l.OK() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	total, failed := l.Stop()
	if again, _ := l.Stop(); again != total {
		t.Fatalf("a second Stop changed the total: %d then %d", total, again)
	}
	if total != n.Load() {
		t.Fatalf("total %d, the server answered %d", total, n.Load())
	}
	if failed != n.Load()/10 || l.Failed() != failed {
		t.Fatalf("failed %d (Failed %d), want %d", failed, l.Failed(), n.Load()/10)
	}
	if got := l.Served("version=1") + l.Served("version=2"); got != l.OK() || l.OK() != total-failed {
		t.Fatalf("served by version %d, OK %d, total-failed %d", got, l.OK(), total-failed)
	}
	if l.Served("version=3") != 0 {
		t.Fatal("a version nobody served was counted")
	}
	fs := l.Failures()
	if len(fs) == 0 || len(fs) > keptFailures || !strings.Contains(fs[0], "503 Service Unavailable overloaded") || strings.Contains(fs[0], "second line") {
		t.Fatalf("failures: %q", fs)
	}
	if !strings.Contains(l.LastError(), "503") {
		t.Fatalf("last error %q", l.LastError())
	}
}

func TestLoadReportsUnreachableTargets(t *testing.T) {
	l := Start(Options{URLs: []string{"http://127.0.0.1:1/"}, Clients: 1, Pause: 5 * time.Millisecond, Timeout: time.Second})
	time.Sleep(50 * time.Millisecond)
	total, failed := l.Stop()
	if total == 0 || failed != total || !strings.Contains(l.LastError(), "connection refused") {
		t.Fatalf("total %d failed %d last %q", total, failed, l.LastError())
	}
}

func TestFirstWord(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"version=2 from b\n", "version=2"},
		{"  \tversion=3\n", "version=3"},
		{"version=4", "version=4"},
		{"", ""},
		{" \n", ""},
	} {
		if got := string(firstWord([]byte(tt.in))); got != tt.want {
			t.Errorf("firstWord(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
