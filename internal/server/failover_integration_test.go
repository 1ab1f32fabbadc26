package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

// TestIntegrationTwoServersFailover: two servers share one PostgreSQL
// database and one data directory. The first runs the control loops and
// the second passes it the API; a push through the second builds and
// deploys. The first is SIGKILLed in the middle of a canary deployment: the
// second takes the control lease within seconds, finishes the deployment
// and the run that started it, and the app answers every request throughout.
func TestIntegrationTwoServersFailover(t *testing.T) {
	dsn := pgtest.New(t)
	data := t.TempDir()
	app := fmt.Sprintf("two%d", time.Now().UnixNano()%1e6)
	cleanupRuntimeDB(t, app, data, dsn)
	env := []string{"SLIPWAY_DATABASE=" + dsn, "SLIPWAY_LEASE_TTL=3s"}
	bin := slipwayBinary(t)
	a := startProcServerEnv(t, bin, data, "", env...)
	b := startProcServerEnv(t, bin, data, "", env...)
	b.Admin = a.Admin

	// Both see both; A controls, and B passes the API to A.
	st := statusOf(t, b.testEnv)
	if len(st.servers) != 2 || st.controller == "" || st.answeredControlling {
		t.Fatalf("status through B: %+v", st)
	}
	b.createApp(app)
	prodPort := freePort(t)
	files := func(version, config string) map[string]string {
		return webappPipeline(t, app, version, "", fmt.Sprintf(`strategy: blue-green
			deployment-config: %s
			termination-wait: 1s
			desired-count: 1
			listener-port: %d
			health-check-path: /health`, config, prodPort))
	}
	w := newWork(t)
	w.commit("v1", files("1", "CodeDeployDefault.ECSAllAtOnce"))
	w.git("push", "-q", repoURL(b.URL, b.Admin, app), "main")
	// B tells A of the run at once (LISTEN/NOTIFY), not at A's next poll.
	pushed := time.Now()
	for {
		if code, r := b.call("GET", "/api/v1/runs/1", b.Admin, nil); code == 200 && r["state"] != "queued" {
			t.Logf("run 1 pushed through B started on A %v after the push", time.Since(pushed).Round(time.Millisecond))
			break
		}
		if time.Since(pushed) > 1500*time.Millisecond {
			t.Fatal("run 1, pushed through B, was still queued on A 1.5 s after the push")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its log, followed through B (which passes the stream on to A), comes
	// as A writes it.
	delays := followDelays(t, b.testEnv, 1)
	if len(delays) < 5 {
		t.Fatalf("followed only %d lines through B", len(delays))
	}
	slices.Sort(delays)
	p99 := delays[len(delays)*99/100]
	t.Logf("%d log lines followed through B: p50 %v, p99 %v after A stored them", len(delays), delays[len(delays)/2].Round(time.Millisecond), p99.Round(time.Millisecond))
	if p99 > 250*time.Millisecond {
		t.Errorf("log lines reached a follower on B %v after they were written (p99), want ≤ 250 ms", p99)
	}
	if run := b.waitRun(1, 240*time.Second); run["state"] != "succeeded" {
		t.Fatalf("first run %v: %v\n%s", run["state"], run["reason"], b.logText(1))
	}
	load := startLoad(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort))

	// The second version holds 20 % of traffic for 12 s; A dies in the hold.
	w.commit("v2", files("2", "Canary20Percent12Seconds"))
	w.git("push", "-q", repoURL(b.URL, b.Admin, app), "main")
	deadline := time.Now().Add(240 * time.Second)
	for {
		code, body := b.call("GET", "/api/v1/deployments?app="+app, b.Admin, nil)
		if code == 200 && strings.Contains(fmt.Sprint(body), "weight:20") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the canary never held 20%%: %d %v\n%s", code, body, b.logText(2))
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.kill()
	killed := time.Now()
	for {
		st := statusOf(t, b.testEnv)
		if st.answeredControlling {
			t.Logf("B took the control lease %v after A was killed", time.Since(killed).Round(10*time.Millisecond))
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("B did not take over: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// B finishes the deployment: v2 serves all traffic.
	deadline = time.Now().Add(90 * time.Second)
	for {
		code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort))
		code2, body2 := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort))
		if code == 200 && code2 == 200 && strings.HasPrefix(body, "version=2") && strings.HasPrefix(body2, "version=2") {
			if _, dep := b.call("GET", "/api/v1/deployments?app="+app, b.Admin, nil); strings.Contains(fmt.Sprint(dep), "IN_PROGRESS") {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the takeover: %d %s / %d %s", code, body, code2, body2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The run that started the deployment follows it again on B, to success.
	if run := b.waitRun(2, 60*time.Second); run["state"] != "succeeded" {
		t.Fatalf("run 2 after the takeover: %v (%v)\n%s", run["state"], run["reason"], b.logText(2))
	}
	if logs := b.logText(2); !strings.Contains(logs, "following deployment") {
		t.Errorf("run 2's log does not say it followed the deployment again:\n%s", logs)
	}
	total, failed := load.Stop()
	if failed > 0 {
		t.Fatalf("%d of %d requests failed across the failover: %v", failed, total, load.Failures())
	}
	t.Logf("%d requests, 0 failed, across the failover", total)
}

type clusterStatus struct {
	servers             []any
	controller          string
	answeredControlling bool
}

func statusOf(t *testing.T, e *testEnv) clusterStatus {
	t.Helper()
	code, body := e.call("GET", "/api/v1/status", e.Admin, nil)
	if code != 200 {
		t.Fatalf("status: %d %v", code, body)
	}
	st := clusterStatus{answeredControlling: body["controlling"] == true}
	st.servers, _ = body["servers"].([]any)
	for _, sv := range st.servers {
		m, _ := sv.(map[string]any)
		leases, _ := m["leases"].([]any)
		for _, l := range leases {
			if lm, _ := l.(map[string]any); lm["name"] == ControlLease {
				st.controller, _ = m["id"].(string)
			}
		}
	}
	return st
}

// followDelays follows run id's log as Server-Sent Events until it ends and
// returns, for each line that arrived while following, how long after the
// line's time it arrived.
func followDelays(t *testing.T, e *testEnv, id int) []time.Duration {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/runs/%d/logs?follow=true", e.URL, id), nil)
	req.Header.Set("Authorization", "Bearer "+e.Admin)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("follow: %s", resp.Status)
	}
	began := time.Now()
	var delays []time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "end":
			return delays
		case strings.HasPrefix(line, "data: ") && event == "line":
			var l struct {
				At time.Time `json:"at"`
			}
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &l) == nil && l.At.After(began) {
				delays = append(delays, time.Since(l.At))
			}
		}
	}
	t.Fatalf("the log stream ended without its end event: %v", sc.Err())
	return nil
}
