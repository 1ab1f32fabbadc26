package lb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/datadir"
)

// Run is the `slipway proxy` process: it restores the routing table from
// statePath, then serves the control API on socketPath until ctx ends.
// keys seals the certificate keys the table keeps on disk.
func Run(ctx context.Context, socketPath, statePath string, keys Sealer, log *slog.Logger) error {
	// Hashing the executable takes a fifth of a second: start at once, so
	// it overlaps taking the lock and restoring the routing table.
	builds := make(chan string, 1)
	go func() { builds <- BuildOf(os.Executable) }()
	build := sync.OnceValue(func() string { return <-builds })
	unlock, err := lockDataDir(ctx, socketPath)
	if err != nil {
		return err
	}
	defer unlock()
	b := New(ctx, log)
	if data, err := os.ReadFile(statePath); err == nil {
		var cfg Config
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("routing table %s is corrupt: %w", statePath, err)
		}
		if opened, err := openKeys(cfg, keys); err != nil {
			// Routes without certificates beat no proxy at all: the server
			// sends them again as it configures this proxy.
			log.Error("restore certificates; serving the routes without them until the server sends them again", "table", statePath, "err", err)
			cfg.Certificates = nil
		} else {
			cfg = opened
		}
		// A predecessor may still be releasing its ports: keep trying for a
		// while rather than serve an empty table.
		for attempt := 0; ; attempt++ {
			err := b.Apply(cfg)
			if err == nil {
				log.Info("restored routing table", "listeners", len(cfg.Listeners), "target_groups", len(cfg.TargetGroups))
				break
			}
			if attempt == 60 {
				log.Error("restore routing table; waiting for the server to send a new one", "err", err)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if c, err := dialControl(socketPath); err == nil {
		c.Close()
		return fmt.Errorf("another proxy already answers on %s", socketPath)
	}
	os.Remove(socketPath)
	ln, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(socketPath, 0o600); err != nil {
		return err
	}
	pidFile := filepath.Join(filepath.Dir(socketPath), "proxy.pid")
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	srv := &http.Server{Handler: controlHandler(b, statePath, keys, build, log), ReadHeaderTimeout: 5 * time.Second}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		b.Close(sctx)
	}()
	log.Info("proxy control socket ready", "socket", socketPath)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-closed // return only once the listeners have let go of their ports
	return nil
}

// lockWait is how long a draining predecessor may hold proxy.lock; a
// variable so a test need not wait it out.
var lockWait = 30 * time.Second

// lockDataDir makes this the only proxy of its data directory, with an
// exclusive lock on proxy.lock that the kernel drops when the process ends,
// however it ends. Without it, a proxy started because a ping went
// unanswered could wait out its predecessor's ports and take over after
// the predecessor was stopped, outliving everyone. A predecessor that is
// still draining holds the lock for a while: wait for it, but give up at
// once if a proxy answers on the socket.
func lockDataDir(ctx context.Context, socketPath string) (func(), error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := datadir.TryLock(filepath.Join(filepath.Dir(socketPath), "proxy.lock"))
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, datadir.ErrLocked) {
			return nil, fmt.Errorf("proxy lock: %w", err)
		}
		if c, derr := dialControl(socketPath); derr == nil {
			c.Close()
			return nil, fmt.Errorf("another proxy already answers on %s", socketPath)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("another proxy of %s holds proxy.lock and does not answer", filepath.Dir(socketPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dialControl(socket string) (net.Conn, error) {
	return net.DialTimeout("unix", socket, 500*time.Millisecond)
}

// controlHandler serves the control API; build names the executable (see
// BuildOf), and may block until it is known.
func controlHandler(b *Balancer, statePath string, keys Sealer, build func() string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, Info{PID: os.Getpid(), Build: build()})
	})
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, withoutKeys(b.Config()))
	})
	mux.HandleFunc("PUT /v1/config", func(w http.ResponseWriter, r *http.Request) {
		var cfg Config
		dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			writeJSON(w, 400, map[string]string{"error": "routing table: " + err.Error()})
			return
		}
		if err := b.Apply(cfg); err != nil {
			var le *ListenError
			if errors.As(err, &le) {
				writeJSON(w, 409, map[string]any{"error": err.Error(), "listen_error": le})
				return
			}
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		if err := persist(statePath, sealKeys(b.Config(), keys)); err != nil {
			log.Error("persist routing table", "err", err)
			writeJSON(w, 500, map[string]string{"error": "routing table applied but not saved: " + err.Error()})
			return
		}
		writeJSON(w, 200, map[string]string{"status": "applied"})
	})
	mux.HandleFunc("GET /v1/state", func(w http.ResponseWriter, r *http.Request) {
		window := 10 * time.Second
		if v := r.URL.Query().Get("window"); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				window = d
			}
		}
		writeJSON(w, 200, b.State(window))
	})
	return mux
}

// persist writes the table atomically so a crash leaves the old or the new one.
func persist(path string, cfg Config) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// ErrNotAnswering is a control call that reached no proxy.
var ErrNotAnswering = errors.New("no load balancer answers on its control socket")

// Client configures a running proxy over its control socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient talks to the proxy listening on socket.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, http: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytesReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://proxy"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (%s): %w", ErrNotAnswering, c.Socket, err)
	}
	defer func() {
		// Read to the end so the connection is kept for the next call.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}()
	if resp.StatusCode != 200 {
		var e struct {
			Error       string
			ListenError *ListenError `json:"listen_error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if e.ListenError != nil {
			return e.ListenError
		}
		return errors.New(e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Info is what a proxy says of itself.
type Info struct {
	PID int `json:"pid"`
	// Build identifies the executable the proxy runs (empty from proxies
	// older than the field).
	Build string `json:"build,omitempty"`
}

// BuildOf names an executable by the SHA-256 of its bytes: the proxy
// outlives servers, so after an upgrade it may run another build than the
// server that adopts it. Empty when the file cannot be read.
func BuildOf(executable func() (string, error)) string {
	path, err := executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Ping reports the proxy's pid, or an error when none answers.
func (c *Client) Ping(ctx context.Context) (int, error) {
	info, err := c.Info(ctx)
	return info.PID, err
}

// Info reports the proxy's pid and build.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.do(ctx, "GET", "/v1/ping", nil, &info)
	return info, err
}

// Apply replaces the proxy's routing table.
func (c *Client) Apply(ctx context.Context, cfg Config) error {
	return c.do(ctx, "PUT", "/v1/config", cfg, nil)
}

// Config reads the routing table in force.
func (c *Client) Config(ctx context.Context) (Config, error) {
	var cfg Config
	err := c.do(ctx, "GET", "/v1/config", nil, &cfg)
	return cfg, err
}

// State reads target health and stats over window.
func (c *Client) State(ctx context.Context, window time.Duration) (State, error) {
	var st State
	err := c.do(ctx, "GET", "/v1/state?window="+window.String(), nil, &st)
	return st, err
}
