package tlscert

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

func TestParse(t *testing.T) {
	ca := tlstest.NewCA(t)
	now := time.Now()
	good, goodKey := ca.IssueNow(t, "a.test", "*.b.test")
	_, otherKey := ca.IssueNow(t, "a.test")
	expired, expiredKey := ca.Issue(t, now.Add(-48*time.Hour), now.Add(-time.Hour), "a.test")
	future, futureKey := ca.Issue(t, now.Add(time.Hour), now.Add(48*time.Hour), "a.test")
	cases := []struct {
		name      string
		cert, key []byte
		field     string
		reason    string
	}{
		{"good", good, goodKey, "", ""},
		{"mismatched key", good, otherKey, "key", "is not the key of the certificate"},
		{"expired", expired, expiredKey, "cert", "expired on "},
		{"not yet valid", future, futureKey, "cert", "is not valid before"},
		{"key for cert", goodKey, goodKey, "cert", "is not a PEM certificate"},
		{"cert for key", good, good, "key", "is not a PEM private key"},
		{"empty", nil, nil, "cert", "is not a PEM certificate"},
		{"huge", make([]byte, MaxPEM+1), goodKey, "cert", "at most"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Parse(tc.cert, tc.key, now)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(info.Hosts) != 2 || info.Hosts[1] != "*.b.test" || len(info.Fingerprint) != 64 || !info.NotAfter.After(now) {
					t.Fatalf("info %+v", info)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("Parse() = %v, want %s: …%s…", err, tc.field, tc.reason)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		want       bool
	}{
		{"a.test", "a.test", true},
		{"a.test", "A.TEST", true},
		{"*.b.test", "x.b.test", true},
		{"*.b.test", "b.test", false},
		{"*.b.test", "y.x.b.test", false},
		{"*.b.test", ".b.test", false},
		{"a.test", "b.test", false},
	} {
		if got := Covers(tc.name, tc.host); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v", tc.name, tc.host, got)
		}
	}
}
