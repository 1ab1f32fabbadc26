package server

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"10m", now.Add(-10 * time.Minute), false},
		{"1h30m", now.Add(-90 * time.Minute), false},
		{"2d", now.AddDate(0, 0, -2), false},
		{"2026-03-10T11:00:00Z", now.Add(-time.Hour), false},
		{"2026-03-10T11:00:00.5+01:00", time.Date(2026, 3, 10, 10, 0, 0, 5e8, time.UTC), false},
		{"-5m", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"d", time.Time{}, true},
	}
	for _, c := range cases {
		got, err := ParseSince(c.in, now)
		if (err != nil) != c.bad || !got.Equal(c.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
}
