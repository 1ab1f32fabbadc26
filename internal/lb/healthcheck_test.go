package lb

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkTarget is a TCP server that answers each request it reads with
// respond(conn, req, c): conn and req count from 0 (connections accepted
// and requests on this connection); false closes the connection.
type checkTarget struct {
	ln      net.Listener
	mu      sync.Mutex
	conns   int
	heads   []string // every request head read
	respond func(conn, req int, c *net.TCPConn) bool
}

func startCheckTarget(t *testing.T, respond func(conn, req int, c *net.TCPConn) bool) *checkTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &checkTarget{ln: ln, respond: respond}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			rt.mu.Lock()
			conn := rt.conns
			rt.conns++
			rt.mu.Unlock()
			go rt.serve(conn, nc.(*net.TCPConn))
		}
	}()
	return rt
}

func (rt *checkTarget) serve(conn int, c *net.TCPConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for req := 0; ; req++ {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		rt.mu.Lock()
		rt.heads = append(rt.heads, head.String())
		rt.mu.Unlock()
		if !rt.respond(conn, req, c) {
			return
		}
	}
}

func (rt *checkTarget) accepted() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.conns
}

// reply answers every request with resp and keeps the connection.
func reply(resp string) func(int, int, *net.TCPConn) bool {
	return func(_, _ int, c *net.TCPConn) bool { io.WriteString(c, resp); return true }
}

// reset closes c with a TCP reset.
func reset(c *net.TCPConn) { c.SetLinger(0); c.Close() }

func testChecker(addr string, hc HealthCheck) *checker {
	hc.defaults()
	match, _ := parseMatcher(hc.Matcher)
	return newChecker(nil, &group{cfg: TargetGroup{HealthCheck: hc}, match: match}, &target{addr: addr})
}

// TestCheckerResponses runs two checks against targets that answer in
// different ways: whether each passed, and how many connections the two
// took (1: the first was kept for the second).
func TestCheckerResponses(t *testing.T) {
	big := strings.Repeat("x", maxCheckBody+1)
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	held := make(chan *net.TCPConn, 1) // a connection to reset between the two checks
	cases := []struct {
		name    string
		respond func(conn, req int, c *net.TCPConn) bool
		matcher string
		want    [2]bool
		conns   int
		between func() // after the first check
	}{
		{"content-length", reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), "", [2]bool{true, true}, 1, nil},
		{"chunked", reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("hello") + chunk(" world") + "0\r\n\r\n"), "", [2]bool{true, true}, 1, nil},
		{"chunked with trailers", reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("ok") + "0\r\nX-Checked: yes\r\n\r\n"), "", [2]bool{true, true}, 1, nil},
		{"no body", reply("HTTP/1.1 204 No Content\r\n\r\n"), "", [2]bool{true, true}, 1, nil},
		{"close-delimited", func(_, _ int, c *net.TCPConn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
			return false
		}, "", [2]bool{true, true}, 2, nil},
		{"HTTP/1.0", reply("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), "", [2]bool{true, true}, 2, nil},
		{"HTTP/1.0 keep-alive", reply("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"), "", [2]bool{true, true}, 1, nil},
		{"Connection: close", reply("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"), "", [2]bool{true, true}, 2, nil},
		{"1xx before the status", reply("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "", [2]bool{true, true}, 1, nil},
		{"too many 1xx", reply(strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", max1xx+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "", [2]bool{false, false}, 2, nil},
		{"101 is the status", reply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"), "100-199", [2]bool{true, true}, 2, nil},
		{"status not matching", reply("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"), "", [2]bool{false, false}, 2, nil},
		{"redirect within the matcher", reply("HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n"), "", [2]bool{true, true}, 1, nil},
		{"redirect outside the matcher", reply("HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n"), "200", [2]bool{false, false}, 2, nil},
		{"matcher list", reply("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n"), "200,418", [2]bool{true, true}, 1, nil},
		{"malformed", reply("HTTP/1.1 OK\r\n\r\n"), "", [2]bool{false, false}, 2, nil},
		{"bare LF", reply("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), "", [2]bool{false, false}, 2, nil},
		{"slow target hits the timeout", func(_, _ int, c *net.TCPConn) bool {
			time.Sleep(time.Second)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}, "", [2]bool{false, false}, 2, nil},
		{"slow body: the status counts", func(_, _ int, c *net.TCPConn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			time.Sleep(time.Second)
			return false
		}, "", [2]bool{true, true}, 2, nil},
		{"body cut short", func(_, _ int, c *net.TCPConn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
			return false
		}, "", [2]bool{true, true}, 2, nil},
		{"bytes after the response", reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"), "", [2]bool{true, true}, 2, nil},
		{"body of 64 KiB", reply("HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n" + big[:maxCheckBody]), "", [2]bool{true, true}, 1, nil},
		{"body over 64 KiB", reply("HTTP/1.1 200 OK\r\nContent-Length: 65537\r\n\r\n" + big), "", [2]bool{true, true}, 2, nil},
		{"chunked body over 64 KiB", reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(big) + "0\r\n\r\n"), "", [2]bool{true, true}, 2, nil},
		{"close-delimited body over 64 KiB", func(_, _ int, c *net.TCPConn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n"+big+big)
			return false
		}, "", [2]bool{true, true}, 2, nil},
		{"head over 4 KiB", reply("HTTP/1.1 200 OK\r\nX-Big: " + big[:10<<10] + "\r\nContent-Length: 0\r\n\r\n"), "", [2]bool{true, true}, 2, nil},
		{"head over 64 KiB", reply("HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 0\r\n\r\n"), "", [2]bool{false, false}, 2, nil},
		{"reset after a response: reconnect next time", func(conn, _ int, c *net.TCPConn) bool {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			if conn == 0 {
				held <- c
			}
			return true
		}, "", [2]bool{true, true}, 2, func() { reset(<-held) }},
		{"kept connection closed as the request comes: one retry", func(_, req int, c *net.TCPConn) bool {
			if req == 1 {
				reset(c)
				return false
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}, "", [2]bool{true, true}, 2, nil},
		{"reset within a response", func(conn, _ int, c *net.TCPConn) bool {
			if conn == 0 {
				io.WriteString(c, "HTTP/1.1 200 O")
				time.Sleep(10 * time.Millisecond)
				reset(c)
				return false
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}, "", [2]bool{false, true}, 2, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := startCheckTarget(t, tc.respond)
			addr := rt.ln.Addr().String()
			c := testChecker(addr, HealthCheck{Path: "/health", Interval: Duration{time.Second}, Timeout: Duration{150 * time.Millisecond}, Matcher: tc.matcher})
			defer c.drop()
			for i, want := range tc.want {
				start := time.Now()
				ok := c.check(context.Background())
				if ok != want {
					t.Fatalf("check %d: passed %v, want %v", i+1, ok, want)
				}
				if !ok {
					c.drop() // as run does after a failed check
				}
				if i == 0 && tc.between != nil {
					tc.between()
				}
				if d := time.Since(start); d > 500*time.Millisecond {
					t.Fatalf("check %d took %v, beyond its timeout", i+1, d)
				}
			}
			if n := rt.accepted(); n != tc.conns {
				t.Fatalf("%d connections for two checks, want %d", n, tc.conns)
			}
			rt.mu.Lock()
			defer rt.mu.Unlock()
			wantHead := "GET /health HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: slipway-health-check\r\n\r\n"
			for _, h := range rt.heads {
				if h != wantHead {
					t.Fatalf("request %q, want %q", h, wantHead)
				}
			}
		})
	}
}

// The request target is what net/http's client would send for the path.
func TestCheckerRequestTarget(t *testing.T) {
	for path, want := range map[string]string{
		"/":                 "/",
		"/health?full=1":    "/health?full=1",
		"/a b":              "/a%20b",
		"/health#fragment":  "/health",
		"/%E2%9C%93/status": "/%E2%9C%93/status",
	} {
		c := testChecker("127.0.0.1:1", HealthCheck{Path: path})
		if got := strings.Fields(string(c.req))[1]; got != want {
			t.Errorf("path %q: request target %q, want %q", path, got, want)
		}
	}
}

// Cancelling the checks (a drained target, new settings) ends a check in
// flight at once and closes its connection.
func TestCheckerCancelEndsACheckInFlight(t *testing.T) {
	closed := make(chan struct{})
	rt := startCheckTarget(t, func(_, _ int, c *net.TCPConn) bool {
		c.Read(make([]byte, 1)) // never answers; returns when the checker closes
		close(closed)
		return false
	})
	c := testChecker(rt.ln.Addr().String(), HealthCheck{Interval: Duration{10 * time.Second}, Timeout: Duration{5 * time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	for rt.accepted() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the request is out
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the checker did not stop within a second of being cancelled")
	}
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("the checker's connection stayed open")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("stopping took %v", d)
	}
	if st := c.t; st.okStreak != 0 || st.failStreak != 0 {
		t.Fatalf("a cancelled check was counted: ok %d, failed %d", st.okStreak, st.failStreak)
	}
}

// Checks fall on a grid of interval/50 steps, at most half a step from
// the interval, so that many targets' checks share wake-ups.
func TestUntilNextCheckKeepsTheInterval(t *testing.T) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 5 * time.Second, 5 * time.Minute} {
		grain := interval / 50
		for range 100 {
			d := untilNextCheck(interval)
			at := time.Since(checkEpoch) + d
			if diff := d - interval; diff < -grain/2-time.Millisecond || diff > grain/2 {
				t.Fatalf("interval %v: waits %v", interval, d)
			}
			if off := at % grain; off > time.Millisecond && off < grain-time.Millisecond {
				t.Fatalf("interval %v: next check %v off the grid of %v", interval, off, grain)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if d := untilNextCheck(10); d != 10 {
		t.Fatalf("an interval too short for a grid: waits %v", d)
	}
}

// startingTarget answers health checks with 200 once it is ready (until
// then it closes each connection unanswered, as a port with nothing behind
// it yet), and with nothing at all once it has crashed.
type startingTarget struct {
	*checkTarget
	mu      sync.Mutex
	ready   bool
	readyAt time.Time
	crashed bool
	answers int
}

func startStartingTarget(t *testing.T, crashAfter int) *startingTarget {
	st := &startingTarget{}
	st.checkTarget = startCheckTarget(t, func(_, _ int, c *net.TCPConn) bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.ready || st.crashed {
			return false
		}
		st.answers++
		if crashAfter > 0 && st.answers >= crashAfter {
			st.crashed = true
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		return true
	})
	return st
}

func (st *startingTarget) becomeReady() {
	st.mu.Lock()
	st.ready, st.readyAt = true, time.Now()
	st.mu.Unlock()
}

// runChecker runs a target's checks until the test ends.
func runChecker(t *testing.T, addr string, hc HealthCheck, state string) *target {
	t.Helper()
	hc.defaults()
	match, _ := parseMatcher(hc.Matcher)
	tg := &target{addr: addr}
	tg.state.Store(state)
	b := &Balancer{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := newChecker(b, &group{name: "tg", cfg: TargetGroup{HealthCheck: hc}, match: match}, tg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return tg
}

// waitState waits up to d for tg to reach state; it returns when it did.
func waitState(tg *target, state string, d time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if tg.get() == state {
			return time.Now(), true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Time{}, false
}

// A new target is healthy within 100 ms of first answering, however long
// the configured interval and threshold; one that crashes right after its
// first answer never is; a target that was unhealthy, and failures while
// starting, keep the configured pace.
func TestStartingTargets(t *testing.T) {
	slow := HealthCheck{Path: "/health", Interval: Duration{5 * time.Second}, Timeout: Duration{time.Second}, HealthyThreshold: 5, UnhealthyThreshold: 2}

	t.Run("healthy soon after it answers", func(t *testing.T) {
		st := startStartingTarget(t, 0)
		tg := runChecker(t, st.ln.Addr().String(), slow, StateInitial)
		time.Sleep(300 * time.Millisecond) // refused a few times while it starts
		if tg.get() != StateInitial {
			t.Fatalf("a starting target became %s", tg.get())
		}
		st.becomeReady()
		at, ok := waitState(tg, StateHealthy, 2*time.Second)
		if !ok {
			t.Fatal("never healthy")
		}
		took := at.Sub(st.readyAt)
		t.Logf("healthy %v after it first could answer", took.Round(time.Millisecond))
		if took > 150*time.Millisecond { // goal 100 ms; slack for a loaded machine
			t.Errorf("healthy %v after it could answer, want within 100 ms", took)
		}
	})

	t.Run("a crash after the first answer never takes traffic", func(t *testing.T) {
		st := startStartingTarget(t, 1)
		tg := runChecker(t, st.ln.Addr().String(), slow, StateInitial)
		st.becomeReady()
		if _, ok := waitState(tg, StateHealthy, time.Second); ok {
			t.Fatal("a target that answered once and crashed became healthy")
		}
		st.mu.Lock()
		answers := st.answers
		st.mu.Unlock()
		if answers != 1 {
			t.Fatalf("premise: %d answers", answers)
		}
	})

	t.Run("a target that was unhealthy needs the configured threshold", func(t *testing.T) {
		st := startStartingTarget(t, 0)
		st.becomeReady()
		hc := HealthCheck{Path: "/health", Interval: Duration{150 * time.Millisecond}, Timeout: Duration{100 * time.Millisecond}, HealthyThreshold: 4, UnhealthyThreshold: 2}
		tg := runChecker(t, st.ln.Addr().String(), hc, StateUnhealthy)
		start := time.Now()
		at, ok := waitState(tg, StateHealthy, 3*time.Second)
		if !ok {
			t.Fatal("never healthy")
		}
		if took := at.Sub(start); took < 3*140*time.Millisecond {
			t.Errorf("healthy after %v: fewer than 4 checks at 150 ms", took)
		}
	})

	t.Run("failures while starting count at the configured pace", func(t *testing.T) {
		st := startStartingTarget(t, 0) // never ready
		hc := HealthCheck{Path: "/health", Interval: Duration{400 * time.Millisecond}, Timeout: Duration{100 * time.Millisecond}, HealthyThreshold: 2, UnhealthyThreshold: 2}
		tg := runChecker(t, st.ln.Addr().String(), hc, StateInitial)
		start := time.Now()
		at, ok := waitState(tg, StateUnhealthy, 3*time.Second)
		if !ok {
			t.Fatal("never unhealthy")
		}
		took := at.Sub(start)
		if took < 380*time.Millisecond || took > time.Second {
			t.Errorf("unhealthy after %v, want one interval (400 ms): the second counted failure", took)
		}
		if st.accepted() < 5 {
			t.Errorf("only %d checks while starting: not checked often", st.accepted())
		}
	})
}
