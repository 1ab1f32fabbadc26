package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/kube"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
)

// envRuntimes gives the service manager the runtimes of environments
// that do not run on the local Docker engine, built from the store's
// sealed configurations and kept while they do not change.
type envRuntimes struct {
	s  *Server
	mu sync.Mutex
	// built holds each environment's runtime with the time of the
	// configuration it was built from.
	built map[string]builtRuntime
	// rows is the newest read of the table, reused for a moment: a pass
	// asks once per service.
	rows   map[string]envRow
	readAt time.Time
}

type builtRuntime struct {
	at time.Time
	rt *kube.Runtime
}

type envRow struct {
	r      store.EnvRuntime
	sealed []byte
}

// rowsFresh is how long a read of the table serves.
const rowsFresh = 500 * time.Millisecond

// listTimeout bounds a look at a retired runtime's pods: a cluster that
// is gone must not hold up every pass.
const listTimeout = 5 * time.Second

func envKey(app, env string) string { return app + "/" + env }

func (e *envRuntimes) read(ctx context.Context) (map[string]envRow, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rows != nil && time.Since(e.readAt) < rowsFresh {
		return e.rows, nil
	}
	list, seals, err := e.s.db.ListEnvRuntimes(ctx)
	if err != nil {
		return nil, err
	}
	rows := make(map[string]envRow, len(list))
	for i, r := range list {
		rows[envKey(r.App, r.Env)] = envRow{r, seals[i]}
	}
	e.rows, e.readAt = rows, time.Now()
	for k := range e.built {
		if _, ok := rows[k]; !ok {
			delete(e.built, k) // set back to Docker, or forgotten
		}
	}
	return rows, nil
}

// changed drops the cached read after a change through this server.
func (e *envRuntimes) changed() {
	e.mu.Lock()
	e.rows = nil
	e.mu.Unlock()
}

// RuntimeOf is nil for an environment on Docker.
func (e *envRuntimes) RuntimeOf(ctx context.Context, app, env string) (task.Backend, error) {
	rows, err := e.read(ctx)
	if err != nil {
		return nil, err
	}
	row, ok := rows[envKey(app, env)]
	if !ok || row.r.Retired || row.r.Kind != store.RuntimeKubernetes {
		return nil, nil
	}
	return e.backend(row)
}

// Runtimes lists every environment's runtime, retired ones (of deleted
// apps) until no task of theirs is left.
func (e *envRuntimes) Runtimes(ctx context.Context) ([]task.Backend, error) {
	rows, err := e.read(ctx)
	if err != nil {
		return nil, err
	}
	var out []task.Backend
	for _, row := range rows {
		b, err := e.backend(row)
		if err != nil {
			e.s.log.Warn("an environment's runtime cannot be used", "app", row.r.App, "env", row.r.Env, "err", err)
			continue
		}
		if row.r.Retired {
			lctx, cancel := context.WithTimeout(ctx, listTimeout)
			ts, err := b.List(lctx, nil)
			if err == nil && len(ts) == 0 {
				if err := b.Forget(lctx); err != nil {
					e.s.log.Warn("remove the pull secret of a deleted app's Kubernetes environment", "app", row.r.App, "env", row.r.Env, "err", err)
				}
				if err := e.s.db.ForgetRetiredEnvRuntime(ctx, row.r.App, row.r.Env); err == nil {
					e.changed()
				}
				cancel()
				continue
			}
			cancel()
		}
		out = append(out, b)
	}
	return out, nil
}

// backend builds (once per configuration) an environment's runtime.
func (e *envRuntimes) backend(row envRow) (*kube.Runtime, error) {
	k := envKey(row.r.App, row.r.Env)
	e.mu.Lock()
	b, ok := e.built[k]
	e.mu.Unlock()
	if ok && b.at.Equal(row.r.UpdatedAt) {
		return b.rt, nil
	}
	cfg, err := e.s.keys.Open(row.sealed)
	if err != nil {
		return nil, errors.New("its kubeconfig cannot be unsealed with this server's master key")
	}
	rt, err := e.s.newKubeRuntime(row.r, cfg)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.built == nil {
		e.built = map[string]builtRuntime{}
	}
	e.built[k] = builtRuntime{row.r.UpdatedAt, rt}
	e.mu.Unlock()
	return rt, nil
}

// newKubeRuntime makes the runtime of one environment. Its pods pull from
// the registry with a token of their own that may only read the app's
// images: the pull secret sits in the cluster, readable by whoever may
// read secrets in the namespace.
func (s *Server) newKubeRuntime(r store.EnvRuntime, kubeconfig []byte) (*kube.Runtime, error) {
	rt, err := kube.New(store.RuntimeKubernetes+"/"+envKey(r.App, r.Env), kube.Config{Kubeconfig: kubeconfig, Context: r.Context, Namespace: r.Namespace})
	if err != nil {
		return nil, err
	}
	rt.Installation, rt.App, rt.Env = s.installation, r.App, r.Env
	var mu sync.Mutex
	var token string
	rt.Registry = func() task.Registry {
		mu.Lock()
		defer mu.Unlock()
		if token == "" { // minted on first use, and again after a failure
			plain, hash := auth.NewToken()
			t := store.Token{ID: auth.NewID("tok_"), Name: pullTokenName(r.App, r.Env), Role: auth.Viewer.String(), App: r.App, Env: r.Env, RegistryOnly: true}
			if _, err := s.db.ReplaceToken(context.Background(), t, hash); err != nil {
				s.log.Error("issue the registry pull token of a Kubernetes environment", "app", r.App, "env", r.Env, "err", err)
			} else {
				token = plain
			}
		}
		return task.Registry{Host: s.engine.CurrentRegistry().Host, User: "slipway", Token: token}
	}
	return rt, nil
}

// pullTokenName names the token an environment's pods pull images with
// ("system:" names are the server's own; no client can take one).
func pullTokenName(app, env string) string { return "system:kubernetes-pull:" + app + ":" + env }

// revokePullTokens deletes the pull tokens of app's environments (env ""
// for all): its runtime changed, or the app is gone.
func (s *Server) revokePullTokens(ctx context.Context, app, env string) {
	prefix := "system:kubernetes-pull:" + app + ":"
	if env != "" {
		prefix = pullTokenName(app, env)
	}
	if _, err := s.db.DeleteTokensNamed(ctx, prefix); err != nil {
		s.log.Error("revoke the registry pull tokens of Kubernetes environments", "app", app, "env", env, "err", err)
	}
}

// RuntimeRequest names where an environment's tasks run.
type RuntimeRequest struct {
	// Kind is docker (the default) or kubernetes.
	Kind string `json:"kind"`
	// Kubeconfig is the content of a kubeconfig file, credentials inline.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
}

func (s *Server) getEnvRuntime(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	rt, _, err := s.db.EnvRuntime(r.Context(), app, env)
	if errors.Is(err, store.ErrNotFound) {
		rt, err = store.EnvRuntime{App: app, Env: env, Kind: store.RuntimeDocker}, nil
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rt)
}

func (s *Server) setEnvRuntime(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	var req RuntimeRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !source.ValidAppName(env) {
		s.writeError(w, r, errBadRequest("env", "environment name %q must be lower-case letters, digits and dashes (at most 63)", env))
		return
	}
	if _, err := s.db.GetApp(r.Context(), app); err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	row := store.EnvRuntime{App: app, Env: env, Kind: req.Kind, Context: req.Context, Namespace: req.Namespace, UpdatedBy: tok.Name}
	var sealed []byte
	switch req.Kind {
	case store.RuntimeDocker:
		if req.Kubeconfig != "" || req.Context != "" || req.Namespace != "" {
			s.writeError(w, r, errBadRequest("kind", "the docker runtime takes no kubeconfig, context or namespace"))
			return
		}
		row.Context, row.Namespace = "", ""
	case store.RuntimeKubernetes:
		rt, err := kube.New("check", kube.Config{Kubeconfig: []byte(req.Kubeconfig), Context: req.Context, Namespace: req.Namespace})
		var ce *kube.ConfigError
		if errors.As(err, &ce) {
			s.writeError(w, r, errBadRequest(ce.Field, "%s", ce.Error()))
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := rt.Check(r.Context()); err != nil {
			s.writeError(w, r, errBadRequest("kubeconfig", "%s", err.Error()))
			return
		}
		row.Namespace = rt.Namespace()
		sealed = s.keys.Seal([]byte(req.Kubeconfig))
	default:
		s.writeError(w, r, errBadRequest("kind", "runtime %q is not docker or kubernetes", req.Kind))
		return
	}
	if err := s.db.SetEnvRuntime(r.Context(), row, sealed); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.runtimes.changed()
	s.revokePullTokens(r.Context(), app, env) // a kubernetes runtime mints its own at its first start
	s.log.Info("environment runtime set", "app", app, "env", env, "kind", row.Kind, "namespace", row.Namespace, "by", tok.Name)
	s.deploy.Wake()
	got, _, err := s.db.EnvRuntime(r.Context(), app, env)
	if errors.Is(err, store.ErrNotFound) {
		got, err = store.EnvRuntime{App: app, Env: env, Kind: store.RuntimeDocker}, nil
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, got)
}
