package lb

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Active health checks. Each target has one goroutine that speaks HTTP/1.1
// itself on one kept connection (as Envoy's health checker reuses its
// connection): a fixed request written whole, the response read with the
// fast path's parsers, through the raw-syscall stream. With net/http's
// client a check was handed between three goroutines (the caller and the
// connection's read and write loops) and made blocking system calls that
// woke the runtime's monitor thread, each a wake-up from idle: about
// 200 µs of the proxy's CPU per check, 2% of a core for 500 targets
// checked every 5 s; 40 µs now, with untilNextCheck (bench lb-idle).

const (
	// maxCheckBody is how much of a response body a check reads; the
	// connection of a longer one is dropped.
	maxCheckBody = 64 << 10
	// A check's response head is read into a buffer of checkBufSize,
	// grown up to maxCheckHead for an unusually large one.
	checkBufSize = 4 << 10
	maxCheckHead = 64 << 10
	// max1xx bounds the informational responses before the final one, as
	// net/http's client does.
	max1xx = 5
	// checkUserAgent names the checks to targets.
	checkUserAgent = "slipway-health-check"
)

var (
	errBodyTooLarge = errors.New("health check: body larger than 64 KiB")
	errTooMany1xx   = errors.New("health check: too many 1xx responses")
)

// checkBuf is what a check needs while it runs, pooled: between checks a
// target holds only its connection.
type checkBuf struct {
	br   *bufio.Reader
	bw   *bufio.Writer // the body's way to sink
	sink discardUpTo
}

var checkBufs = sync.Pool{New: func() any {
	cb := &checkBuf{br: bufio.NewReaderSize(nil, checkBufSize)}
	cb.bw = bufio.NewWriterSize(&cb.sink, 512)
	return cb
}}

// discardUpTo discards what is written to it, refusing more than n bytes.
type discardUpTo struct{ n int64 }

func (d *discardUpTo) Write(p []byte) (int, error) {
	if int64(len(p)) > d.n {
		d.n = 0
		return 0, errBodyTooLarge
	}
	d.n -= int64(len(p))
	return len(p), nil
}

// checker is one target's active health check.
type checker struct {
	b      *Balancer
	g      *group
	t      *target
	hc     HealthCheck
	accept func(int) bool
	req    []byte // the request, the same for every check; nil if it cannot be made
	dialer net.Dialer

	// mu guards nc for the cancel hook, which runs on another goroutine;
	// only the checker's goroutine changes it.
	mu sync.Mutex
	nc net.Conn
	rw io.ReadWriter // nc's stream
}

func newChecker(b *Balancer, g *group, t *target) *checker {
	c := &checker{b: b, g: g, t: t, hc: g.cfg.HealthCheck, accept: g.match}
	// The request target as net/http's client would send it for this
	// URL (escaped, without a fragment); Host is the target's address.
	if u, err := url.Parse("http://" + t.addr + c.hc.Path); err == nil {
		c.req = []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + t.addr + "\r\nUser-Agent: " + checkUserAgent + "\r\n\r\n")
	}
	return c
}

// run checks the target every interval (from the end of one check to the
// start of the next) until ctx ends.
func (c *checker) run(ctx context.Context) {
	if c.req == nil {
		c.b.log.Warn("health check path is not a valid URL path; every check fails", "target_group", c.g.name, "target", c.t.addr, "path", c.hc.Path)
	}
	// Cancelling (a drained target, new check settings) must not wait for a
	// check in flight: its connection's deadline ends it at once.
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		if c.nc != nil {
			c.nc.SetDeadline(aLongTimeAgo)
		}
		c.mu.Unlock()
	})
	defer stop()
	defer c.drop()
	timer := time.NewTimer(c.hc.Interval.Duration)
	timer.Stop()
	start := &startPhase{began: time.Now()}
	for {
		ok := c.check(ctx)
		if !ok {
			c.drop() // the next check connects afresh
		}
		if ctx.Err() != nil {
			return
		}
		wait := untilNextCheck(c.hc.Interval.Duration)
		if c.t.get() == StateInitial {
			c.t.recordStarting(c.b, c.g, c.hc, start, ok)
			wait = start.next(c.hc.Interval.Duration)
		} else {
			c.t.record(c.b, c.g, c.hc, ok)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// A new target is checked often while it starts, so that it takes traffic
// as soon as it answers rather than at the configured interval's pace (an
// app ready in 50 ms waited 2 s or more): every startingCheckEvery for its
// first startingFastFor, then every startingCheckLater, until it is healthy
// or unhealthy. Kubernetes' startup probes are the model.
//
// What healthy means does not weaken: the target needs startingThreshold
// answers in a row, startingCheckEvery apart (so one that crashes right
// after its first answer never takes traffic), or the configured healthy
// threshold if that is lower; failures count towards the unhealthy
// threshold no faster than one per configured interval, so a target is
// declared unhealthy exactly when it was before. A target that was ever
// healthy or unhealthy is checked, and judged, as configured.
const (
	startingCheckEvery = 50 * time.Millisecond
	startingFastFor    = 10 * time.Second
	startingCheckLater = 500 * time.Millisecond
	startingThreshold  = 2
)

// startPhase is a new target's record while it starts.
type startPhase struct {
	began       time.Time
	lastCounted time.Time // the last failure counted towards unhealthy
}

// next is the wait before the next check of a starting target.
func (p *startPhase) next(interval time.Duration) time.Duration {
	every := startingCheckEvery
	if time.Since(p.began) > startingFastFor {
		every = startingCheckLater
	}
	return min(every, interval)
}

// recordStarting counts a check of a target that has not been healthy or
// unhealthy yet; see startingCheckEvery.
func (t *target) recordStarting(b *Balancer, g *group, hc HealthCheck, p *startPhase, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		t.okStreak++
		t.failStreak = 0
		if t.okStreak >= min(startingThreshold, hc.HealthyThreshold) && t.state.CompareAndSwap(StateInitial, StateHealthy) {
			b.log.Info("target healthy", "target_group", g.name, "target", t.addr, "after", time.Since(p.began).Round(time.Millisecond))
		}
		return
	}
	t.okStreak = 0
	now := time.Now()
	if !p.lastCounted.IsZero() && now.Sub(p.lastCounted) < hc.Interval.Duration {
		return
	}
	p.lastCounted = now
	t.failStreak++
	if t.failStreak >= hc.UnhealthyThreshold && t.state.CompareAndSwap(StateInitial, StateUnhealthy) {
		b.log.Warn("target unhealthy", "target_group", g.name, "target", t.addr, "failed_checks", t.failStreak)
	}
}

// record counts a check's result and moves the target between healthy
// and unhealthy when a threshold is reached.
func (t *target) record(b *Balancer, g *group, hc HealthCheck, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		t.okStreak++
		t.failStreak = 0
		if t.okStreak >= hc.HealthyThreshold {
			if t.state.CompareAndSwap(StateInitial, StateHealthy) || t.state.CompareAndSwap(StateUnhealthy, StateHealthy) {
				b.log.Info("target healthy", "target_group", g.name, "target", t.addr)
			}
		}
		return
	}
	t.failStreak++
	t.okStreak = 0
	if t.failStreak >= hc.UnhealthyThreshold {
		if t.state.CompareAndSwap(StateHealthy, StateUnhealthy) || t.state.CompareAndSwap(StateInitial, StateUnhealthy) {
			b.log.Warn("target unhealthy", "target_group", g.name, "target", t.addr, "failed_checks", t.failStreak)
		}
	}
}

// check sends one request and reports whether the response's status
// matched. The whole check, connecting included, has the check's timeout.
// A body is read (up to 64 KiB) only to keep the connection; its errors do
// not fail the check.
func (c *checker) check(ctx context.Context) bool {
	if c.req == nil {
		return false
	}
	deadline := time.Now().Add(c.hc.Timeout.Duration)
	reused := false
	if c.nc != nil {
		c.nc.SetDeadline(deadline)
		// A connection the target closed while idle, or one with bytes it
		// should not have sent, is replaced before the request.
		if alive(c.nc) {
			reused = true
		} else {
			c.drop()
		}
	}
	for {
		if ctx.Err() != nil {
			return false
		}
		if c.nc == nil {
			if err := c.dial(ctx, deadline); err != nil {
				return false
			}
		}
		status, keep, received, err := c.exchange()
		if err != nil {
			// The target may close a kept connection just as the request
			// goes out: try once more on a new one, as net/http's client
			// does, unless any of a response had come.
			if reused && !received && !isTimeout(err) {
				c.drop()
				reused = false
				continue
			}
			return false
		}
		if !keep {
			c.drop()
		}
		return c.accept(status)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *checker) dial(ctx context.Context, deadline time.Time) error {
	c.dialer.Deadline = deadline
	nc, err := c.dialer.DialContext(ctx, "tcp", c.t.addr)
	if err != nil {
		return err
	}
	nc.SetDeadline(deadline)
	c.mu.Lock()
	c.nc, c.rw = nc, newStream(nc)
	c.mu.Unlock()
	if ctx.Err() != nil { // cancelled before the hook could see nc
		nc.SetDeadline(aLongTimeAgo)
	}
	return nil
}

func (c *checker) drop() {
	c.mu.Lock()
	nc := c.nc
	c.nc, c.rw = nil, nil
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// exchange writes the request and reads the response on c's connection:
// the final status, whether the connection may carry the next check, and
// whether any byte of a response came (err != nil: no status).
func (c *checker) exchange() (status int, keep, received bool, err error) {
	if _, err := c.rw.Write(c.req); err != nil {
		return 0, false, false, err
	}
	cb := checkBufs.Get().(*checkBuf)
	defer func() {
		cb.br.Reset(nil)
		cb.bw.Reset(&cb.sink)
		checkBufs.Put(cb)
	}()
	cb.br.Reset(c.rw)
	br := cb.br
	for n1xx := 0; ; n1xx++ {
		head, err := peekHead(br)
		if errors.Is(err, errHeadTooLarge) && br.Size() < maxCheckHead {
			// Rare: read on through a larger buffer, and do not keep the
			// connection, whose bytes are now split between the two.
			br = bufio.NewReaderSize(br, maxCheckHead)
			head, err = peekHead(br)
		}
		received = received || br.Buffered() > 0
		if errors.Is(err, errHandOff) || errors.Is(err, errHeadTooLarge) {
			err = errBadResponse
		}
		if err != nil {
			return 0, false, received, err
		}
		resp, err := parseResponse(head, false)
		if err != nil {
			return 0, false, true, err
		}
		br.Discard(len(head))
		if resp.status == http.StatusSwitchingProtocols {
			// The connection speaks something else now; the status is
			// still the answer, as net/http's client would give it.
			return resp.status, false, true, nil
		}
		if resp.status < 200 {
			if n1xx == max1xx {
				return 0, false, true, errTooMany1xx
			}
			continue
		}
		cb.sink.n = maxCheckBody
		switch {
		case resp.length >= 0:
			_, err = copyN(cb.bw, br, resp.length)
		case resp.length == chunked:
			err = copyChunked(cb.bw, br)
		default:
			_, err = copyN(cb.bw, br, -1)
		}
		if err == nil {
			err = cb.bw.Flush()
		}
		keep = err == nil && resp.keepAlive && br == cb.br && br.Buffered() == 0
		return resp.status, keep, true, nil
	}
}

// startChecks starts t's active checks with g's settings; t.cancel stops
// them.
func (b *Balancer) startChecks(g *group, t *target) {
	ctx, cancel := context.WithCancel(b.ctx)
	t.cancel = cancel
	c := newChecker(b, g, t)
	go c.run(ctx)
}

// checkEpoch anchors the grid of untilNextCheck.
var checkEpoch = time.Now()

// untilNextCheck is the wait for the next check: the interval, moved by at
// most a hundredth of it either way so that the check falls on a grid of
// interval/50 steps shared by all targets. Checks spread evenly over the
// interval (as targets registered one by one are) each woke the runtime
// from idle, which cost more than the checks; checks on the same step
// share those wake-ups, at 500 targets every 5 s about 10 per 100 ms step,
// for less than half the CPU (bench lb-idle). The mean interval is kept.
func untilNextCheck(interval time.Duration) time.Duration {
	grain := interval / 50
	if grain <= 0 {
		return interval
	}
	since := time.Since(checkEpoch)
	at := (since + interval + grain/2) / grain * grain
	return at - since
}
