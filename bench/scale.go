package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/traffic"
)

// scale runs many small load-balanced services on one server and measures
// what each costs and how the control plane and the load balancer hold up:
// the time until all 2N tasks are healthy, memory per task beyond the
// container's own, the server's and the proxy's RSS and idle CPU, the
// service list's p99, a listener's throughput against the one-service
// figure, recovery after every task is killed, and 25 rolling deployments
// at once under load. A step that fails or times out is reported in the
// figures ("errors") and the next goes on with what runs.
//
// N is SLIPWAY_BENCH_SCALE_SERVICES (250 when unset), two tasks each.
func scale(e *env) (map[string]any, string, error) {
	n := 250
	if v := os.Getenv("SLIPWAY_BENCH_SCALE_SERVICES"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 {
			return nil, "", fmt.Errorf("SLIPWAY_BENCH_SCALE_SERVICES=%q: want a positive number of services", v)
		}
		n = x
	}
	if err := e.start(); err != nil {
		return nil, "", err
	}
	defer cleanupBench(e)
	image, err := buildWebImage(e.dir)
	if err != nil {
		return nil, "", err
	}
	// The image goes after cleanupBench has removed the containers that use it.
	e.afterCleanup = append(e.afterCleanup, (&webService{image: image}).close)
	if err := e.post("/api/v1/apps", `{"name":"bench"}`); err != nil {
		return nil, "", err
	}
	s := &scaleRun{e: e, f: map[string]any{"services": n, "tasks_per_service": scaleTasks}, healthyIDs: map[string]bool{}}
	ports := map[string]bool{}
	for i := 0; i < n; i++ {
		port := strings.TrimPrefix(freeAddr(), "127.0.0.1:")
		for ports[port] {
			port = strings.TrimPrefix(freeAddr(), "127.0.0.1:")
		}
		ports[port] = true
		name := fmt.Sprintf("scale-%03d", i+1)
		s.svcs = append(s.svcs, &scaleService{webService: webService{e: e, image: image, name: name, family: name, cpu: 64, memory: 32, defaultChecks: true}, port: port})
	}
	if err := s.run(); err != nil {
		return nil, "", err
	}
	s.f["errors"] = append([]string{}, s.problems...)
	s.f["goal"] = "500 tasks healthy; beyond the container ≤ 15 MiB/task; all healthy again ≤ 60 s (≤ 0.12 s/task) after killing every task, no healthy task drained; " +
		"25 concurrent rolling deployments all complete, 0 failed requests; at N=250 list p99 ≤ 20 ms, server and proxy RSS ≤ 100 MiB each, idle CPU ≤ 2% of a core, listener req/s within 10% of 1 service"
	return s.f, s.summary(), nil
}

const scaleTasks = 2 // desired count of every service (webService.create)

type scaleService struct {
	webService
	port    string
	created bool
}

// scaleRun is one run of the benchmark: its services, figures and the
// steps' failures.
type scaleRun struct {
	e        *env
	svcs     []*scaleService
	f        map[string]any
	problems []string
	// healthyIDs are the tasks seen healthy, for telling whether a drained
	// task was one.
	mu         sync.Mutex
	healthyIDs map[string]bool
}

func (s *scaleRun) problem(step string, err error) {
	msg := step + ": " + err.Error()
	s.problems = append(s.problems, msg)
	fmt.Fprintln(os.Stderr, "  "+msg)
}

func (s *scaleRun) run() error {
	n := len(s.svcs)
	memBefore, err := memAvailableKiB()
	if err != nil {
		return err
	}

	// 1 service, and its listener's throughput before the rest exist.
	fmt.Fprintln(os.Stderr, "  scale: 1 service, its listener's throughput")
	first := s.svcs[0]
	if err := first.create(first.port); err != nil {
		return fmt.Errorf("create %s: %w", first.service(), err)
	}
	first.created = true
	if _, _, _, err := s.waitHealthy("first service", s.svcs[:1], nil, 90*time.Second, 90*time.Second); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // its first rollout's end and the tasks' start-up settle
	rps1, failed1 := listenerRPS(first.url)
	s.f["listener_rps_1_service"] = rps1

	// 1. The rest, created a few at a time, until all 2N tasks are healthy.
	fmt.Fprintf(os.Stderr, "  scale: creating %d more services\n", n-1)
	start := time.Now()
	created, createLat := s.createRest()
	s.f["services_created"] = created
	if len(createLat) > 0 {
		s.f["create_p50_ms"], s.f["create_max_ms"] = ms(percentile(createLat, 0.5)), ms(percentile(createLat, 1))
	}
	live := s.createdServices()
	tasks := scaleTasks * len(live)
	_, healthy, _, err := s.waitHealthy("all healthy", live, nil, 120*time.Second+time.Duration(tasks)*1500*time.Millisecond, 90*time.Second)
	elapsed := time.Since(start)
	if err != nil {
		s.problem("all healthy", err)
	}
	s.f["tasks_healthy"] = healthy
	s.f["all_healthy"] = err == nil && created == n
	s.f["create_to_all_healthy_s"] = elapsed.Seconds()
	s.f["tasks_started"] = scaleTasks * (len(live) - 1)

	// 2. Memory beyond the containers' own.
	fmt.Fprintln(os.Stderr, "  scale: memory")
	if err := s.memory(memBefore); err != nil {
		s.problem("memory", err)
	}

	// 3. RSS and idle CPU of the server and the proxy.
	fmt.Fprintln(os.Stderr, "  scale: server and proxy RSS, 10 s of idle CPU")
	if err := s.processes(); err != nil {
		s.problem("server and proxy", err)
	}

	// 4. The service list's p99, and a describe's (engine and proxy asked).
	fmt.Fprintln(os.Stderr, "  scale: service list p99")
	if err := s.listLatency(first); err != nil {
		s.problem("list p99", err)
	}

	// 5. The same listener's throughput at N services.
	fmt.Fprintln(os.Stderr, "  scale: the listener's throughput at N services")
	rpsN, failedN := listenerRPS(first.url)
	s.f["listener_rps_n_services"] = rpsN
	if rps1 > 0 {
		s.f["listener_rps_n_vs_1"] = rpsN / rps1
	}
	s.f["listener_failed"] = failed1 + failedN

	// 6. Every task killed, against the engine's own cost of starting a
	// container, measured just before.
	fmt.Fprintln(os.Stderr, "  scale: the engine's own start time per container (reference)")
	if ref, err := engineStartReference(first.image, 40, 8); err != nil {
		s.problem("engine reference", err)
	} else {
		s.f["engine_start_s_per_container"] = ref
	}
	settle()
	if err := s.killRecovery(live); err != nil {
		s.problem("kill recovery", err)
	}
	if ref, ok := s.f["engine_start_s_per_container"].(float64); ok && ref > 0 {
		if per, ok := s.f["kill_s_per_task"].(float64); ok {
			s.f["kill_per_task_vs_engine"] = per / ref
		}
	}

	// 7. 25 rolling deployments at once, one service under load.
	if err := s.concurrentDeployments(live); err != nil {
		s.problem("concurrent deployments", err)
	}
	return nil
}

// createRest creates services 2 to N, four at a time; it returns how many
// services exist in all and each create's latency.
func (s *scaleRun) createRest() (int, []time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	created, failed := 1, 0
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	lastReport := time.Now()
	for _, svc := range s.svcs[1:] {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t := time.Now()
			err := svc.create(svc.port)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if failed <= 3 {
					s.problem("create "+svc.service(), err)
				}
				return
			}
			lat = append(lat, time.Since(t))
			svc.created = true
			created++
			if time.Since(lastReport) > 5*time.Second {
				lastReport = time.Now()
				fmt.Fprintf(os.Stderr, "    %d/%d services created\n", created, len(s.svcs))
			}
		}()
	}
	wg.Wait()
	if failed > 3 {
		s.problem("create", fmt.Errorf("%d services in all failed to be created", failed))
	}
	return created, lat
}

func (s *scaleRun) createdServices() []*scaleService {
	var out []*scaleService
	for _, svc := range s.svcs {
		if svc.created {
			out = append(out, svc)
		}
	}
	return out
}

// scaleView is what the bench reads of a service's describe answer.
type scaleView struct {
	Tasks []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Target string `json:"target_health"`
	} `json:"tasks"`
	Events []struct {
		At      time.Time `json:"at"`
		LastAt  time.Time `json:"last_at"` // of a repeated event, its last time
		Message string    `json:"message"`
	} `json:"events"`
}

func (s *scaleRun) describe(svc *scaleService) (scaleView, error) {
	var v scaleView
	err := s.e.getJSON("/api/v1/apps/bench/envs/staging/services/"+svc.service(), &v)
	return v, err
}

// healthy lists the RUNNING tasks the load balancer finds healthy, less
// those in skip.
func (v scaleView) healthy(skip map[string]bool) []string {
	var ids []string
	for _, t := range v.Tasks {
		if t.Status == "RUNNING" && t.Target == "healthy" && !skip[t.ID] {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

// lastEvent is the newest event's message (events come newest first).
func (v scaleView) lastEvent() string {
	if len(v.Events) == 0 {
		return "no events"
	}
	msg, _, _ := strings.Cut(v.Events[0].Message, "\n")
	return msg
}

// describeAll describes svcs, eight at a time; a service whose describe
// failed is missing from the answer.
func (s *scaleRun) describeAll(svcs []*scaleService) (map[*scaleService]scaleView, error) {
	out := map[*scaleService]scaleView{}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, svc := range svcs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			v, err := s.describe(svc)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("describe %s: %w", svc.service(), err)
				}
				return
			}
			out[svc] = v
		}()
	}
	wg.Wait()
	return out, firstErr
}

// waitHealthy polls the service list and then describe answers until every one has
// scaleTasks healthy tasks not in skip. A service is not asked again once
// it was; the time is when the last one was. It gives up after timeout, or
// after stall without one more task healthy, and returns how long it
// waited, how many tasks were healthy, and the last service to be (or one
// that was not).
func (s *scaleRun) waitHealthy(what string, svcs []*scaleService, skip map[string]bool, timeout, stall time.Duration) (time.Duration, int, *scaleService, error) {
	start := time.Now()
	pending := append([]*scaleService(nil), svcs...)
	healthy := map[*scaleService]int{}
	done, best := 0, 0
	lastProgress, lastReport := start, start
	var lastErr error
	var last *scaleService
	for {
		// One list answer a round (counts as of the server's last pass);
		// a service is described, for its task ids, only once the list
		// says it is healthy: describing every waiting service every
		// round loaded the engine the bench measures.
		var list []struct {
			Name    string `json:"name"`
			Healthy int    `json:"healthy_count"`
		}
		var ready []*scaleService
		if err := s.e.getJSON("/api/v1/services?app=bench&env=staging", &list); err != nil {
			lastErr = err
		} else {
			counts := map[string]int{}
			for _, l := range list {
				counts[l.Name] = l.Healthy
			}
			for _, svc := range pending {
				healthy[svc] = counts[svc.service()]
				if counts[svc.service()] >= scaleTasks {
					ready = append(ready, svc)
				}
			}
		}
		views, err := s.describeAll(ready)
		if err != nil {
			lastErr = err
		}
		var still []*scaleService
		for _, svc := range pending {
			v, ok := views[svc]
			if !ok {
				still = append(still, svc)
				continue
			}
			ids := v.healthy(skip)
			healthy[svc] = len(ids)
			if len(ids) >= scaleTasks {
				done++
				last = svc
				s.mu.Lock()
				for _, id := range ids {
					s.healthyIDs[id] = true
				}
				s.mu.Unlock()
			} else {
				still = append(still, svc)
			}
		}
		pending = still
		total := 0
		for _, h := range healthy {
			total += min(h, scaleTasks)
		}
		if total > best {
			best, lastProgress = total, time.Now()
		}
		if len(pending) == 0 {
			return time.Since(start), total, last, nil
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "    %s: %d/%d tasks healthy, %d/%d services, %.0f s\n", what, total, scaleTasks*len(svcs), done, len(svcs), time.Since(start).Seconds())
		}
		giveUp := ""
		switch {
		case time.Since(start) > timeout:
			giveUp = fmt.Sprintf("not all healthy after %s", timeout.Round(time.Second))
		case time.Since(lastProgress) > stall:
			giveUp = fmt.Sprintf("no task became healthy for %s", stall)
		}
		if giveUp != "" {
			why := ""
			if v, err := s.describe(pending[0]); err == nil {
				why = fmt.Sprintf("; %s's last event: %s", pending[0].service(), v.lastEvent())
			} else if lastErr != nil {
				why = "; " + lastErr.Error()
			}
			return time.Since(start), total, pending[0], fmt.Errorf("%s: %d/%d tasks healthy, %d services short%s", giveUp, total, scaleTasks*len(svcs), len(pending), why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// listenerRPS drives url with the traffic generator (16 clients) and
// returns the rate of 200 answers over 3 s after a 0.5 s warm-up, and the
// failed requests.
func listenerRPS(url string) (float64, int64) {
	l := traffic.Start(traffic.Options{URLs: []string{url}, Clients: 16})
	time.Sleep(500 * time.Millisecond)
	ok0, t0 := l.OK(), time.Now()
	time.Sleep(8 * time.Second) // 3 s samples swung from 0.79× to 1.05× between runs
	ok1, d := l.OK(), time.Since(t0)
	_, failed := l.Stop()
	return float64(ok1-ok0) / d.Seconds(), failed
}

// memory compares MemAvailable now with before, less what the task
// containers' cgroups hold, per task.
func (s *scaleRun) memory(beforeKiB int64) error {
	afterKiB, err := memAvailableKiB()
	if err != nil {
		return err
	}
	out, err := docker("ps", "--no-trunc", "--filter", "label=slipway.managed=1", "--filter", "label=slipway.app=bench", "--format", "{{.ID}} {{.Ports}}")
	if err != nil {
		return err
	}
	var ids []string
	hostPorts := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		ids = append(ids, f[0])
		for _, p := range f[1:] { // 127.0.0.1:49153->8080/tcp,
			if hp, _, ok := strings.Cut(p, "->"); ok {
				hostPorts[hp[strings.LastIndexByte(hp, ':')+1:]] = true
			}
		}
	}
	if len(ids) == 0 {
		return errors.New("no task containers run")
	}
	var own, usage int64
	for _, id := range ids {
		u, ws, err := containerMemory(id)
		if err != nil {
			return err
		}
		usage += u
		own += ws
	}
	const mib = 1 << 20
	drop := (beforeKiB - afterKiB) * 1024
	s.f["task_containers"] = len(ids)
	s.f["mem_available_drop_mib"] = float64(drop) / mib
	s.f["containers_usage_mib"] = float64(usage) / mib
	s.f["containers_own_mib"] = float64(own) / mib
	s.f["beyond_container_per_task_mib"] = float64(drop-own) / mib / float64(len(ids))
	// A cross-check that other processes on the machine cannot skew: the
	// engine's processes of each task container.
	shims, proxies, anon := taskProcesses(ids, hostPorts)
	s.f["shims"], s.f["docker_proxies"] = shims, proxies
	s.f["shim_and_docker_proxy_anon_per_task_mib"] = float64(anon) / mib / float64(len(ids))
	return nil
}

// taskProcesses finds the containerd shims of the containers ids and the
// docker-proxy processes of the host ports, and sums their anonymous
// memory (proportional set size; the binaries' pages are shared and count
// as available).
func taskProcesses(ids []string, hostPorts map[string]bool) (shims, proxies int, anon int64) {
	own := map[string]bool{}
	for _, id := range ids {
		own[id] = true
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		flag := func(name string) string {
			for i := 0; i+1 < len(args); i++ {
				if args[i] == name {
					return args[i+1]
				}
			}
			return ""
		}
		switch base := filepath.Base(args[0]); {
		case strings.HasPrefix(base, "containerd-shim") && own[flag("-id")]:
			shims++
		case base == "docker-proxy" && hostPorts[flag("-host-port")]:
			proxies++
		default:
			continue
		}
		anon += pssAnon(filepath.Dir(d))
	}
	return shims, proxies, anon
}

// pssAnon reads a process's Pss_Anon (Pss on kernels without it), in bytes.
func pssAnon(proc string) int64 {
	b, err := os.ReadFile(filepath.Join(proc, "smaps_rollup"))
	if err != nil {
		return 0
	}
	var pss, pssAnon int64 = 0, -1
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "Pss":
			pss = n
		case "Pss_Anon":
			pssAnon = n
		}
	}
	if pssAnon >= 0 {
		return pssAnon << 10
	}
	return pss << 10
}

// memAvailableKiB is the median of five readings of MemAvailable over a
// second, taken after this process has returned its free memory.
func memAvailableKiB() (int64, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var v []int64
	for i := 0; i < 5; i++ {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		kib, err := memAvailableOnce()
		if err != nil {
			return 0, err
		}
		v = append(v, kib)
	}
	slices.Sort(v)
	return v[len(v)/2], nil
}

func memAvailableOnce() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("/proc/meminfo has no MemAvailable")
}

// containerMemory reads a container's memory cgroup: its usage, and its
// own share of it, the usage less file pages (the page cache of the
// image's binary, shared by all its containers and counted as available
// in MemAvailable). cgroup v1 with the cgroupfs driver, or v2 with
// systemd's.
func containerMemory(id string) (usage, own int64, err error) {
	for _, c := range []struct{ dir, usage, active, inactive string }{
		{"/sys/fs/cgroup/memory/docker/" + id, "memory.usage_in_bytes", "total_active_file", "total_inactive_file"},
		{"/sys/fs/cgroup/system.slice/docker-" + id + ".scope", "memory.current", "active_file", "inactive_file"},
	} {
		b, err := os.ReadFile(filepath.Join(c.dir, c.usage))
		if err != nil {
			continue
		}
		usage, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, 0, err
		}
		own = usage
		stat, _ := os.ReadFile(filepath.Join(c.dir, "memory.stat"))
		for _, l := range strings.Split(string(stat), "\n") {
			k, v, _ := strings.Cut(l, " ")
			if k == c.active || k == c.inactive {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					own -= n
				}
			}
		}
		return usage, max(own, 0), nil
	}
	return 0, 0, fmt.Errorf("no memory cgroup found for container %.12s", id)
}

// processes measures the server's and the proxy's RSS and their CPU over
// 10 idle seconds.
func (s *scaleRun) processes() error {
	server := s.e.cmd.Process.Pid
	b, err := os.ReadFile(filepath.Join(s.e.dir, "data", "proxy.pid"))
	if err != nil {
		return fmt.Errorf("the proxy's pid: %w", err)
	}
	proxy, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("proxy.pid: %w", err)
	}
	for _, p := range []struct {
		pid  int
		name string
	}{{server, "server"}, {proxy, "proxy"}} {
		kib, err := rssKiB(p.pid)
		if err != nil {
			return fmt.Errorf("%s RSS: %w", p.name, err)
		}
		s.f[p.name+"_rss_mib"] = float64(kib) / 1024
	}
	time.Sleep(2 * time.Second) // the last health checks' and reconciles' catch-up
	s0, err1 := cpuTicks(server)
	p0, err2 := cpuTicks(proxy)
	t0 := time.Now()
	time.Sleep(10 * time.Second)
	s1, err3 := cpuTicks(server)
	p1, err4 := cpuTicks(proxy)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	const hz = 100 // USER_HZ on Linux
	s.f["server_idle_cpu_pct"] = float64(s1-s0) / hz / secs * 100
	s.f["proxy_idle_cpu_pct"] = float64(p1-p0) / hz / secs * 100
	s.f["idle_cpu_pct"] = float64(s1-s0+p1-p0) / hz / secs * 100
	return nil
}

// cpuTicks is a process's user and system time, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from its closing ')'.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	return utime + stime, errors.Join(err1, err2)
}

// listLatency measures 200 service lists of the app's environment and 50
// describes of one service, after a warm-up.
func (s *scaleRun) listLatency(one *scaleService) error {
	measure := func(path string, n int) ([]time.Duration, error) {
		var d []time.Duration
		for i := 0; i < n+20; i++ {
			// Timed as env.get does, through the API client and its timeout.
			var sink json.RawMessage
			t0 := time.Now()
			if err := s.e.getJSON(path, &sink); err != nil {
				return nil, err
			}
			t := time.Since(t0)
			if i >= 20 {
				d = append(d, t)
			}
		}
		return d, nil
	}
	list, err := measure("/api/v1/services?app=bench&env=staging", 200)
	if err != nil {
		return err
	}
	s.f["list_requests"] = len(list)
	s.f["list_p50_ms"], s.f["list_p99_ms"] = ms(percentile(list, 0.5)), ms(percentile(list, 0.99))
	desc, err := measure("/api/v1/apps/bench/envs/staging/services/"+one.service(), 50)
	if err != nil {
		return err
	}
	s.f["describe_p50_ms"], s.f["describe_p99_ms"] = ms(percentile(desc, 0.5)), ms(percentile(desc, 0.99))
	return nil
}

// killRecovery docker-kills every task container, waits until every
// service that was healthy has its tasks healthy again, and counts the
// drains its events report since.
func (s *scaleRun) killRecovery(live []*scaleService) error {
	fmt.Fprintln(os.Stderr, "  scale: killing every task")
	views, err := s.describeAll(live)
	if err != nil {
		return err
	}
	var healthySvcs []*scaleService
	s.mu.Lock()
	for _, svc := range live {
		if v, ok := views[svc]; ok && len(v.healthy(nil)) >= scaleTasks {
			healthySvcs = append(healthySvcs, svc)
			for _, id := range v.healthy(nil) {
				s.healthyIDs[id] = true
			}
		}
	}
	s.mu.Unlock()
	out, err := docker("ps", "-q", "--filter", "label=slipway.managed=1", "--filter", "label=slipway.app=bench")
	if err != nil {
		return err
	}
	containers := strings.Fields(string(out))
	if len(containers) == 0 {
		return errors.New("no task containers run")
	}
	// The tasks of those containers: the recovered ones must be others.
	killed := map[string]bool{}
	for _, v := range views {
		for _, t := range v.Tasks {
			killed[t.ID] = true
		}
	}
	killAt := time.Now()
	if _, err := docker(append([]string{"kill"}, containers...)...); err != nil {
		// Some may have gone between the listing and the kill: go on.
		s.problem("docker kill", err)
	}
	tasks := scaleTasks * len(healthySvcs)
	s.f["kill_containers"] = len(containers)
	s.f["kill_tasks"] = tasks
	elapsed, healthy, last, err := s.waitHealthy("after kill", healthySvcs, killed, 120*time.Second+time.Duration(tasks)*500*time.Millisecond, 60*time.Second)
	s.f["kill_recovered"] = err == nil
	s.f["kill_tasks_healthy"] = healthy
	s.f["kill_to_all_healthy_s"] = elapsed.Seconds()
	if tasks > 0 {
		s.f["kill_s_per_task"] = elapsed.Seconds() / float64(tasks)
	}
	if err != nil {
		s.problem("kill recovery", err)
	}
	// Drains since the kill, from the services' events.
	views, derr := s.describeAll(healthySvcs)
	drains, healthyDrains := 0, 0
	var examples []string
	for _, v := range views {
		for _, ev := range v.Events {
			if ev.At.Before(killAt.Add(-time.Second)) && ev.LastAt.Before(killAt.Add(-time.Second)) {
				continue
			}
			_, rest, ok := strings.Cut(ev.Message, "draining task ")
			if !ok && !strings.Contains(ev.Message, "scaling in") {
				continue
			}
			drains++
			id, _, _ := strings.Cut(rest, " ")
			s.mu.Lock()
			wasHealthy := s.healthyIDs[id]
			s.mu.Unlock()
			if wasHealthy {
				healthyDrains++
				if len(examples) < 3 {
					examples = append(examples, firstLine(ev.Message))
				}
			}
		}
	}
	// What the slowest service went through, for telling where the time went.
	if v, ok := views[last]; ok && last != nil {
		var timeline []string
		for i := len(v.Events) - 1; i >= 0; i-- {
			if at := v.Events[i].At.Sub(killAt); at > -time.Second || v.Events[i].LastAt.After(killAt) {
				timeline = append(timeline, fmt.Sprintf("+%.1fs %s", at.Seconds(), firstLine(v.Events[i].Message)))
			}
		}
		s.f["kill_slowest_service_events"] = timeline
	}
	s.f["kill_drain_events"] = drains
	s.f["kill_healthy_tasks_drained"] = healthyDrains
	if len(examples) > 0 {
		s.f["kill_healthy_drain_examples"] = examples
	}
	return derr
}

// concurrentDeployments registers a new revision for up to 25 healthy
// services, starts a rolling deployment (ECS's 100%/200% defaults) on each
// at once while the first of them is under load, and waits for them all.
func (s *scaleRun) concurrentDeployments(live []*scaleService) error {
	views, err := s.describeAll(live)
	if err != nil {
		return err
	}
	var chosen []*scaleService
	for _, svc := range live {
		if v, ok := views[svc]; ok && len(v.healthy(nil)) >= scaleTasks && len(chosen) < 25 {
			chosen = append(chosen, svc)
		}
	}
	if len(chosen) == 0 {
		return errors.New("no service is healthy")
	}
	fmt.Fprintf(os.Stderr, "  scale: %d rolling deployments at once, %s under load\n", len(chosen), chosen[0].service())
	s.f["deployments"] = len(chosen)
	tds := make([]string, len(chosen))
	for i, svc := range chosen {
		if tds[i], err = svc.register("1"); err != nil {
			return err
		}
	}
	l := traffic.Start(traffic.Options{URLs: []string{chosen[0].url}, Clients: 8})
	defer l.Stop() // on an early return; the end stops it first
	time.Sleep(time.Second)
	start := time.Now()
	ids := make([]int, len(chosen))
	errs := make([]error, len(chosen))
	var wg sync.WaitGroup
	for i, svc := range chosen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = svc.deploy(tds[i], "rolling", "")
		}()
	}
	wg.Wait()
	pending := map[int]string{} // id → service
	refused := 0
	for i, svc := range chosen {
		if errs[i] != nil {
			refused++
			if refused <= 3 {
				s.problem("deploy "+svc.service(), errs[i])
			}
			continue
		}
		pending[ids[i]] = svc.service()
	}
	states := map[string]int{}
	var reasons []string
	timeout := 5 * time.Minute
	lastReport := time.Now()
	for len(pending) > 0 && time.Since(start) < timeout {
		for id, name := range pending {
			var d struct {
				State  string `json:"state"`
				Reason string `json:"reason"`
			}
			if err := s.e.getJSON(fmt.Sprintf("/api/v1/deployments/%d", id), &d); err != nil || d.State == "IN_PROGRESS" || d.State == "" {
				continue
			}
			states[d.State]++
			if d.State != "COMPLETED" && len(reasons) < 3 {
				reasons = append(reasons, fmt.Sprintf("%s: %s %s", name, d.State, d.Reason))
			}
			delete(pending, id)
		}
		if time.Since(lastReport) >= 5*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(os.Stderr, "    deployments: %d/%d ended %v, %.0f s; %d requests, %d failed\n",
				len(chosen)-refused-len(pending), len(chosen)-refused, states, time.Since(start).Seconds(), l.OK()+l.Failed(), l.Failed())
		}
		time.Sleep(500 * time.Millisecond)
	}
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // requests to the drained tasks' last moments
	total, failed := l.Stop()
	s.f["deploy_seconds"] = elapsed.Seconds()
	s.f["deploy_completed"] = states["COMPLETED"]
	s.f["deploy_rolled_back"] = states["ROLLED_BACK"]
	s.f["deploy_failed"] = states["FAILED"] + states["STOPPED"]
	s.f["deploy_refused"] = refused
	s.f["deploy_stuck"] = len(pending)
	s.f["deploy_requests"] = total
	s.f["deploy_requests_failed"] = failed
	if len(reasons) > 0 {
		s.f["deploy_not_completed"] = reasons
	}
	if f := l.Failures(); len(f) > 0 {
		s.f["deploy_first_failures"] = f
	}
	if len(pending) > 0 {
		return fmt.Errorf("%d deployments still in progress after %s", len(pending), timeout)
	}
	return nil
}

// docker runs the docker command, for at most two minutes, and returns
// its standard output.
func docker(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", args[0], err, firstLine(stderr.String()))
	}
	return out, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func (s *scaleRun) summary() string {
	f := s.f
	num := func(k, format string) string {
		v, ok := f[k]
		if !ok {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	failed := ""
	if len(s.problems) > 0 {
		failed = fmt.Sprintf("; %d problems (see errors), the first: %s", len(s.problems), s.problems[0])
	}
	return fmt.Sprintf("%d services, %s/%d tasks healthy %s s after creating; beyond the container %s MiB/task (shims and docker-proxies %s MiB/task); server RSS %s MiB, proxy RSS %s MiB, idle CPU %s%% of a core; "+
		"list p99 %s ms (describe p99 %s ms); listener %s req/s vs %s with 1 service (%s×); kill of %s tasks: healthy again after %s s (%s s/task; the engine alone %s s/container, %s×), %s healthy tasks drained; "+
		"%s concurrent deployments: %s completed, %s rolled back, %s failed requests%s",
		len(s.svcs), num("tasks_healthy", "%d"), scaleTasks*len(s.svcs), num("create_to_all_healthy_s", "%.1f"), num("beyond_container_per_task_mib", "%.1f"), num("shim_and_docker_proxy_anon_per_task_mib", "%.1f"),
		num("server_rss_mib", "%.1f"), num("proxy_rss_mib", "%.1f"), num("idle_cpu_pct", "%.2f"),
		num("list_p99_ms", "%.2f"), num("describe_p99_ms", "%.2f"), num("listener_rps_n_services", "%.0f"), num("listener_rps_1_service", "%.0f"), num("listener_rps_n_vs_1", "%.2f"),
		num("kill_tasks", "%d"), num("kill_to_all_healthy_s", "%.1f"), num("kill_s_per_task", "%.3f"), num("engine_start_s_per_container", "%.3f"), num("kill_per_task_vs_engine", "%.2f"), num("kill_healthy_tasks_drained", "%d"),
		num("deployments", "%d"), num("deploy_completed", "%d"), num("deploy_rolled_back", "%d"), num("deploy_requests_failed", "%d"), failed)
}
