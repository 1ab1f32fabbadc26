package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
)

// lbVsNginx puts Slipway's load balancer and nginx in front of the same
// backend and drives both with the same closed-loop generator.
func lbVsNginx(e *env) (map[string]any, string, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			return nil, "", fmt.Errorf("nginx is not installed: apt-get install -y nginx-light")
		}
		nginx = "/usr/sbin/nginx"
	}
	os.MkdirAll(e.dir, 0o755)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	body := []byte("hello from the backend\n")
	bsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go bsrv.Serve(backend)
	defer bsrv.Close()
	backendAddr := backend.Addr().String()

	// Slipway's proxy as its own process, as in production.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := exec.CommandContext(ctx, e.bin, "proxy", "--data", e.dir)
	if err := proxy.Start(); err != nil {
		return nil, "", err
	}
	defer proxy.Process.Kill()
	client := lb.NewClient(filepath.Join(e.dir, "proxy.sock"))
	for i := 0; ; i++ {
		if _, err := client.Ping(ctx); err == nil {
			break
		}
		if i > 200 {
			return nil, "", fmt.Errorf("proxy did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	slipAddr, nginxAddr := freeAddr(), freeAddr()
	hc := lb.HealthCheck{Path: "/", Interval: lb.Duration{Duration: time.Second}, Timeout: lb.Duration{Duration: 500 * time.Millisecond}, HealthyThreshold: 1}
	if err := client.Apply(ctx, lb.Config{
		TargetGroups: map[string]lb.TargetGroup{"tg": {Targets: []string{backendAddr}, HealthCheck: hc}},
		Listeners:    map[string]lb.Listener{"web": {Addr: slipAddr, Routes: []lb.Route{{TargetGroup: "tg", Weight: 100}}}},
	}); err != nil {
		return nil, "", err
	}
	conf := filepath.Join(e.dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes auto;
pid %s/nginx.pid;
error_log %s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server %s; keepalive 64; }
  server {
    listen %s;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, e.dir, e.dir, backendAddr, nginxAddr)), 0o644)
	ng := exec.CommandContext(ctx, nginx, "-c", conf, "-p", e.dir, "-g", "daemon off;")
	ng.Stderr = os.Stderr
	if err := ng.Start(); err != nil {
		return nil, "", err
	}
	defer ng.Process.Kill()
	for _, a := range []string{slipAddr, nginxAddr} {
		if err := waitOK("http://" + a + "/"); err != nil {
			return nil, "", err
		}
	}
	const conns, dur = 32, 8 * time.Second
	direct := drive("http://"+backendAddr+"/", conns, dur)
	slip := drive("http://"+slipAddr+"/", conns, dur)
	ngx := drive("http://"+nginxAddr+"/", conns, dur)
	f := map[string]any{"connections": conns, "seconds": dur.Seconds(),
		"direct_rps": direct.rps, "slipway_rps": slip.rps, "nginx_rps": ngx.rps,
		"direct_p50_ms": ms(direct.p50), "slipway_p50_ms": ms(slip.p50), "nginx_p50_ms": ms(ngx.p50),
		"slipway_added_p50_ms": ms(slip.p50 - direct.p50), "nginx_added_p50_ms": ms(ngx.p50 - direct.p50),
		"slipway_vs_nginx_rps": slip.rps / ngx.rps, "errors": slip.errors + ngx.errors,
		"goal": "≥ 0.9× nginx req/s, added median ≤ 0.15 ms"}
	return f, fmt.Sprintf("slipway %.0f req/s vs nginx %.0f req/s (%.2f×); added median latency slipway %.3f ms, nginx %.3f ms (direct p50 %.3f ms); errors %d",
		slip.rps, ngx.rps, slip.rps/ngx.rps, ms(slip.p50-direct.p50), ms(ngx.p50-direct.p50), ms(direct.p50), slip.errors+ngx.errors), nil
}

func freeAddr() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

func waitOK(url string) error {
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered 200", url)
}

type result struct {
	rps    float64
	p50    time.Duration
	errors int
}

// drive runs conns keep-alive clients against url for d (after a 1 s warm-up).
func drive(url string, conns int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	warm := time.Now().Add(time.Second)
	end := warm.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			bad := 0
			for {
				start := time.Now()
				if start.After(end) {
					break
				}
				resp, err := client.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if start.Before(warm) {
					continue
				}
				if err != nil || resp.StatusCode != 200 {
					bad++
					continue
				}
				local = append(local, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{rps: float64(len(lat)) / d.Seconds(), errors: errs}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
	}
	return r
}
