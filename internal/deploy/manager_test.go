package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/task"
)

func TestSetFailuresAreCountedPerGeneration(t *testing.T) {
	svc := store.Service{App: "a", Env: "staging", Name: "web"}
	other := store.Service{App: "a", Env: "production", Name: "web"}
	old := store.TaskSet{Group: store.DefaultGroup, Family: "web", Revision: 3}
	forced := store.TaskSet{Group: store.DefaultGroup, Family: "web", Revision: 3, Generation: 7}
	green := store.TaskSet{Group: "tg2", Family: "web", Revision: 3, Generation: 7}
	m := &Manager{setFailures: map[string]int{}}
	// The tasks a forced new deployment replaces keep crashing: their
	// failures must not trip the new generation's circuit breaker.
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3}))
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3}))
	m.setFailed(svc, setOf(task.Task{Family: "web", Revision: 3, Generation: 7}))
	m.setFailed(other, forced)
	cases := []struct {
		svc  store.Service
		set  store.TaskSet
		want int
	}{
		{svc, old, 2},
		{svc, forced, 1},
		{svc, green, 0},
		{other, forced, 1},
		{other, old, 0},
	}
	for _, c := range cases {
		if got := m.SetFailures(c.svc, c.set); got != c.want {
			t.Errorf("%s %s: %d failures, want %d", key(c.svc), c.set.Key(), got, c.want)
		}
	}
}

func TestCheckListenersRefusesPortsHeldElsewhere(t *testing.T) {
	ctx := context.Background()
	db := storeWithApp(t, t.TempDir(), "a")
	// Ports the store's services listen on; nothing binds them in this test.
	port := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	webPort, webTest := port(), port()
	if _, err := db.CreateService(ctx, store.Service{App: "a", Env: "staging", Name: "web", Family: "web", Revision: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 8080, ListenerPort: webPort, TestListenerPort: webTest}}); err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0") // another program's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	free := port()
	m := &Manager{Store: db}
	svc := func(env, name string, listener, test int) store.Service {
		return store.Service{App: "a", Env: env, Name: name, LoadBalancer: &store.LoadBalancer{ListenerPort: listener, TestListenerPort: test}}
	}
	cases := []struct {
		name      string
		svc       store.Service
		wantField string
		want      string
	}{
		{"free ports", svc("production", "web", free, 0), "", ""},
		{"the service's own ports", svc("staging", "web", webPort, webTest), "", ""},
		{"another service's listener", svc("production", "web", webPort, 0), "load_balancer.listener_port", fmt.Sprintf("port %d is already the listener of service web in a/staging", webPort)},
		{"another service's test listener", svc("production", "web", free, webTest), "load_balancer.test_listener_port", fmt.Sprintf("port %d is already the listener of service web in a/staging", webTest)},
		{"a port another program holds", svc("production", "web", heldPort, 0), "load_balancer.listener_port", fmt.Sprintf("127.0.0.1:%d is in use by another program", heldPort)},
		{"a test port another program holds", svc("production", "web", free, heldPort), "load_balancer.test_listener_port", fmt.Sprintf("127.0.0.1:%d is in use by another program", heldPort)},
		{"no load balancer", store.Service{App: "a", Env: "production", Name: "web"}, "", ""},
	}
	for _, c := range cases {
		err := m.CheckListeners(ctx, c.svc)
		var le *ListenerError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.As(err, &le) || le.Field != c.wantField || !strings.HasPrefix(le.Error(), c.wantField+": "+c.want)):
			t.Errorf("%s: %v, want %s: %s…", c.name, err, c.wantField, c.want)
		}
	}
}

// storeWithApp opens a store in dir, closed when the test ends, holding
// app with its staging and production environments ("" for no app).
func storeWithApp(t *testing.T, dir, app string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if app != "" {
		if _, err := db.CreateApp(context.Background(), store.App{Name: app, RegistryRepo: app, Environments: []string{"staging", "production"}}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}
