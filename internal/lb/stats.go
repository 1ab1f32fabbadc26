package lb

import (
	"math"
	"sync"
	"time"
)

// Window summarises a target group's traffic over a recent period.
type Window struct {
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors_5xx"`
	P99Ms    float64 `json:"p99_ms"`
}

const (
	statSeconds = 120
	latBuckets  = 48 // log-spaced from 0.05 ms to about 5 minutes
)

type second struct {
	unix     int64
	requests int64
	errors   int64
	lat      [latBuckets]int64
}

// stats keeps per-second counters and latency histograms for two minutes.
type stats struct {
	mu   sync.Mutex
	ring [statSeconds]second
}

func newStats() *stats { return &stats{} }

func bucketOf(d time.Duration) int {
	ms := float64(d.Microseconds()) / 1000
	if ms <= 0.05 {
		return 0
	}
	b := int(math.Log(ms/0.05) / math.Log(1.4))
	if b >= latBuckets {
		b = latBuckets - 1
	}
	return b
}

func bucketUpper(b int) float64 { return 0.05 * math.Pow(1.4, float64(b+1)) }

func (s *stats) record(status int, d time.Duration) {
	now := time.Now().Unix()
	s.mu.Lock()
	sec := &s.ring[now%statSeconds]
	if sec.unix != now {
		*sec = second{unix: now}
	}
	sec.requests++
	if status >= 500 || status == 0 {
		sec.errors++
	}
	sec.lat[bucketOf(d)]++
	s.mu.Unlock()
}

func (s *stats) window(w time.Duration) Window {
	if w <= 0 {
		w = 10 * time.Second
	}
	secs := int64(w / time.Second)
	if secs < 1 {
		secs = 1
	}
	if secs > statSeconds {
		secs = statSeconds
	}
	now := time.Now().Unix()
	out := Window{Seconds: float64(secs)}
	var lat [latBuckets]int64
	s.mu.Lock()
	for i := int64(0); i < secs; i++ {
		sec := s.ring[(now-i)%statSeconds]
		if sec.unix != now-i {
			continue
		}
		out.Requests += sec.requests
		out.Errors += sec.errors
		for b, n := range sec.lat {
			lat[b] += n
		}
	}
	s.mu.Unlock()
	if out.Requests > 0 {
		limit := int64(math.Ceil(float64(out.Requests) * 0.99))
		var seen int64
		for b, n := range lat {
			seen += n
			if seen >= limit {
				out.P99Ms = math.Round(bucketUpper(b)*100) / 100
				break
			}
		}
	}
	return out
}
