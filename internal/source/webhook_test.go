package source

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

func TestPayloadMemoryIsBounded(t *testing.T) {
	key := func(app, body string) payloadKey {
		return payloadKey{app: app, digest: sha256.Sum256([]byte(body))}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		add    []payloadKey // added one second apart from t0
		check  payloadKey
		at     time.Duration // after t0
		seen   bool
		window time.Duration
		limit  int
	}{
		{name: "remembered", add: []payloadKey{key("a", "p1")}, check: key("a", "p1"), at: time.Minute, seen: true},
		{name: "other payload", add: []payloadKey{key("a", "p1")}, check: key("a", "p2"), at: time.Minute},
		{name: "same payload, other app", add: []payloadKey{key("a", "p1")}, check: key("b", "p1"), at: time.Minute},
		{name: "forgotten after the window", add: []payloadKey{key("a", "p1")}, check: key("a", "p1"), at: time.Hour + time.Second, window: time.Hour},
		{name: "still inside the window", add: []payloadKey{key("a", "p1")}, check: key("a", "p1"), at: time.Hour - time.Second, window: time.Hour, seen: true},
		{name: "oldest dropped over the count", add: []payloadKey{key("a", "p1"), key("a", "p2"), key("a", "p3")}, check: key("a", "p1"), at: time.Minute, limit: 2},
		{name: "newest kept over the count", add: []payloadKey{key("a", "p1"), key("a", "p2"), key("a", "p3")}, check: key("a", "p3"), at: time.Minute, limit: 2, seen: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &payloadMemo{window: c.window, limit: c.limit}
			for i, k := range c.add {
				m.add(k, t0.Add(time.Duration(i)*time.Second))
			}
			if got := m.contains(c.check, t0.Add(c.at)); got != c.seen {
				t.Fatalf("contains = %v, want %v", got, c.seen)
			}
		})
	}
}

func TestPayloadMemoryNeverGrowsPastItsCap(t *testing.T) {
	m := &payloadMemo{limit: 100}
	t0 := time.Now()
	for i := range 1000 {
		m.add(payloadKey{app: "a", digest: sha256.Sum256(fmt.Appendf(nil, "p%d", i))}, t0)
	}
	if n := m.len(); n != 100 {
		t.Fatalf("%d payloads remembered, want 100", n)
	}
}
