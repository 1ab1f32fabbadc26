package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/httpguard"
)

// Target health states.
const (
	StateInitial   = "initial"
	StateHealthy   = "healthy"
	StateUnhealthy = "unhealthy"
	StateDraining  = "draining"
)

type target struct {
	addr     string
	state    atomic.Value // string
	inflight atomic.Int64
	pool     pool // idle keep-alive connections of the fast path
	cancel   context.CancelFunc
	// streaks are touched by the checker goroutine and, for passive
	// failures, the proxy; mu keeps them consistent.
	mu         sync.Mutex
	okStreak   int
	failStreak int
}

func (t *target) get() string { return t.state.Load().(string) }

type group struct {
	name  string
	cfg   TargetGroup
	match func(int) bool
	mu    sync.RWMutex
	live  []*target // registered, not draining, in registration order
	all   map[string]*target
	rr    atomic.Uint64
	stats *stats
}

// next returns the next healthy target not in skip (round robin), or nil.
func (g *group) next(skip []*target) *target {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := uint64(len(g.live))
	if n == 0 {
		return nil
	}
	// One step of the shared counter per request, then a full scan from
	// there: concurrent requests must not make this one skip a target.
	start := g.rr.Add(1)
	for i := uint64(0); i < n; i++ {
		t := g.live[(start+i)%n]
		if t.get() == StateHealthy && !slices.Contains(skip, t) {
			return t
		}
	}
	return nil
}

func (g *group) hasHealthy() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, t := range g.live {
		if t.get() == StateHealthy {
			return true
		}
	}
	return false
}

type route struct {
	g      *group
	weight int
}

type listener struct {
	name  string
	addr  string
	table atomic.Pointer[table]
	tls   atomic.Bool

	ln       net.Listener
	srv      *http.Server // serves what the fast path hands off
	fallback *handOff
	closing  atomic.Bool
	mu       sync.Mutex
	conns    map[*clientConn]struct{}
}

// Balancer owns the listeners and target groups of one routing table.
type Balancer struct {
	log       *slog.Logger
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	ctx       context.Context

	mu        sync.Mutex
	cfg       Config
	groups    map[string]*group
	listeners map[string]*listener

	tlsConf    *tls.Config
	certs      atomic.Pointer[certTable]
	challenges atomic.Pointer[map[string]string]
}

type ctxKey int

const (
	ctxGroup ctxKey = iota
	ctxListener
	ctxBody // the *clientBody: ReverseProxy gives ErrorHandler a request with its own wrapper
	ctxRoutes
	ctxTLS // the connection came over TLS (set where net/http cannot tell)
	ctxHSTS
)

// New makes an empty balancer; ctx ends its health checks.
func New(ctx context.Context, log *slog.Logger) *Balancer {
	b := &Balancer{log: log, ctx: ctx, groups: map[string]*group{}, listeners: map[string]*listener{},
		cfg: Config{Listeners: map[string]Listener{}, TargetGroups: map[string]TargetGroup{}}}
	b.tlsConf = b.serverTLS()
	b.transport = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetXForwarded()
			if r.In.TLS == nil && r.In.Context().Value(ctxTLS) != nil {
				r.Out.Header.Set("X-Forwarded-Proto", "https")
			}
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "target.invalid" // chosen per attempt by the transport
			r.Out.Host = r.In.Host
			dropUnderscoreHeaders(r.Out.Header)
			dropUnderscoreHeaders(r.Out.Trailer)
		},
		Transport:  &retrying{b: b},
		BufferPool: copyBuffers{},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Context().Value(ctxHSTS) != nil {
				resp.Header.Set("Strict-Transport-Security", hstsValue)
			}
			return nil
		},
		// FlushInterval stays 0: ReverseProxy already flushes at once for streamed
		// (unknown-length) responses and server-sent events.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away; there is no one to answer
			}
			if body, ok := r.Context().Value(ctxBody).(*clientBody); ok && body.failedWith(err) {
				// The client's body could not be read (bad chunking, cut
				// short): its fault, not the target's, as for a bad head.
				w.Header().Set("Connection", "close")
				http.Error(w, "load balancer: request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			status := http.StatusBadGateway
			if errors.Is(err, errNoTarget) {
				status = http.StatusServiceUnavailable
			}
			b.log.Warn("proxy error", "host", r.Host, "path", r.URL.Path, "err", err)
			http.Error(w, "load balancer: "+err.Error(), status)
		},
	}
	return b
}

var errNoTarget = errors.New("no healthy target")

// copyBuffers lends ReverseProxy the buffers it copies bodies through,
// which it otherwise allocates, 32 KiB a request: on the net/http path
// (HTTP/2, upgrades) that garbage was a share of the proxy's CPU.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *(copyBufferPool.Get().(*[]byte)) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// tryTargets sends one request to up to three healthy targets in turn, as
// nginx's proxy_next_upstream does: send reports whether another target may
// have the request after it failed. A target that refused the connection
// leaves the rotation at once; other errors (a keep-alive race, a reset)
// are retried without judging it. When the group has no healthy target
// left because the routing changed since the request chose it (a weight
// shift, a rollback, a drain), the listener's current routes for the
// request's rule (rs) choose again. It returns the group of the last
// attempt and the last error, errNoTarget when there was no target to try.
func (b *Balancer) tryTargets(l *listener, rs *routeSet, g *group, send func(*target) (again bool, err error)) (*group, error) {
	var tried [3]*target
	var lastErr error = errNoTarget
	for n := 0; n < len(tried); n++ {
		t := g.next(tried[:n])
		if t == nil && l != nil && rs != nil {
			if g2 := l.current(rs).pick(); g2 != nil && g2 != g {
				g = g2
				t = g.next(tried[:n])
			}
		}
		if t == nil {
			return g, lastErr
		}
		tried[n] = t
		again, err := send(t)
		if err == nil {
			return g, nil
		}
		lastErr = err
		if isDialError(err) {
			b.passiveFailure(g, t)
		}
		if !again {
			break
		}
	}
	return g, lastErr
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retrying is the net/http path's transport: tryTargets with
// http.Transport.
type retrying struct{ b *Balancer }

func (rt *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	g, _ := req.Context().Value(ctxGroup).(*group)
	l, _ := req.Context().Value(ctxListener).(*listener)
	rs, _ := req.Context().Value(ctxRoutes).(*routeSet)
	if g == nil {
		return nil, errNoTarget
	}
	noBody := req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0
	// A body-less idempotent request that failed before any response may go
	// to another target; any body-less request may when its connection could
	// not even be opened (the transport closes a body it failed to send).
	idempotent := noBody && (req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions) && req.Header.Get("Upgrade") == ""
	var resp *http.Response
	_, err := rt.b.tryTargets(l, rs, g, func(t *target) (bool, error) {
		out := req.Clone(req.Context())
		out.URL.Host = t.addr
		t.inflight.Add(1)
		r, err := rt.b.transport.RoundTrip(out)
		if err != nil {
			t.inflight.Add(-1)
			return req.Context().Err() == nil && (isDialError(err) && noBody || idempotent), err
		}
		if r.StatusCode == http.StatusSwitchingProtocols {
			t.inflight.Add(-1) // the upgraded connection is no longer a request to drain
		} else {
			r.Body = &doneBody{ReadCloser: r.Body, t: t}
		}
		resp = r
		return false, nil
	})
	return resp, err
}

type doneBody struct {
	io.ReadCloser
	t    *target
	once sync.Once
}

func (d *doneBody) Close() error {
	d.once.Do(func() { d.t.inflight.Add(-1) })
	return d.ReadCloser.Close()
}

// passiveFailure takes a target that refused a connection out of rotation
// at once; active checks must pass again before it returns.
func (b *Balancer) passiveFailure(g *group, t *target) {
	t.mu.Lock()
	t.okStreak = 0
	t.mu.Unlock()
	if t.state.CompareAndSwap(StateHealthy, StateUnhealthy) {
		b.log.Warn("target refused a connection; marked unhealthy", "target_group", g.name, "target", t.addr)
	}
}

// current is the listener's routes now for the rule rs came from, which
// may have changed since a request chose rs.
func (l *listener) current(rs *routeSet) *routeSet {
	if t := l.table.Load(); t != nil {
		if cur := t.byKey[rs.key]; cur != nil {
			return cur
		}
	}
	return rs
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// clientBody is a request body as the net/http server reads it from the
// client. It keeps the first error of a read, so the proxy can tell a
// request that failed because the client's body was refused (net/http reads
// chunked bodies lazily, so a malformed one fails only as it is forwarded)
// from one the target failed.
type clientBody struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// failedWith reports whether err is the body's own read error, and not,
// say, a read after the transport closed it for a failure of the target's.
func (b *clientBody) failedWith(err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err != nil && errors.Is(err, b.err)
}

// dropUnderscoreHeaders removes every header whose name has a '_', as
// nginx does by default (underscores_in_headers off) and gunicorn since 22.
// CGI, WSGI, PHP and Rack servers fold '-' and '_' into one name, so
// Content_Length or Transfer_Encoding may frame the body there, and
// X_Forwarded_For may stand for the X-Forwarded-For this proxy sets. Any
// header the proxy handles, or a target trusts, can be spoofed this way;
// listing them all is a losing game, and standard headers never have a '_'.
func dropUnderscoreHeaders(h http.Header) {
	for name := range h {
		if strings.Contains(name, "_") {
			delete(h, name)
		}
	}
}

func (l *listener) handler(b *Balancer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		overTLS := r.TLS != nil || r.Context().Value(ctxTLS) != nil
		rs, answered := l.route(b, w, r, overTLS)
		if answered {
			return
		}
		g := rs.pick()
		if g == nil {
			http.Error(w, "no healthy target for "+l.name, http.StatusServiceUnavailable)
			return
		}
		// HTTP/2 goes to the targets over the fast path's connections;
		// what that does not take, and HTTP/1 handed off, over ReverseProxy.
		if r.ProtoMajor == 2 && l.serveH2(b, w, r, rs, g, overTLS) {
			return
		}
		httpguard.Defaults.Guard(w, r) // a trickling upload must not hold a target connection
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		ctx := context.WithValue(context.WithValue(context.WithValue(r.Context(), ctxGroup, g), ctxListener, l), ctxRoutes, rs)
		if overTLS && rs.hsts {
			ctx = context.WithValue(ctx, ctxHSTS, true)
		}
		if r.Body != nil && r.Body != http.NoBody {
			body := &clientBody{ReadCloser: r.Body}
			r.Body = body
			ctx = context.WithValue(ctx, ctxBody, body)
		}
		b.proxy.ServeHTTP(rec, r.WithContext(ctx))
		g.stats.record(rec.status, time.Since(start))
	})
}

// ListenError is a listener whose address could not be bound (another
// program holds it): the table that named it was not applied.
type ListenError struct {
	Listener, Addr, Reason string
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listeners.%s: cannot listen on %s: %s", e.Listener, e.Addr, e.Reason)
}

// Apply replaces the routing table. Ports that are new to the table are
// bound before anything changes, so a port in use fails the whole change
// and the old table keeps serving.
func (b *Balancer) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.certs.Load() == nil {
		def, err := selfSigned()
		if err != nil {
			return fmt.Errorf("make the default certificate: %w", err)
		}
		b.certs.Store(&certTable{fallback: def})
	}
	opened := map[string]net.Listener{}
	for name, l := range cfg.Listeners {
		if b.listenerAt(l.Addr) != nil {
			continue // bound already (maybe by another name): handed over below
		}
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return &ListenError{Listener: name, Addr: l.Addr, Reason: err.Error()}
		}
		opened[name] = ln
	}
	b.certs.Store(newCertTable(cfg.Certificates, b.certs.Load().fallback))
	challenges := maps.Clone(cfg.Challenges)
	b.challenges.Store(&challenges)
	// Targets join here and leave only once the routes below have switched: a
	// request between two steps must never find its route's group already
	// emptied while the new route is not yet in place (a rollback moves all
	// weight back to blue and drains green in one table).
	for name, tc := range cfg.TargetGroups {
		g, ok := b.groups[name]
		if !ok {
			g = &group{name: name, all: map[string]*target{}, stats: newStats()}
			b.groups[name] = g
		}
		b.addTargets(g, tc)
	}
	// A listener keeps its socket while its address is still wanted (under
	// any name); others stop accepting at once and finish in-flight requests.
	byAddr := map[string]*listener{}
	for name, cur := range b.listeners {
		delete(b.listeners, name)
		wanted := false
		for _, l := range cfg.Listeners {
			wanted = wanted || l.Addr == cur.addr
		}
		if wanted {
			byAddr[cur.addr] = cur
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() { defer cancel(); cur.shutdown(ctx) }()
	}
	for name, l := range cfg.Listeners {
		cur := byAddr[l.Addr]
		if cur == nil {
			ln := opened[name]
			cur = &listener{addr: l.Addr, ln: ln, conns: map[*clientConn]struct{}{}, fallback: newHandOff(ln.Addr())}
			srv := &http.Server{
				ConnContext: func(ctx context.Context, c net.Conn) context.Context {
					if bc, ok := c.(*bufferedConn); ok && bc.tls {
						return context.WithValue(ctx, ctxTLS, true)
					}
					return ctx
				},
				Handler:           cur.handler(b),
				ReadHeaderTimeout: httpguard.HeaderTimeout, IdleTimeout: httpguard.IdleTimeout, MaxHeaderBytes: httpguard.MaxHeaderBytes,
				ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
			}
			var protocols http.Protocols
			protocols.SetHTTP1(true)
			protocols.SetUnencryptedHTTP2(true) // HTTP/2 to clients without TLS (h2c)
			protocols.SetHTTP2(true)            // over TLS, by ALPN, for conns the TLS listener hands over
			srv.Protocols = &protocols
			cur.srv = srv
			go srv.Serve(cur.fallback)
			go cur.serve(b)
		}
		cur.name = name
		cur.table.Store(newTable(l, b.groups, cur.table.Load()))
		cur.tls.Store(l.TLS)
		b.listeners[name] = cur
	}
	for name, g := range b.groups {
		tc, ok := cfg.TargetGroups[name]
		if !ok {
			tc = TargetGroup{DeregistrationDelay: g.cfg.DeregistrationDelay}
			delete(b.groups, name)
		}
		b.dropTargets(g, tc)
	}
	b.cfg = cfg
	return nil
}

func (b *Balancer) listenerAt(addr string) *listener {
	for _, l := range b.listeners {
		if l.addr == addr {
			return l
		}
	}
	return nil
}

// addTargets gives g its new settings and registers the targets it lacks
// (health checks start at once); dropTargets, once the routes have
// switched, drains the targets tc no longer names: no new requests,
// in-flight ones finish, and each is dropped when idle or when the
// deregistration delay ends.
func (b *Balancer) addTargets(g *group, tc TargetGroup) {
	tc.HealthCheck.defaults()
	match, _ := parseMatcher(tc.HealthCheck.Matcher)
	g.mu.Lock()
	defer g.mu.Unlock()
	restartChecks := g.cfg.HealthCheck != tc.HealthCheck
	g.cfg, g.match = tc, match
	if restartChecks {
		for _, t := range g.live {
			t.cancel()
			b.startChecks(g, t)
		}
	}
	for _, a := range tc.Targets {
		if t, ok := g.all[a]; ok && t.get() != StateDraining {
			continue
		}
		t := &target{addr: a}
		t.state.Store(StateInitial)
		g.all[a] = t
		g.live = append(g.live, t)
		b.startChecks(g, t)
	}
}

func (b *Balancer) dropTargets(g *group, tc TargetGroup) {
	want := map[string]bool{}
	for _, a := range tc.Targets {
		want[a] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var live []*target
	for _, t := range g.live {
		if want[t.addr] {
			live = append(live, t)
			continue
		}
		t.state.Store(StateDraining)
		go b.drain(g, t, tc.DeregistrationDelay.Duration)
	}
	g.live = live
}

func (b *Balancer) drain(g *group, t *target, delay time.Duration) {
	deadline := time.Now().Add(delay)
	for t.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.cancel()
	t.pool.closeAll()
	g.mu.Lock()
	if g.all[t.addr] == t {
		delete(g.all, t.addr)
	}
	g.mu.Unlock()
}

// Config returns the routing table in force.
func (b *Balancer) Config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

// TargetState is one target's health and load.
type TargetState struct {
	Addr     string `json:"addr"`
	State    string `json:"state"`
	InFlight int64  `json:"in_flight"`
}

// GroupState is a target group's targets and recent traffic.
type GroupState struct {
	Targets []TargetState `json:"targets"`
	Stats   Window        `json:"stats"`
}

// State is what the control plane reads back.
type State struct {
	Listeners    map[string]Listener   `json:"listeners"`
	TargetGroups map[string]GroupState `json:"target_groups"`
}

// State reports health, in-flight counts and stats over the last window.
func (b *Balancer) State(window time.Duration) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := State{Listeners: b.cfg.Listeners, TargetGroups: map[string]GroupState{}}
	for name, g := range b.groups {
		g.mu.RLock()
		var ts []TargetState
		for _, t := range g.all {
			ts = append(ts, TargetState{Addr: t.addr, State: t.get(), InFlight: t.inflight.Load()})
		}
		g.mu.RUnlock()
		sort.Slice(ts, func(i, j int) bool { return ts[i].Addr < ts[j].Addr })
		st.TargetGroups[name] = GroupState{Targets: ts, Stats: g.stats.window(window)}
	}
	return st
}

// Close stops every listener, letting in-flight requests finish.
func (b *Balancer) Close(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.listeners {
		l.shutdown(ctx)
	}
}
