package server

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/lease"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/store"
)

// ControlLease names the lease whose holder runs the control loops: the
// pipeline engine, the service reconcilers and auto scaling, deployment
// controllers, the notification queue, certificates and retention. Every
// server answers git, the registry and webhooks itself; the API and web UI
// of a server without the lease are passed to the one holding it.
const ControlLease = "control"

// controlState is whether this server runs the control loops.
type controlState struct {
	mu sync.Mutex // held while the loops start or stop
	// started is read by every request (toController), so it is atomic
	// rather than behind mu, which a stop holds while runs are killed.
	started   atomic.Bool
	release   func()
	certsStop context.CancelFunc
}

// elect registers the server's identity and takes the control lease if it
// is free, starting the loops before New returns (as a lone server always
// does); otherwise a background wait takes over when the holder is gone.
func (s *Server) elect(ctx context.Context) error {
	s.id = auth.NewID("srv_")
	s.life, s.endLife = context.WithCancel(context.WithoutCancel(ctx))
	s.elector = &lease.Elector{Store: s.db, Holder: s.id, TTL: s.cfg.LeaseTTL, Log: s.log}
	// Registered before it may take the lease, so that the holder is always
	// a known server; its URL comes once it listens (joinCluster).
	host, _ := os.Hostname()
	s.me = store.Server{ID: s.id, Host: host, URL: strings.TrimRight(s.cfg.AdvertiseURL, "/"), Version: buildVersion()}
	if _, err := s.db.RegisterServer(ctx, s.me); err != nil {
		return fmt.Errorf("register this server: %w", err)
	}
	if s.db.Dialect() == store.SQLite {
		// The data directory's lock proves no other server uses this file:
		// a lease left by a killed predecessor is void, not to be waited
		// out, and the lease needs no renewing (a write stall must not stop
		// the loops and kill the builds of the only server there is).
		if err := s.db.ForgetLeases(ctx); err != nil {
			return err
		}
		s.elector.TTL = soleServerLease
	}
	go s.db.Listen(s.life, runsChannel, func() {
		if s.controlling() {
			s.engine.Wake()
		}
	})
	held, release, ok, err := s.elector.TryHold(ctx, ControlLease)
	if err != nil {
		return fmt.Errorf("take the control lease: %w", err)
	}
	if ok {
		if err := s.startControl(ctx, held, release); err != nil {
			release()
			return err
		}
		return nil
	}
	s.log.Info("another server holds the control lease; this one answers requests and takes over if it goes", "lease", ControlLease)
	go s.standby(s.life)
	return nil
}

// standby waits for the control lease and starts the loops when it is won,
// trying again if they fail to start (the database may be coming back).
func (s *Server) standby(ctx context.Context) {
	for {
		held, release, err := s.elector.Hold(ctx, ControlLease)
		if err != nil {
			return
		}
		if ctx.Err() != nil { // the server closed meanwhile
			release()
			return
		}
		err = s.startControl(ctx, held, release)
		if err == nil {
			return
		}
		s.log.Error("start the control loops; trying again", "err", err)
		release()
		time.Sleep(time.Second)
	}
}

// startControl starts the loops the control lease gives, in the order a
// restarted server always has, and watches the lease.
func (s *Server) startControl(ctx context.Context, held context.Context, release func()) error {
	s.control.mu.Lock()
	defer s.control.mu.Unlock()
	if s.life.Err() != nil {
		return errors.New("the server is closing")
	}
	ctx = context.WithoutCancel(ctx)
	// The pipeline pushes images with a token of its own, new each time a
	// server takes control.
	pipelineToken, hash := auth.NewToken()
	if _, err := s.db.ReplaceToken(ctx, store.Token{ID: auth.NewID("tok_"), Name: PipelineTokenName, Role: auth.Deployer.String()}, hash); err != nil {
		return err
	}
	s.pipelineToken = pipelineToken
	if addr, ok := s.addr.Load().(string); ok {
		s.engine.SetRegistry(pipeline.Registry{Host: addr, User: "slipway", Token: pipelineToken})
	}
	certsCtx, certsStop := context.WithCancel(ctx)
	if s.cfg.Edge.HTTPSAddr != "" || len(s.certs.Hosts) > 0 {
		go s.certs.Run(certsCtx)
	}
	s.notify.Start(ctx)
	s.deploy.Start(ctx)
	// The pipeline engine starts last: a recovered run may deploy at once.
	if err := s.engine.Start(ctx); err != nil {
		certsStop()
		s.notify.Close()
		s.deploy.Close()
		return err
	}
	if err := s.deploys.Start(ctx); err != nil {
		certsStop()
		s.notify.Close()
		s.engine.Close()
		s.deploy.Close()
		return err
	}
	s.control.release, s.control.certsStop = release, certsStop
	s.control.started.Store(true)
	s.log.Info("this server runs the control loops", "server", s.id, "lease", ControlLease)
	go func() {
		<-held.Done()
		if !errors.Is(context.Cause(held), lease.ErrLost) {
			return // released by stopControl
		}
		// Another server has, or may soon have, the loops: stop them before
		// the lease runs out, then wait to win it again (a lone server cut
		// off from its database takes it back when the database returns).
		s.log.Error("lost the control lease; stopping the control loops until this server holds it again", "lease", ControlLease)
		s.stopControl()
		s.standby(s.life)
	}()
	return nil
}

// stopControl stops the loops, then gives the lease up for another server.
func (s *Server) stopControl() {
	s.control.mu.Lock()
	defer s.control.mu.Unlock()
	if !s.control.started.Load() {
		return
	}
	s.control.started.Store(false)
	s.control.certsStop()
	s.notify.Close()
	s.deploys.Close()
	s.deploy.Close()
	s.engine.Close()
	s.control.release()
}

// controlling reports whether this server runs the control loops now.
func (s *Server) controlling() bool { return s.control.started.Load() }

// soleServerLease is the control lease of a server alone by construction
// (SQLite): long enough never to need renewing.
const soleServerLease = 50 * 365 * 24 * time.Hour

// heartbeatEvery is how often a server says it is alive: often where other
// servers judge it by that (PostgreSQL), seldom where it is alone (SQLite:
// only slipway status reads it, for a minute).
func (s *Server) heartbeatEvery() time.Duration {
	if s.db.Dialect() == store.Postgres {
		return 2 * time.Second
	}
	return statusWindow / 3
}

// statusWindow is how long a silent server stays in the status list.
const statusWindow = time.Minute

// joinCluster records the server and keeps its heartbeat until Close.
func (s *Server) joinCluster(ctx context.Context) {
	addr, _ := s.addr.Load().(string)
	u := s.cfg.AdvertiseURL
	if u == "" {
		scheme := "http://"
		if s.cfg.TLS != nil {
			scheme = "https://"
		}
		u = scheme + addr
	}
	s.me.URL = strings.TrimRight(u, "/")
	me := s.me
	urlSet := false
	if err := s.db.SetServerURL(ctx, s.id, me.URL); err != nil {
		s.log.Warn("record this server's URL; trying again with the next heartbeat", "err", err)
	} else {
		urlSet = true
	}
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBeat = stop
	go func() {
		t := time.NewTicker(s.heartbeatEvery())
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
			}
			var err error
			if urlSet {
				err = s.db.Heartbeat(bctx, s.id)
			} else if err = s.db.SetServerURL(bctx, s.id, me.URL); err == nil {
				urlSet = true
			}
			if errors.Is(err, store.ErrNotFound) { // pruned while silent
				_, err = s.db.RegisterServer(bctx, me)
			}
			if err != nil && bctx.Err() == nil {
				s.log.Warn("heartbeat", "err", err)
			}
			if n%30 == 0 {
				_ = s.db.PruneServers(bctx, 24*time.Hour)
			}
		}
	}()
}

// leaveCluster records a clean stop.
func (s *Server) leaveCluster() {
	if s.stopBeat != nil {
		s.stopBeat()
	}
	if s.id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.db.StopServer(ctx, s.id); err != nil && !store.Unavailable(err) {
		s.log.Warn("record this server's stop", "err", err)
	}
}

// forwardedBy marks a request one server passed to the controlling one, so
// it is never passed on again.
const forwardedBy = "X-Slipway-Forwarded-By"

// forwardProof is the header with which a server proves to another that it
// passed a request on: a key derived from the master key they share. Only
// with it are the forwarded X-Forwarded-Proto and -For believed.
const forwardProof = "X-Slipway-Forward-Proof"

func (s *Server) forwardProof() string {
	s.proofOnce.Do(func() { s.proof = hex.EncodeToString(s.keys.Derive("server forward proof")) })
	return s.proof
}

// forwarded reports whether r was passed on by another server of this
// installation, and if so whether its client spoke HTTPS to that server.
func (s *Server) forwarded(r *http.Request) (ok, https bool) {
	proof := r.Header.Get(forwardProof)
	if proof == "" || subtle.ConstantTimeCompare([]byte(proof), []byte(s.forwardProof())) != 1 {
		return false, false
	}
	return true, r.Header.Get("X-Forwarded-Proto") == "https"
}

// servedEverywhere are the paths any server answers itself: they only read
// and write the shared database and blobs, or describe this server.
func servedEverywhere(path string) bool {
	for _, p := range []string{"/healthz", "/metrics", "/v2/", "/git/", "/hooks/", "/api/v1/status"} {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// toController passes the API and UI requests of a server without the
// control lease to the server holding it.
func (s *Server) toController(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if servedEverywhere(r.URL.Path) || s.controlling() {
			next.ServeHTTP(w, r)
			return
		}
		unavailable := func(msg string) {
			w.Header().Set("Retry-After", "2")
			writeJSON(w, http.StatusServiceUnavailable, map[string]*apiError{"error": {Code: "unavailable", Message: msg}})
		}
		if r.Header.Get(forwardedBy) != "" {
			unavailable("another server passed this request on, but this server does not run the control loops either; try again in a few seconds")
			return
		}
		target, err := s.controllerURL(r.Context())
		if err != nil {
			s.log.Warn("no server to pass a request to", "path", r.URL.Path, "err", err)
			unavailable("no server runs the control loops right now; another takes over within seconds, try again")
			return
		}
		rp := &httputil.ReverseProxy{
			Transport: forwardTransport,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
				pr.Out.Header.Set(forwardedBy, s.id)
				pr.Out.Header.Set(forwardProof, s.forwardProof())
			},
			FlushInterval: -1, // log follows and live pages stream
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				s.forgetController()
				s.log.Warn("pass a request to the controlling server", "target", target.String(), "err", err)
				unavailable("the server running the control loops does not answer; another takes over within seconds, try again")
			},
		}
		rp.ServeHTTP(w, r)
	})
}

// forwardTransport bounds what a forwarded request waits for: a holder that
// froze must not hold every request on every other server. Streams (log
// follows, live pages) send their headers at once, so only the dial and
// the headers are bounded.
var forwardTransport = &http.Transport{
	Proxy:                 nil,
	DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   5 * time.Second,
	ResponseHeaderTimeout: time.Minute,
	MaxIdleConnsPerHost:   16,
	IdleConnTimeout:       90 * time.Second,
	ForceAttemptHTTP2:     true,
}

// controllerCache keeps the holder's URL for a second: forwarded requests
// do not each read the servers table.
type controllerCache struct {
	mu   sync.Mutex
	url  *url.URL
	when time.Time
}

func (s *Server) forgetController() {
	s.ctl.mu.Lock()
	s.ctl.url = nil
	s.ctl.mu.Unlock()
}

// controllerURL is where the holder of the control lease answers.
func (s *Server) controllerURL(ctx context.Context) (*url.URL, error) {
	s.ctl.mu.Lock()
	if s.ctl.url != nil && time.Since(s.ctl.when) < time.Second {
		u := s.ctl.url
		s.ctl.mu.Unlock()
		return u, nil
	}
	s.ctl.mu.Unlock()
	servers, err := s.db.ListServers(ctx, 3*s.heartbeatEvery()+time.Second)
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		for _, l := range sv.Leases {
			if l.Name == ControlLease && sv.StoppedAt == nil && sv.ID != s.id {
				u, err := AdvertisedURL(sv.URL)
				if err != nil {
					return nil, fmt.Errorf("server %s: %w", sv.ID, err)
				}
				s.ctl.mu.Lock()
				s.ctl.url, s.ctl.when = u, time.Now()
				s.ctl.mu.Unlock()
				return u, nil
			}
		}
	}
	return nil, errors.New("the control lease is free or its holder is silent")
}

// AdvertisedURL checks a URL servers reach each other at: http(s), a host,
// no user or password (it is shown to viewers), and a port, the scheme's
// when none is given.
func AdvertisedURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("%q is not an http(s)://HOST[:PORT] URL", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q holds a user name: leave credentials out of it", u.Redacted())
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// buildVersion is the VCS revision the binary was built from, if known.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				return kv.Value[:12]
			}
		}
	}
	return "dev"
}

// runsChannel is where a server that made a run (a push, a webhook) tells
// the controlling one to schedule it now rather than at its next poll.
const runsChannel = "slipway_runs"

// runsChanged wakes the pipeline engine, here or on the controlling server.
func (s *Server) runsChanged() {
	if s.controlling() {
		s.engine.Wake()
		return
	}
	ctx, cancel := context.WithTimeout(s.life, 5*time.Second)
	defer cancel()
	if err := s.db.Signal(ctx, runsChannel); err != nil {
		s.log.Warn("tell the controlling server about a new run (it finds it within seconds anyway)", "err", err)
	}
}
