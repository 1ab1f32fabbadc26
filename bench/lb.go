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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/lb"
)

// lbVsNginx puts Slipway's load balancer and nginx in front of the same
// backend and drives both with the same closed-loop generator.
func lbVsNginx(e *env) (map[string]any, string, error) {
	rig, err := startLBRig(e, nil)
	if err != nil {
		return nil, "", err
	}
	defer rig.close()
	backendAddr, slipAddr, nginxAddr := rig.backend, rig.slip, rig.nginx
	// Throughput: 32 keep-alive connections after a short warm-up of both,
	// the two proxies in the order A B B A, so that a drift on a shared
	// machine falls on both alike. Latency: one connection, where the
	// median is the proxy's own time and not queueing.
	gen := loadGenerator()
	const conns, dur = 32, 6 * time.Second
	for _, a := range []string{slipAddr, nginxAddr} {
		gen.run(slipURL(a), conns, time.Second)
	}
	var slip, ngx result // the rates of the two rounds, summed, then halved
	for _, p := range []struct {
		sum  *result
		addr string
	}{{&slip, slipAddr}, {&ngx, nginxAddr}, {&ngx, nginxAddr}, {&slip, slipAddr}} {
		r := gen.run(slipURL(p.addr), conns, dur)
		p.sum.rps += r.rps / 2
		p.sum.errors += r.errors
	}
	const latDur = 4 * time.Second
	direct1 := gen.run(slipURL(backendAddr), 1, latDur)
	slip1 := gen.run(slipURL(slipAddr), 1, latDur)
	ngx1 := gen.run(slipURL(nginxAddr), 1, latDur)
	errs := slip.errors + ngx.errors + direct1.errors + slip1.errors + ngx1.errors
	if errs > 0 {
		return nil, "", fmt.Errorf("%d requests failed", errs)
	}
	f := map[string]any{"generator": gen.name, "connections": conns, "seconds_per_run": dur.Seconds(),
		"slipway_rps": slip.rps, "nginx_rps": ngx.rps, "slipway_vs_nginx_rps": slip.rps / ngx.rps,
		"direct_p50_ms": ms(direct1.p50), "slipway_p50_ms": ms(slip1.p50), "nginx_p50_ms": ms(ngx1.p50),
		"slipway_added_p50_ms": ms(slip1.p50 - direct1.p50), "nginx_added_p50_ms": ms(ngx1.p50 - direct1.p50),
		"errors": errs, "goal": "≥ 0.9× nginx req/s, added median ≤ 0.15 ms"}
	return f, fmt.Sprintf("slipway %.0f req/s vs nginx %.0f req/s (%.2f×) with %s at %d connections; added median latency on one connection slipway %.3f ms, nginx %.3f ms (direct p50 %.3f ms)",
		slip.rps, ngx.rps, slip.rps/ngx.rps, gen.name, conns, ms(slip1.p50-direct1.p50), ms(ngx1.p50-direct1.p50), ms(direct1.p50)), nil
}

func slipURL(addr string) string { return "http://" + addr + "/" }

// lbRig is a backend with Slipway's proxy and nginx in front of it, each
// in a process of its own.
type lbRig struct {
	backend, slip, nginx string // addresses
	proxyPID, nginxPID   int
	cleanups             []func() // run last first by close
}

func (r *lbRig) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// rigTLS makes both proxies terminate TLS for host with one certificate.
type rigTLS struct {
	host            string
	certPEM, keyPEM []byte
	client          *http.Client // trusts the certificate, to wait for both
}

// startLBRig starts the backend (in this process), Slipway's proxy and
// nginx, and waits until both proxies serve; on failure it leaves nothing
// running.
func startLBRig(e *env, t *rigTLS) (_ *lbRig, err error) {
	r := &lbRig{}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			return nil, fmt.Errorf("nginx is not installed: apt-get install -y nginx-light")
		}
		nginx = "/usr/sbin/nginx"
	}
	os.MkdirAll(e.dir, 0o755)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte("hello from the backend\n")
	bsrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go bsrv.Serve(backend)
	r.cleanups = append(r.cleanups, func() { bsrv.Close() })
	r.backend = backend.Addr().String()

	// Slipway's proxy as its own process, as in production.
	ctx, cancel := context.WithCancel(context.Background())
	r.cleanups = append(r.cleanups, cancel)
	proxy := exec.CommandContext(ctx, e.bin, "proxy", "--data", e.dir)
	// Should the bench die before its cleanups run, neither proxy outlives it.
	proxy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := proxy.Start(); err != nil {
		return nil, err
	}
	r.proxyPID = proxy.Process.Pid
	r.cleanups = append(r.cleanups, func() { proxy.Process.Kill(); proxy.Wait() })
	client := lb.NewClient(filepath.Join(e.dir, "proxy.sock"))
	for i := 0; ; i++ {
		if _, err := client.Ping(ctx); err == nil {
			break
		}
		if i > 200 {
			return nil, fmt.Errorf("proxy did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	r.slip, r.nginx = freeAddr(), freeAddr()
	hc := lb.HealthCheck{Path: "/", Interval: lb.Duration{Duration: time.Second}, Timeout: lb.Duration{Duration: 500 * time.Millisecond}, HealthyThreshold: 1}
	cfg := lb.Config{
		TargetGroups: map[string]lb.TargetGroup{"tg": {Targets: []string{r.backend}, HealthCheck: hc}},
		Listeners:    map[string]lb.Listener{"web": {Addr: r.slip, Routes: []lb.Route{{TargetGroup: "tg", Weight: 100}}}},
	}
	if t != nil {
		// As an HTTPS edge listener is: shared, routing by host.
		cfg.Listeners = map[string]lb.Listener{"https": {Addr: r.slip, TLS: true,
			Rules: []lb.Rule{{Host: t.host, Routes: []lb.Route{{TargetGroup: "tg", Weight: 100}}}}}}
		cfg.Certificates = []lb.Certificate{{CertPEM: string(t.certPEM), KeyPEM: string(t.keyPEM)}}
	}
	if err := client.Apply(ctx, cfg); err != nil {
		return nil, err
	}
	conf := filepath.Join(e.dir, "nginx.conf")
	server := fmt.Sprintf("listen %s;", r.nginx)
	if t != nil {
		if server, err = nginxTLSServer(e.dir, r.nginx, t); err != nil {
			return nil, err
		}
	}
	os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes auto;
pid %s/nginx.pid;
error_log %s/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server %s; keepalive 64; }
  server {
    %s
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, e.dir, e.dir, r.backend, server)), 0o644)
	ng := exec.CommandContext(ctx, nginx, "-c", conf, "-p", e.dir, "-g", "daemon off;")
	ng.Stderr = os.Stderr
	// SIGTERM, not SIGKILL: nginx's master then stops its workers, which a
	// killed master would leave running.
	ng.Cancel = func() error { return ng.Process.Signal(syscall.SIGTERM) }
	ng.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := ng.Start(); err != nil {
		return nil, err
	}
	r.nginxPID = ng.Process.Pid
	r.cleanups = append(r.cleanups, func() {
		ng.Process.Signal(syscall.SIGTERM)
		ng.Wait()
	})
	for _, a := range []string{r.slip, r.nginx} {
		if t != nil {
			err = waitServingWith(t.client, tlsURL(t.host, a), 5*time.Second)
		} else {
			err = waitServing("http://"+a+"/", 5*time.Second)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// generator is a closed-loop load generator, named in the figures.
type generator struct {
	name string
	run  func(url string, conns int, d time.Duration) result
}

// loadGenerator prefers wrk (Debian's package): a C generator leaves the
// two cores to the proxies being compared, where the Go one takes about
// half of them and flattens the difference. SLIPWAY_BENCH_GENERATOR=go
// forces the Go one.
func loadGenerator() generator {
	if _, err := exec.LookPath("wrk"); err == nil && os.Getenv("SLIPWAY_BENCH_GENERATOR") != "go" {
		return generator{"wrk", wrk}
	}
	return generator{"go", drive}
}

// wrk runs one thread of wrk and reads its requests per second, median
// latency and errors.
func wrk(url string, conns int, d time.Duration) result {
	out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).Output()
	if err != nil {
		return result{errors: 1}
	}
	var r result
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = wrkDuration(f[1])
		case len(f) >= 5 && f[0] == "Non-2xx":
			n, _ := strconv.Atoi(f[len(f)-1])
			r.errors += n
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			for _, v := range f[2:] {
				n, _ := strconv.Atoi(strings.TrimSuffix(v, ","))
				r.errors += n
			}
		}
	}
	if r.rps == 0 {
		r.errors++
	}
	return r
}

// wrkDuration reads wrk's "123.45us", "1.20ms" or "2.00s".
func wrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

func freeAddr() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

type result struct {
	rps    float64
	p50    time.Duration
	errors int
}

// drive runs conns keep-alive Go clients against url for d (after a 1 s warm-up).
func drive(url string, conns int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	return driveClients(url, conns, d, func(int) *http.Client { return client })
}

// driveClients is drive with client(i) as the i-th client's.
func driveClients(url string, conns int, d time.Duration, client func(i int) *http.Client) result {
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
			client := client(i)
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
