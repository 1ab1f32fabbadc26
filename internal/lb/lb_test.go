package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/datadir"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// backend answers with its name; /health answers healthStatus.
func backend(t *testing.T, name string, healthStatus *atomic.Int32) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			code := int32(200)
			if healthStatus != nil {
				code = healthStatus.Load()
			}
			w.WriteHeader(int(code))
			return
		}
		if r.URL.Path == "/slow" {
			time.Sleep(700 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s xff=%s host=%s proto=%s", name, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(s.Close)
	return s
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

var fastCheck = HealthCheck{Path: "/health", Interval: Duration{100 * time.Millisecond}, Timeout: Duration{50 * time.Millisecond}, HealthyThreshold: 1, UnhealthyThreshold: 1}

func waitHealthy(t *testing.T, b *Balancer, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		healthy := 0
		for _, ts := range b.State(time.Second).TargetGroups[group].Targets {
			if ts.State == StateHealthy {
				healthy++
			}
		}
		if healthy == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: %d healthy targets, want %d: %+v", group, healthy, n, b.State(time.Second).TargetGroups[group])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWeightsAndHealth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	defer b.Close(context.Background())
	blue, green := backend(t, "blue", nil), backend(t, "green", nil)
	var sick atomic.Int32
	sick.Store(500)
	unhealthy := backend(t, "sick", &sick)
	addr := freeAddr(t)
	cfg := Config{
		TargetGroups: map[string]TargetGroup{
			"blue":  {Targets: []string{hostOf(blue), hostOf(unhealthy)}, HealthCheck: fastCheck},
			"green": {Targets: []string{hostOf(green)}, HealthCheck: fastCheck},
		},
		Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{"blue", 90}, {"green", 10}}}},
	}
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, b, "blue", 1)
	waitHealthy(t, b, "green", 1)
	counts := map[string]int{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for i := 0; i < 10000; i++ {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		counts[strings.Fields(string(body))[0]]++
	}
	if counts["sick"] != 0 {
		t.Fatalf("an unhealthy target got %d requests", counts["sick"])
	}
	if share := float64(counts["green"]) / 10000; share < 0.07 || share > 0.13 {
		t.Fatalf("green got %.1f%% of requests, want 10%% ±3", share*100)
	}
	st := b.State(10 * time.Second).TargetGroups["green"].Stats
	if st.Requests != int64(counts["green"]) || st.Errors != 0 || st.P99Ms <= 0 {
		t.Fatalf("green stats %+v, counted %d", st, counts["green"])
	}
	// Headers a backend needs behind a proxy.
	_, body := get(t, "http://"+addr+"/")
	if !strings.Contains(body, "xff=127.0.0.1") || !strings.Contains(body, "host="+addr) || !strings.Contains(body, "proto=http") {
		t.Fatalf("forwarded headers: %s", body)
	}
	// A target that turns healthy joins; one that turns unhealthy leaves.
	sick.Store(200)
	waitHealthy(t, b, "blue", 2)
	// All weight on an empty group means 503, not a hang.
	cfg.TargetGroups["empty"] = TargetGroup{HealthCheck: fastCheck}
	cfg.Listeners["web"] = Listener{Addr: addr, Routes: []Route{{"empty", 100}}}
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+addr+"/"); code != 503 {
		t.Fatalf("no healthy target: %d", code)
	}
}

// TestDrainingAndRetry runs over HTTP/1.1 (the fast path) and over HTTP/2,
// which net/http's server hands to the h2 forwarder.
func TestDrainingAndRetry(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			get := get
			if proto == "HTTP/2" {
				c := h2cClient(t)
				get = func(t *testing.T, url string) (int, string) {
					t.Helper()
					resp, err := c.Get(url)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					if resp.ProtoMajor != 2 {
						t.Fatalf("%s: %s", url, resp.Proto)
					}
					return resp.StatusCode, string(b)
				}
			}
			testDrainingAndRetry(t, get)
		})
	}
}

func testDrainingAndRetry(t *testing.T, get func(*testing.T, string) (int, string)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	defer b.Close(context.Background())
	one, two := backend(t, "one", nil), backend(t, "two", nil)
	addr := freeAddr(t)
	tg := TargetGroup{Targets: []string{hostOf(one), hostOf(two)}, HealthCheck: fastCheck, DeregistrationDelay: Duration{5 * time.Second}}
	cfg := Config{TargetGroups: map[string]TargetGroup{"tg": tg}, Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{"tg", 100}}}}}
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, b, "tg", 2)
	// Start slow requests on both targets, then deregister "one".
	var wg sync.WaitGroup
	results := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := get(t, "http://"+addr+"/slow")
			results <- fmt.Sprintf("%d %s", code, strings.Fields(body)[0])
		}()
	}
	time.Sleep(200 * time.Millisecond)
	tg.Targets = []string{hostOf(two)}
	cfg.TargetGroups["tg"] = tg
	if err := b.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, body := get(t, "http://"+addr+"/"); !strings.HasPrefix(body, "two") {
			t.Fatalf("a draining target got a new request: %s", body)
		}
	}
	wg.Wait()
	close(results)
	sawOne := false
	for r := range results {
		if !strings.HasPrefix(r, "200 ") {
			t.Fatalf("in-flight request during draining: %s", r)
		}
		sawOne = sawOne || r == "200 one"
	}
	if !sawOne {
		t.Fatal("no in-flight request was on the drained target; the test proved nothing")
	}
	// A target that dies is retried around: not one request fails.
	three := backend(t, "three", nil)
	tg.Targets = []string{hostOf(two), hostOf(three)}
	cfg.TargetGroups["tg"] = tg
	b.Apply(cfg)
	waitHealthy(t, b, "tg", 2)
	three.Close()
	for i := 0; i < 50; i++ {
		if code, body := get(t, "http://"+addr+"/"); code != 200 || !strings.HasPrefix(body, "two") {
			t.Fatalf("request %d after a target died: %d %s", i, code, body)
		}
	}
}

func TestPortInUseKeepsOldTable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	defer b.Close(context.Background())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	good := freeAddr(t)
	if err := b.Apply(Config{Listeners: map[string]Listener{"a": {Addr: good}}}); err != nil {
		t.Fatal(err)
	}
	err = b.Apply(Config{Listeners: map[string]Listener{"a": {Addr: good}, "b": {Addr: taken.Addr().String()}}})
	if err == nil || !strings.Contains(err.Error(), "listeners.b: cannot listen on "+taken.Addr().String()) {
		t.Fatalf("port in use: %v", err)
	}
	if _, ok := b.Config().Listeners["b"]; ok {
		t.Fatal("a failed change was kept")
	}
	for _, bad := range []Config{
		{Listeners: map[string]Listener{"x": {Addr: "nonsense"}}},
		{Listeners: map[string]Listener{"x": {Addr: good, Routes: []Route{{"missing", 100}}}}},
		{TargetGroups: map[string]TargetGroup{"g": {HealthCheck: HealthCheck{Matcher: "ok"}}}},
	} {
		if err := b.Apply(bad); err == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}
}

func TestHTTP2WebSocketAndPersistence(t *testing.T) {
	dir := t.TempDir()
	socket, state := filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, socket, state, testSealer{}, quiet()) }()
	c := NewClient(socket)
	waitProxy(t, c)
	// A backend that speaks HTTP/1.1 and accepts a WebSocket-style upgrade, echoing lines.
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			fmt.Fprintf(w, "proto=%s", r.Proto)
			return
		}
		conn, rw, _ := http.NewResponseController(w).Hijack()
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	defer ws.Close()
	addr := freeAddr(t)
	cfg := Config{TargetGroups: map[string]TargetGroup{"tg": {Targets: []string{hostOf(ws)}, HealthCheck: HealthCheck{Path: "/", Interval: Duration{100 * time.Millisecond}, Timeout: Duration{50 * time.Millisecond}, HealthyThreshold: 1, UnhealthyThreshold: 1}}},
		Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{"tg", 100}}}}}
	if err := c.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, Config{Listeners: map[string]Listener{"x": {Addr: "bad"}}}); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Fatalf("bad table over the socket: %v", err)
	}
	waitUp := func(ctx context.Context) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := c.State(ctx, time.Second)
			if err == nil && len(st.TargetGroups["tg"].Targets) == 1 && st.TargetGroups["tg"].Targets[0].State == StateHealthy {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("target never healthy: %+v %v", st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUp(ctx)
	// HTTP/2 without TLS from the client.
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	resp, err := h2.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "proto=HTTP/1.1" {
		t.Fatalf("h2c: client saw %s, backend said %s", resp.Proto, body)
	}
	// Upgrade pass-through.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	for {
		l, _ := br.ReadString('\n')
		if l == "\r\n" || l == "" {
			break
		}
	}
	fmt.Fprintf(conn, "hello\n") // after the handshake, as a WebSocket client does
	echo, _ := br.ReadString('\n')
	conn.Close()
	if !strings.Contains(status, "101") || echo != "echo hello\n" {
		t.Fatalf("upgrade: %q %q", status, echo)
	}
	// Restart: the proxy comes back with its last table.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go Run(ctx2, socket, state, testSealer{}, quiet())
	waitProxy(t, c)
	waitUp(ctx2)
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "proto=HTTP/1.1" {
		t.Fatalf("after restart: %d %s", code, body)
	}
}

// TestNextScansEveryTargetUnderConcurrency guards against a request missing
// the one healthy target because other requests moved the shared counter.
func TestNextScansEveryTargetUnderConcurrency(t *testing.T) {
	g := &group{}
	sick, well := &target{addr: "a"}, &target{addr: "b"}
	sick.state.Store(StateUnhealthy)
	well.state.Store(StateHealthy)
	g.live = []*target{sick, well}
	var wg sync.WaitGroup
	var misses atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				if g.next(nil) != well {
					misses.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if misses.Load() != 0 {
		t.Fatalf("%d of 160000 picks found no healthy target", misses.Load())
	}
}

// TestPickWhileAGroupLosesHealth: while one weighted group flaps, every
// pick finds the group that stays healthy; the choice must rest on one view
// of the groups' health, not on two that may differ.
func TestPickWhileAGroupLosesHealth(t *testing.T) {
	steady, flapping := &target{addr: "a"}, &target{addr: "b"}
	steady.state.Store(StateHealthy)
	flapping.state.Store(StateHealthy)
	blue := &group{name: "blue", live: []*target{steady}}
	green := &group{name: "green", live: []*target{flapping}}
	l := &routeSet{routes: []route{{g: blue, weight: 10}, {g: green, weight: 90}}}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			flapping.state.Store(StateUnhealthy)
			flapping.state.Store(StateHealthy)
		}
	}()
	var wg sync.WaitGroup
	var misses atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000; i++ {
				if l.pick() == nil {
					misses.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	if misses.Load() != 0 {
		t.Fatalf("%d of 800000 picks found no group although blue stayed healthy", misses.Load())
	}
}

// TestRequestFollowsRoutingThatChangedUnderIt: a request that chose a group
// just before that group emptied (rollback, drain) goes to the listener's
// current route instead of failing.
func TestRequestFollowsRoutingThatChangedUnderIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	blue := backend(t, "blue", nil)
	healthy := &target{addr: hostOf(blue)}
	healthy.state.Store(StateHealthy)
	emptied := &group{name: "green", all: map[string]*target{}, stats: newStats()}
	current := &group{name: "blue", live: []*target{healthy}, all: map[string]*target{healthy.addr: healthy}, stats: newStats()}
	l := &listener{name: "web"}
	rs := &routeSet{routes: []route{{g: current, weight: 100}}}
	l.table.Store(&table{def: rs, byKey: map[string]*routeSet{"": rs}})
	req, _ := http.NewRequest("GET", "http://target.invalid/", nil)
	req = req.WithContext(context.WithValue(context.WithValue(context.WithValue(req.Context(), ctxGroup, emptied), ctxListener, l), ctxRoutes, &routeSet{}))
	resp, err := (&retrying{b: b}).RoundTrip(req)
	if err != nil {
		t.Fatalf("request whose group emptied: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "blue") {
		t.Fatalf("served by %q", body)
	}
}

// TestOneProxyPerDataDir: a second proxy of the same data directory gives
// up at once while the first answers, and takes over once it has gone.
func TestOneProxyPerDataDir(t *testing.T) {
	dir := t.TempDir()
	socket, state := filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json")
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- Run(ctx, socket, state, testSealer{}, quiet()) }()
	c := NewClient(socket)
	waitProxy(t, c)
	// The saved table names a port the first proxy holds: the second must
	// not sit waiting for it.
	if err := c.Apply(context.Background(), Config{Listeners: map[string]Listener{"web": {Addr: freeAddr(t)}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := Run(context.Background(), socket, state, testSealer{}, quiet())
	if err == nil || !strings.Contains(err.Error(), "another proxy already answers") || time.Since(start) > 2*time.Second {
		t.Fatalf("second proxy: %v after %v", err, time.Since(start))
	}
	cancel()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	second := make(chan error, 1)
	go func() { second <- Run(ctx2, socket, state, testSealer{}, quiet()) }()
	waitProxy(t, c)
	cancel2()
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

// TestProxyLockHeldBySilentProcess: a lock holder that does not answer (a
// predecessor stuck draining) makes a new proxy give up after lockWait
// with a message naming the lock, rather than run beside it.
func TestProxyLockHeldBySilentProcess(t *testing.T) {
	old := lockWait
	lockWait = 300 * time.Millisecond
	t.Cleanup(func() { lockWait = old })
	dir := t.TempDir()
	f, err := datadir.TryLock(filepath.Join(dir, "proxy.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Run(context.Background(), filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json"), testSealer{}, quiet())
	if err == nil || !strings.Contains(err.Error(), "holds proxy.lock and does not answer") {
		t.Fatalf("proxy beside a silent lock holder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "proxy.sock")); !os.IsNotExist(err) {
		t.Fatalf("it opened a control socket anyway: %v", err)
	}
}

// waitProxy waits up to 5 s for a proxy to answer on c's socket.
func waitProxy(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Ping(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no proxy answers on the control socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControlClientKeepsItsConnection: control calls reuse one connection
// rather than dial the socket each time (a traffic shift waits on them),
// and a call that reaches no proxy says so with ErrNotAnswering.
func TestControlClientKeepsItsConnection(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "proxy.sock")
	c := NewClient(socket)
	if _, err := c.Ping(context.Background()); !errors.Is(err, ErrNotAnswering) {
		t.Fatalf("ping with no proxy: %v, want ErrNotAnswering", err)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	var dialled atomic.Int32
	srv := &http.Server{Handler: controlHandler(New(context.Background(), quiet()), filepath.Join(filepath.Dir(socket), "proxy.json"), testSealer{}, func() string { return "test" }, quiet()),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				dialled.Add(1)
			}
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for i := 0; i < 10; i++ {
		if _, err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(context.Background(), Config{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.State(context.Background(), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := dialled.Load(); n != 1 {
		t.Fatalf("30 control calls opened %d connections, want 1", n)
	}
}

func TestBuildOfNamesAnExecutableByItsBytes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) func() (string, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return func() (string, error) { return p, nil }
	}
	a, sameAsA, b := BuildOf(write("a", "one build")), BuildOf(write("copy-of-a", "one build")), BuildOf(write("b", "another build"))
	if a == "" || a != sameAsA || a == b {
		t.Fatalf("builds: a %q, a copy of a %q, b %q", a, sameAsA, b)
	}
	if got := BuildOf(func() (string, error) { return filepath.Join(dir, "missing"), nil }); got != "" {
		t.Fatalf("a missing file's build: %q", got)
	}
	if got := BuildOf(func() (string, error) { return "", errors.New("no executable") }); got != "" {
		t.Fatalf("no executable's build: %q", got)
	}
}

// TestRollbackTableNeverLeavesARouteEmpty: one table that moves all weight
// back to blue and empties green (a blue/green rollback) must switch the
// routes before green's targets leave; in between, a request would find
// its route's group empty and get a 503 although blue serves.
func TestRollbackTableNeverLeavesARouteEmpty(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := New(ctx, quiet())
	defer b.Close(context.Background())
	blue, green := backend(t, "blue", nil), backend(t, "green", nil)
	addr := freeAddr(t)
	// Quick to turn healthy, slow to turn unhealthy: the spinning pickers
	// take both cores, and a late check must not pass for the bug.
	check := HealthCheck{Path: "/health", Interval: Duration{100 * time.Millisecond}, Timeout: Duration{90 * time.Millisecond}, HealthyThreshold: 1, UnhealthyThreshold: 10}
	table := func(to string, greenTargets ...string) Config {
		return Config{
			TargetGroups: map[string]TargetGroup{
				"blue":  {Targets: []string{hostOf(blue)}, HealthCheck: check},
				"green": {Targets: greenTargets, HealthCheck: check},
			},
			Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{to, 100}}}},
		}
	}
	var misses, picks atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				b.mu.Lock()
				l := b.listeners["web"]
				b.mu.Unlock()
				if l == nil {
					continue
				}
				for range 1000 {
					picks.Add(1)
					if match(l.table.Load(), "", "/").pick() == nil {
						misses.Add(1)
					}
				}
			}
		}()
	}
	for range 20 {
		if err := b.Apply(table("blue", hostOf(green))); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, b, "blue", 1)
		waitHealthy(t, b, "green", 1)
		if err := b.Apply(table("green", hostOf(green))); err != nil {
			t.Fatal(err)
		}
		misses.Store(0) // only the rollback's switch counts
		if err := b.Apply(table("blue")); err != nil {
			t.Fatal(err)
		}
		if n := misses.Load(); n != 0 {
			close(done)
			wg.Wait()
			t.Fatalf("%d picks found no healthy group during a rollback's table", n)
		}
	}
	close(done)
	wg.Wait()
	if picks.Load() == 0 {
		t.Fatal("no request was routed during the switches")
	}
}
