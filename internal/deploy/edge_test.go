package deploy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/store"
)

func TestValidateEdge(t *testing.T) {
	for _, c := range []struct {
		l    store.LoadBalancer
		want string
	}{
		{store.LoadBalancer{}, ""},
		{store.LoadBalancer{Host: "a.test", TestHost: "t.a.test", PathPrefix: "/api", Priority: 10, HTTPS: true, RedirectHTTPS: true, HSTS: true}, ""},
		{store.LoadBalancer{Host: "*.a.test"}, ""},
		{store.LoadBalancer{HTTPS: true}, "load_balancer.host is required with"},
		{store.LoadBalancer{Host: "A.test"}, "load_balancer.host: host \"A.test\" must be lower-case"},
		{store.LoadBalancer{Host: "a.test", TestHost: "a.test"}, "load_balancer.test_host must differ from host"},
		{store.LoadBalancer{Host: "a.test", PathPrefix: "api"}, "load_balancer.path_prefix \"api\" must start with /"},
		{store.LoadBalancer{Host: "a.test", Priority: 50001}, "load_balancer.priority must be 1 to 50000"},
		{store.LoadBalancer{Host: "a.test", HSTS: true}, "load_balancer.https is required with redirect_https or hsts"},
		{store.LoadBalancer{Host: "10.1.2.3"}, "is an IP address"},
	} {
		err := validateEdge(&c.l)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("validateEdge(%+v) = %v, want %q", c.l, err, c.want)
		}
	}
}

func TestCheckEdgeRefusesClaimsOfOthers(t *testing.T) {
	m := &Manager{Edge: Edge{HTTPAddr: "127.0.0.1:8080", HTTPSAddr: "127.0.0.1:8443", Reserved: []string{"cp.example"}}}
	svc := func(app, name, host, path string, prio int) store.Service {
		return store.Service{App: app, Env: "prod", Name: name, LoadBalancer: &store.LoadBalancer{Host: host, PathPrefix: path, Priority: prio}}
	}
	others := []store.Service{svc("shop", "web", "shop.test", "", 0), svc("shop", "api", "shop.test", "/api", 7), {App: "x", Env: "prod", Name: "plain", LoadBalancer: &store.LoadBalancer{ListenerPort: 9000}}}
	for _, c := range []struct {
		s           store.Service
		field, want string
	}{
		{svc("blog", "web", "blog.test", "", 0), "", ""},
		{svc("shop", "web", "shop.test", "", 0), "", ""}, // its own claim
		{svc("blog", "web", "shop.test", "/blog", 0), "load_balancer.host", "host shop.test is already claimed by service web in shop/prod (a host belongs to one app, whatever the path)"},
		{svc("blog", "web", "*.test", "", 0), "load_balancer.host", "host *.test overlaps shop.test, which service web in shop/prod claims"},
		{svc("shop", "web2", "shop.test", "/api", 0), "load_balancer.host", "host shop.test/api is already claimed by service api in shop/prod"},
		{svc("shop", "web2", "shop.test", "/blog", 0), "", ""},
		{svc("shop", "web2", "shop.test", "/v2", 7), "load_balancer.priority", "priority 7 for host shop.test is already used by service api in shop/prod"},
		{svc("blog", "web", "blog.test", "", 7), "", ""}, // priorities order the rules of one host
		{svc("blog", "web", "*.example", "", 0), "load_balancer.host", "host *.example is reserved: it is the control plane's own (cp.example)"},
		{store.Service{App: "blog", Env: "prod", Name: "web", LoadBalancer: &store.LoadBalancer{ListenerPort: 8443}}, "load_balancer.listener_port", "port 8443 is a shared listener's"},
	} {
		err := m.checkEdge(c.s, others)
		var le *ListenerError
		if c.want == "" && err != nil || c.want != "" && (!errors.As(err, &le) || le.Field != c.field || !strings.Contains(le.Detail, c.want)) {
			t.Errorf("checkEdge(%s/%s %+v) = %v, want %s %q", c.s.App, c.s.Name, *c.s.LoadBalancer, err, c.field, c.want)
		}
	}
	if err := (&Manager{}).checkEdge(svc("blog", "web", "blog.test", "", 0), nil); err == nil || !strings.Contains(err.Error(), "--http-listen") {
		t.Errorf("a host on a server with no shared listener: %v", err)
	}
	https := svc("blog", "web", "blog.test", "", 0)
	https.LoadBalancer.HTTPS = true
	if err := (&Manager{Edge: Edge{HTTPAddr: ":80"}}).checkEdge(https, nil); err == nil || !strings.Contains(err.Error(), "--https-listen") {
		t.Errorf("https on a server with no HTTPS listener: %v", err)
	}
}

func TestHookURLs(t *testing.T) {
	edge := Edge{HTTPAddr: "0.0.0.0:80", HTTPSAddr: ":443"}
	for _, c := range []struct {
		l    store.LoadBalancer
		want []string
	}{
		{store.LoadBalancer{ListenerPort: 8081, TestListenerPort: 9081}, []string{"SLIPWAY_PROD_URL=http://127.0.0.1:8081", "SLIPWAY_TEST_URL=http://127.0.0.1:9081"}},
		{store.LoadBalancer{Host: "a.test", TestHost: "t.a.test", PathPrefix: "/api"}, []string{"SLIPWAY_PROD_URL=http://127.0.0.1:80/api", "SLIPWAY_PROD_HOST=a.test", "SLIPWAY_TEST_URL=http://127.0.0.1:80/api", "SLIPWAY_TEST_HOST=t.a.test"}},
		{store.LoadBalancer{Host: "a.test", ListenerPort: 8081}, []string{"SLIPWAY_PROD_URL=http://127.0.0.1:8081"}},
	} {
		if got := hookURLs(&c.l, edge); !slices.Equal(got, c.want) {
			t.Errorf("hookURLs(%+v) = %v, want %v", c.l, got, c.want)
		}
	}
	env := hookURLs(&store.LoadBalancer{Host: "a.test", TestHost: "t.a.test"}, edge)
	for url, want := range map[string]string{"${SLIPWAY_TEST_URL}/health": "t.a.test", "$SLIPWAY_PROD_URL/": "a.test", "http://example.test/": ""} {
		if got := hostFor(url, env); got != want {
			t.Errorf("hostFor(%q) = %q, want %q", url, got, want)
		}
	}
}
