package deploy

import (
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestCountsOf(t *testing.T) {
	web := store.Service{App: "shop", Env: "prod", Name: "web"}
	api := store.Service{App: "shop", Env: "prod", Name: "api"}
	idle := store.Service{App: "blog", Env: "prod", Name: "web"}
	m := &Manager{
		setStatus: map[string]map[string]SetStatus{
			key(web): {"blue": {Running: 2, Healthy: 2}, "green": {Running: 1, Healthy: 0}},
			key(api): {"blue": {Running: 1, Healthy: 1}},
		},
		starting: map[string]pendingStart{
			"t1": {service: key(web)}, "t2": {service: key(web)}, "t3": {service: key(web), done: true}, "t4": {service: key(idle)},
		},
	}
	got := m.CountsOf([]store.Service{web, api, idle})
	want := []Counts{{Running: 3, Healthy: 2, Pending: 2}, {Running: 1, Healthy: 1}, {Pending: 1}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("CountsOf[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
