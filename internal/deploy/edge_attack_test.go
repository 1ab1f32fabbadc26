package deploy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
	"github.com/slipway-dev/slipway/internal/store"
)

// Proofs for the edge review. Each test asserts what should hold and
// fails today.

func edgeSvc(app, name, host, path string, prio int) store.Service {
	return store.Service{App: app, Env: "prod", Name: name, Family: name, Revision: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: name, ContainerPort: 80, Host: host, PathPrefix: path, Priority: prio}}
}

// A deployer of app "blog" claims rules that take traffic of app "shop".
// checkEdge only refuses the exact same host+path key and the same
// priority, so every one of these is accepted.
func TestAttackDeployerTakesAnotherAppsHost(t *testing.T) {
	m := &Manager{Edge: Edge{HTTPAddr: "127.0.0.1:8080", HTTPSAddr: "127.0.0.1:8443"}}
	shop := []store.Service{edgeSvc("shop", "web", "shop.test", "", 0), edgeSvc("shop", "api", "api.shop.test", "", 0)}
	testHost := edgeSvc("blog", "web", "blog.test", "/", 0)
	testHost.LoadBalancer.TestHost = "shop.test"
	for _, c := range []struct {
		name string
		s    store.Service
	}{
		// "/" is a different key from "" but matches every path, and a
		// longer prefix sorts first: all of shop.test goes to blog.
		{"prefix / on shop's host", edgeSvc("blog", "web", "shop.test", "/", 0)},
		// Any path under shop's host: cookies, credentials, HSTS for the host.
		{"prefix /login on shop's host", edgeSvc("blog", "web", "shop.test", "/login", 0)},
		// An explicit priority sorts before every rule without one.
		{"wildcard with priority over shop's exact host", edgeSvc("blog", "web", "*.shop.test", "", 1)},
		// The same through the blue/green test host.
		{"test host shop.test with prefix /", testHost},
	} {
		if err := m.checkEdge(c.s, shop); err == nil {
			t.Errorf("%s: accepted; a deployer of blog now serves traffic for shop's host", c.name)
		}
	}
}

// inTestProxy runs a real `slipway proxy` in the test and returns a
// manager wired to it.
func inTestProxy(t *testing.T, db *store.DB, edge Edge) *Manager {
	t.Helper()
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lb.Run(ctx, filepath.Join(dir, "proxy.sock"), filepath.Join(dir, "proxy.json"), mustKeyring(t, dir), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { stop(); <-done })
	m := &Manager{Store: db, Proxy: NewProxy(dir, filepath.Join(dir, "none")), Edge: edge, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for deadline := time.Now().Add(5 * time.Second); !m.Proxy.Running(ctx); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the in-test proxy does not answer")
		}
	}
	return m
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Two PATCHes from one deployer race: each runs CheckListeners against a
// store without the other's claim (the API checks, then writes, with no
// lock between), both are stored, and the proxy then refuses the whole
// routing table — every app's routes, not just the racer's — on every
// pass from then on.
func TestAttackRacedClaimsWedgeEveryAppsRouting(t *testing.T) {
	ctx := context.Background()
	db := storeWithApp(t, t.TempDir(), "shop")
	if _, err := db.CreateApp(ctx, store.App{Name: "blog", RegistryRepo: "blog", Environments: []string{"prod"}}); err != nil {
		t.Fatal(err)
	}
	shopPort := freePort(t)
	shop := store.Service{App: "shop", Env: "production", Name: "web", Family: "web", Revision: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 80, ListenerPort: shopPort}}
	a, b := edgeSvc("blog", "a", "a.blog.test", "", 0), edgeSvc("blog", "b", "b.blog.test", "", 0)
	for _, s := range []store.Service{shop, a, b} {
		if _, err := db.CreateService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	m := inTestProxy(t, db, Edge{HTTPAddr: "127.0.0.1:" + strconv.Itoa(freePort(t))})
	if err := m.applyLB(ctx, nil); err != nil {
		t.Fatalf("before the race: %v", err)
	}
	// The race, interleaved: both checks, then both writes.
	a.LoadBalancer.Priority, b.LoadBalancer.Priority = 42, 42
	for _, s := range []store.Service{a, b} {
		if err := m.CheckListeners(ctx, s); err != nil {
			t.Fatalf("check %s: %v", s.Name, err)
		}
	}
	for _, s := range []store.Service{a, b} {
		if _, err := db.UpdateService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// shop, an unrelated app, moves its listener; the move never happens.
	shop.LoadBalancer.ListenerPort = freePort(t)
	if _, err := db.UpdateService(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := m.applyLB(ctx, nil); err != nil {
		t.Errorf("after blog's raced claims the proxy refuses every app's routing table: %v", err)
	}
}

// A service with no host may take the shared listener's port as its own
// listener_port: checkEdge returns before its port check when Host is "".
// Once the service's listener holds 127.0.0.1:PORT, the edge cannot bind,
// and every app's hosts on it are down.
func TestAttackHostlessServiceTakesTheEdgePort(t *testing.T) {
	ctx := context.Background()
	db := storeWithApp(t, t.TempDir(), "shop")
	if _, err := db.CreateApp(ctx, store.App{Name: "blog", RegistryRepo: "blog", Environments: []string{"prod"}}); err != nil {
		t.Fatal(err)
	}
	edgePort := freePort(t)
	m := inTestProxy(t, db, Edge{HTTPAddr: "127.0.0.1:" + strconv.Itoa(edgePort)})
	squat := store.Service{App: "blog", Env: "prod", Name: "squat", Family: "squat", Revision: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: "squat", ContainerPort: 80, ListenerPort: edgePort}}
	if err := m.CheckListeners(ctx, squat); err == nil {
		t.Errorf("a host-less service may listen on the shared listener's port %d", edgePort)
	}
	if _, err := db.CreateService(ctx, squat); err != nil {
		t.Fatal(err)
	}
	if err := m.applyLB(ctx, nil); err != nil {
		t.Fatal(err)
	}
	shop := edgeSvc("shop", "web", "shop.test", "", 0)
	shop.Env = "production"
	if err := m.CheckListeners(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateService(ctx, shop); err != nil {
		t.Fatal(err)
	}
	if err := m.applyLB(ctx, nil); err != nil {
		t.Fatalf("shop claims a host; the proxy refuses every app's routing table: %v", err)
	}
	m.mu.Lock()
	_, edgeUp := m.lastLB.Listeners[EdgeHTTP]
	m.mu.Unlock()
	if !edgeUp {
		t.Errorf("the shared listener is not in force: blog's service holds its port, shop.test is unreachable")
	}
}
