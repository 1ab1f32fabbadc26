// Package server is Slipway's control plane: one HTTP port serving the API,
// hosted git and (later) the registry and web UI, over one durable store.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/slipway-dev/slipway/internal/artifact"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/blob"
	"github.com/slipway-dev/slipway/internal/certs"
	"github.com/slipway-dev/slipway/internal/datadir"
	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/httpguard"
	"github.com/slipway-dev/slipway/internal/lease"
	"github.com/slipway-dev/slipway/internal/notify"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
	"github.com/slipway-dev/slipway/internal/taskdef"
	"github.com/slipway-dev/slipway/internal/web"
)

// Config is what `slipway server` is started with.
type Config struct {
	Addr    string
	DataDir string
	Log     *slog.Logger
	// ShutdownGrace bounds how long in-flight requests may finish after SIGTERM.
	ShutdownGrace time.Duration
	// MaxParallelActions bounds how many pipeline actions run at once.
	MaxParallelActions int
	// ProxyBinary is the slipway executable that runs the load balancer
	// (default: this executable).
	ProxyBinary string
	// PublicURL is where people reach the server, for links in notices
	// (default: http:// or, with TLS, https:// and the listen address).
	PublicURL string
	// TLS, when set, makes Serve answer HTTPS (with its certificates)
	// instead of plain HTTP.
	TLS *tls.Config
	// NotifyBackoff is the wait before each retry of a failed notice
	// (default notify.DefaultBackoff).
	NotifyBackoff []time.Duration
	// BodyLimits bound how slowly a request body may arrive (default
	// httpguard.Defaults).
	BodyLimits *httpguard.Limits
	// IdleTimeout closes idle keep-alive connections (default
	// httpguard.IdleTimeout).
	IdleTimeout time.Duration
	// Edge is the load balancer's shared listeners, where services claim
	// hosts; ACME, when set, gets their HTTPS certificates.
	Edge deploy.Edge
	ACME *certs.ACME
	// CertCheckEvery is how often certificates are checked (default a minute).
	CertCheckEvery time.Duration
	// DatabaseURL is the PostgreSQL database the server keeps its state in
	// (--database); empty keeps it in SQLite in DataDir.
	DatabaseURL string
	// Blobs is where registry layers, artifacts and caches are kept: the
	// data directory (zero value) or S3 (--blob-store).
	Blobs blob.Config
	// AutoTLSHost, with ACME and no TLS, makes Serve answer HTTPS with a
	// certificate for this host obtained (and renewed) through ACME.
	AutoTLSHost string
	// RunRetention is how long a run's artifacts and logs are kept after it
	// ends (0: forever; the CLI's default is pipeline.DefaultRunRetention).
	RunRetention time.Duration
	// AdvertiseURL is where the other servers sharing the database reach
	// this one, to pass it requests only the controlling server answers
	// (default http(s)://the listening address).
	AdvertiseURL string
	// LeaseTTL is how long the control lease outlives a dead holder
	// (default lease.DefaultTTL).
	LeaseTTL time.Duration
}

// Server wires the store, the domain services and the HTTP routes.
type Server struct {
	cfg     Config
	owner   *datadir.Owner // the data directory's lock, held while the server runs
	log     *slog.Logger
	db      *store.DB
	keys    *secret.Keyring
	vault   *secret.Vault
	notify  *notify.Notifier
	ui      *web.Renderer
	baseURL atomic.Value // string
	source  *source.Service
	engine  *pipeline.Engine
	// needs caches each workflow's job graph for the run pages.
	needs needsCache
	// plotter samples the load balancer for the pages' plots.
	plotter plotter
	reg     *registry.Registry
	deploy  *deploy.Manager
	// runtimes are the environments' runtimes other than Docker.
	runtimes *envRuntimes
	deploys  *deploy.Controller
	certs    *certs.Manager
	blobs    storagedriver.StorageDriver // artifacts and caches
	runtime  *task.Runtime
	rtErr    error
	rtOnce   sync.Once
	metrics  *metrics
	routes   []Route
	handler  http.Handler

	pipelineToken string
	// id names this server process among those sharing the database.
	id       string
	me       store.Server // this server's row in the servers table
	elector  *lease.Elector
	control  controlState
	addr     atomic.Value // string: host:port the server listens on, once serving
	stopBeat context.CancelFunc
	ctl      controllerCache
	// proof is forwardProof's value, derived once.
	proofOnce sync.Once
	proof     string
	// life ends when the server closes: no lease is taken after that.
	life    context.Context
	endLife context.CancelFunc
	// installation identifies this data directory's tasks on a shared engine.
	installation string

	touchMu sync.Mutex
	touched map[string]time.Time
}

// PipelineTokenName names the token the server's own pipeline uses to push images.
const PipelineTokenName = "system:pipeline"

// AdminTokenFile is where the first admin token is written.
const AdminTokenFile = "admin.token"

// New opens the data directory, applies migrations and issues the first
// admin token when the database is new.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data directory is not set: pass --data DIR or set SLIPWAY_DATA")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// Two servers on one SQLite file would run every reconciler and
	// pipeline twice against the same tasks and database. Servers on one
	// PostgreSQL database may share a data directory: the control lease
	// gives the loops to one of them.
	var owner *datadir.Owner
	if cfg.DatabaseURL == "" {
		var err error
		if owner, err = datadir.Hold(cfg.DataDir, "server.lock", "slipway server"); err != nil {
			return nil, err
		}
	}
	started := false
	defer func() {
		if !started {
			owner.Release()
		}
	}()
	keys, err := secret.LoadOrCreate(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	db, err := store.OpenDatabase(ctx, cfg.DataDir, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	src, err := source.NewService(db, filepath.Join(cfg.DataDir, "git"), keys, cfg.Log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Log, db: db, keys: keys, source: src, metrics: newMetrics(), touched: map[string]time.Time{}}
	s.baseURL.Store(strings.TrimRight(cfg.PublicURL, "/"))
	s.vault = &secret.Vault{Store: db, Keys: keys}
	s.notify = &notify.Notifier{Store: db, Keys: keys, Log: cfg.Log, Backoff: cfg.NotifyBackoff, BaseURL: func() string { return s.baseURL.Load().(string) }}
	if err := s.bootstrapAdmin(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if s.installation, err = s.installationID(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Artifacts and caches on the blob store (the data directory, or S3):
	// one that does not answer at start stops the server with the reason.
	s.blobs, err = blob.Open(ctx, cfg.Blobs, cfg.DataDir)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, dir := range []string{blob.TempDir, artifact.TempDir} {
		if n, err := blob.PurgeTempIn(ctx, s.blobs, dir, time.Now().Add(-24*time.Hour)); err != nil {
			cfg.Log.Warn("remove abandoned uploads from the blob store", "dir", dir, "err", blob.Explain(err))
		} else if n > 0 {
			cfg.Log.Info("removed abandoned uploads from the blob store", "dir", dir, "count", n)
		}
	}
	s.engine = &pipeline.Engine{
		Store: db, Source: src, Log: cfg.Log, MaxParallel: cfg.MaxParallelActions,
		Artifacts: &artifact.Store{Driver: s.blobs},
		Blobs:     s.blobs,
		WorkRoot:  filepath.Join(cfg.DataDir, "work"),
		HomeRoot:  filepath.Join(cfg.DataDir, "homes"),
		DataDir:   cfg.DataDir,
		Notifier:  s.notify, Secrets: s.vault, Installation: s.installation,
		RunRetention: cfg.RunRetention,
	}
	src.RunCreated = func(store.Run) { s.runsChanged() }
	driver, params := cfg.Blobs.RegistryStorage(cfg.DataDir)
	s.reg, err = registry.New(ctx, registry.Config{Driver: driver, Log: cfg.Log, Parameters: params}, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.runtimes = &envRuntimes{s: s}
	s.deploy = &deploy.Manager{Store: db, Runtime: s.taskRuntime, Environments: s.runtimes, Proxy: deploy.NewProxy(cfg.DataDir, cfg.ProxyBinary), Log: cfg.Log,
		Secrets: s.resolveTaskSecrets, Notifier: s.notify}
	s.certs = &certs.Manager{Store: db, Keys: s.keys, ACME: cfg.ACME, Log: cfg.Log, CheckEvery: cfg.CertCheckEvery,
		Apply: s.deploy.ApplyRoutes, Problem: s.deploy.HostProblem}
	// The control plane's own host is no service's to claim.
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
		cfg.Edge.Reserved = append(cfg.Edge.Reserved, strings.ToLower(u.Hostname()))
	}
	s.deploy.Edge, s.deploy.Certs = cfg.Edge, s.certs
	if host := cfg.AutoTLSHost; host != "" && cfg.TLS == nil && cfg.ACME != nil {
		s.certs.Hosts = []string{host}
		s.cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.certs.TLSCertificate(hello.Context(), host)
			}}
	}
	s.deploys = &deploy.Controller{Store: db, Manager: s.deploy, Installation: s.installation, Apps: db, DataDir: cfg.DataDir}
	s.metrics.registry.MustRegister(newFleetCollector(s))
	s.engine.Deploys, s.engine.DeployStore = s.deploys, db
	if err := s.elect(ctx); err != nil {
		if s.endLife != nil {
			s.endLife()
		}
		db.Close()
		return nil, err
	}
	if s.ui, err = web.New(); err != nil {
		s.Close()
		return nil, err
	}
	s.handler = s.toController(s.buildHandler())
	s.owner, started = owner, true
	return s, nil
}

// taskRuntime connects to the Docker engine on first use, so a server
// without services never needs one.
func (s *Server) taskRuntime(ctx context.Context) (*task.Runtime, error) {
	s.rtOnce.Do(func() {
		s.runtime, s.rtErr = task.NewRuntime(ctx)
		if s.rtErr == nil {
			s.runtime.Installation = s.installation
			s.runtime.Registry = func() task.Registry {
				r := s.engine.CurrentRegistry()
				return task.Registry{Host: r.Host, User: r.User, Token: r.Token}
			}
		}
	})
	return s.runtime, s.rtErr
}

// installationID returns this data directory's id, made on first start.
func (s *Server) installationID(ctx context.Context) (string, error) {
	id, err := s.db.GetMeta(ctx, "installation_id")
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	id = auth.NewID("inst_")
	return id, s.db.SetMeta(ctx, "installation_id", id)
}

// bootstrapAdmin writes the token file before committing, so a committed
// admin token always has its file; a failed commit removes the file again.
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	if _, err := s.db.GetMeta(ctx, "admin_bootstrapped"); err == nil {
		return nil
	}
	plain, hash := auth.NewToken()
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	if err := os.WriteFile(path, []byte(plain+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	created, err := s.db.BootstrapAdmin(ctx, store.Token{ID: auth.NewID("tok_"), Name: "admin", Role: auth.Admin.String()}, hash)
	if err != nil || !created {
		os.Remove(path)
		return err
	}
	s.log.Info("created the first admin token", "file", path)
	return nil
}

// SetAddr tells the server the host:port clients (and the Docker engine) reach
// it at; image actions tag images with it. Serve calls it with the listener's address.
func (s *Server) SetAddr(addr string) {
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	s.addr.Store(addr)
	s.control.mu.Lock()
	if s.control.started.Load() {
		s.engine.SetRegistry(pipeline.Registry{Host: addr, User: "slipway", Token: s.pipelineToken})
	}
	s.control.mu.Unlock()
	if s.cfg.PublicURL == "" {
		scheme := "http://"
		if s.cfg.TLS != nil {
			scheme = "https://"
		}
		s.baseURL.Store(scheme + addr)
	}
}

// resolveTaskSecrets turns a container's secrets[].valueFrom into values
// from the secret store, in the service's app and environment.
func (s *Server) resolveTaskSecrets(ctx context.Context, app, env string, c taskdef.Container) (map[string]string, error) {
	out := make(map[string]string, len(c.Secrets))
	for _, sec := range c.Secrets {
		v, err := s.vault.Resolve(ctx, app, env, sec.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("container %s secret %s: %w", c.Name, sec.Name, err)
		}
		out[sec.Name] = v
	}
	return out, nil
}

// Handler is the complete HTTP handler (also used by tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists every registered route with the role it requires.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// DataDir is where the server keeps its state.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Close stops the pipeline engine (killing running actions) and releases the store.
func (s *Server) Close() error {
	if s.endLife != nil {
		s.endLife()
	}
	s.stopControl()
	s.leaveCluster()
	err := s.db.Close()
	if s.owner != nil {
		s.owner.Release()
	}
	return err
}

// Serve answers on ln until ctx ends, then stops accepting and lets
// in-flight requests finish within the grace period.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	idle := s.cfg.IdleTimeout
	if idle == 0 {
		idle = httpguard.IdleTimeout
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: httpguard.HeaderTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    httpguard.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:         s.cfg.TLS,
	}
	s.SetAddr(ln.Addr().String())
	s.joinCluster(ctx)
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS != nil {
			errc <- hs.ServeTLS(ln, "", "") // the certificates are in TLSConfig
			return
		}
		errc <- hs.Serve(ln)
	}()
	s.log.Info("slipway server listening", "addr", ln.Addr().String(), "https", s.cfg.TLS != nil, "data", s.cfg.DataDir)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if s.db.Dialect() == store.Postgres {
		// Hand the control loops over now, not after the grace period:
		// meanwhile the other servers would pass requests to a closed port.
		s.stopControl()
		s.leaveCluster()
	}
	s.log.Info("shutting down; waiting for in-flight requests", "grace", s.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
