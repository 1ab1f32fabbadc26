package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestCertificatesRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		if list, err := db.ListCertificates(ctx); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListCertificates of none = %#v, %v", list, err)
		}
		// Times the caller gives keep their microseconds; nanoseconds go.
		nb := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
		na := nb.Add(90 * 24 * time.Hour)
		certs := []Certificate{
			{Name: "b.example", Hosts: []string{"b.example", "*.b.example", "xn--bcher-kva.example"}, CertPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
				NotBefore: nb, NotAfter: na, Issuer: "CN=R3,O=Let's Encrypt", Fingerprint: "ab:cd", Source: CertACME, UpdatedBy: "acme"},
			{Name: "a.example", Hosts: []string{"a.example"}, CertPEM: "PEM", NotBefore: nb, NotAfter: na, Issuer: "CN=ca", Fingerprint: "01", Source: CertUploaded, UpdatedBy: "alice"},
		}
		from := time.Now()
		for i, c := range certs {
			if err := db.PutCertificate(ctx, c, []byte{byte(i), 0, 0xff}); err != nil {
				t.Fatal(err)
			}
		}
		to := time.Now()
		list, err := db.ListCertificates(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "a.example" || list[1].Name != "b.example" {
			t.Fatalf("ListCertificates = %+v, %v; want by name", list, err)
		}
		want := certs[0]
		want.NotBefore, want.NotAfter = nb.UTC().Truncate(time.Microsecond), na.UTC().Truncate(time.Microsecond)
		want.UpdatedAt = list[1].UpdatedAt
		if !within(list[1].UpdatedAt, from, to) || !reflect.DeepEqual(list[1], want) {
			t.Fatalf("listed:\n got %#v\nwant %#v", list[1], want)
		}
		got, key, err := db.SealedCertificate(ctx, "b.example")
		if err != nil || !reflect.DeepEqual(got, want) || !bytes.Equal(key, []byte{0, 0, 0xff}) {
			t.Fatalf("SealedCertificate = %+v, %q, %v", got, key, err)
		}

		// A renewal failure is kept, with its time, until the next certificate.
		from = time.Now()
		if err := db.SetCertificateError(ctx, "b.example", "acme: urn:ietf:params:acme:error:rateLimited: too many certificates"); err != nil {
			t.Fatal(err)
		}
		got, _, _ = db.SealedCertificate(ctx, "b.example")
		if got.LastError != "acme: urn:ietf:params:acme:error:rateLimited: too many certificates" || !within(got.LastErrorAt, from, time.Now()) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("after SetCertificateError: %+v", got)
		}
		if err := db.SetCertificateError(ctx, "a.example", "acme: \xff\x00"); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := db.SealedCertificate(ctx, "a.example"); got.LastError != "acme: \uFFFD\uFFFD" {
			t.Fatalf("an error of bytes that are not text: %q", got.LastError)
		}
		if err := db.PutCertificate(ctx, certs[1], []byte{1, 0, 0xff}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetCertificateError(ctx, "nope.example", "x"); err != nil {
			t.Fatalf("SetCertificateError of an unknown certificate: %v", err)
		}
		if list, _ := db.ListCertificates(ctx); len(list) != 2 || list[0].LastError != "" || !list[0].LastErrorAt.IsZero() {
			t.Fatalf("the other certificate after SetCertificateError: %+v", list)
		}
		renewed := certs[0]
		renewed.Hosts, renewed.Fingerprint = []string{"b.example"}, "ef"
		if err := db.PutCertificate(ctx, renewed, []byte("k2")); err != nil {
			t.Fatal(err)
		}
		got, key, _ = db.SealedCertificate(ctx, "b.example")
		if got.LastError != "" || !got.LastErrorAt.IsZero() || got.Fingerprint != "ef" || len(got.Hosts) != 1 || string(key) != "k2" || !got.UpdatedAt.After(want.UpdatedAt) && !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("after the renewal: %+v, %q", got, key)
		}
	})
}

// Servers creating an ACME account at once all go on with one key, the
// first stored; certificates put at once leave one whole certificate.
func TestConcurrentACMEAccountsAndCertificates(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := s.open(t)
		keys := make([][]byte, racers)
		errs := race(t, db, func(i int) error {
			k, err := db.PutACMEAccountKey(ctx, "https://acme.example/directory", fmt.Appendf(nil, "key-%d", i))
			keys[i] = k
			return err
		})
		stored, err := db.ACMEAccountKey(ctx, "https://acme.example/directory")
		if err != nil {
			t.Fatal(err)
		}
		for i := range racers {
			if errs[i] != nil || !bytes.Equal(keys[i], stored) {
				t.Errorf("PutACMEAccountKey %d = %q, %v; want the key stored, %q", i, keys[i], errs[i], stored)
			}
		}
		if _, err := db.ACMEAccountKey(ctx, "https://other.example/directory"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another directory's key: %v, want ErrNotFound", err)
		}

		errs = race(t, db, func(i int) error {
			n := fmt.Sprint(i)
			return db.PutCertificate(ctx, Certificate{Name: "a.example", Hosts: []string{"a.example"}, CertPEM: "pem" + n, Fingerprint: "fp" + n,
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), Source: CertACME, UpdatedBy: "server" + n}, []byte("key"+n))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("PutCertificate %d: %v", i, err)
			}
		}
		c, key, err := db.SealedCertificate(ctx, "a.example")
		if err != nil || c.CertPEM[3:] != c.Fingerprint[2:] || string(key[3:]) != c.Fingerprint[2:] || c.UpdatedBy[6:] != c.Fingerprint[2:] {
			t.Fatalf("certificate after the race: %+v, %q, %v; want one put's whole", c, key, err)
		}
	})
}

// A container may write anything; PostgreSQL's text holds neither NUL
// nor bytes that are not UTF-8. Such a line is kept on either engine with
// U+FFFD in their place, as the API's JSON would show it, rather than
// refused with the lines stored with it.
func TestTaskLogLinesOfAnyBytes(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		if err := db.AppendTaskLogs(ctx, nil); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 1, 12, 0, 0, 1, time.UTC)
		cases := []struct{ in, want string }{
			{"plain", "plain"},
			{"ünïcødé ✓ 🚀", "ünïcødé ✓ 🚀"},
			{"nul\x00byte", "nul\uFFFDbyte"},
			{"latin-1 caf\xe9", "latin-1 caf\uFFFD"},
			{"cut \xe2\x9c", "cut \uFFFD"},
			{"\x1b[31mred\x1b[0m\ttab\r", "\x1b[31mred\x1b[0m\ttab\r"},
			{"", ""},
		}
		var lines []TaskLogLine
		for i, c := range cases {
			lines = append(lines, TaskLogLine{App: "a", Env: "staging", Service: "web", Task: "t1", Container: "web", Source: "stdout", At: at.Add(time.Duration(i)), Line: c.in})
		}
		if err := db.AppendTaskLogs(ctx, lines); err != nil {
			t.Fatal(err)
		}
		got, err := db.ListTaskLogs(ctx, TaskLogQuery{App: "a", Env: "staging", Service: "web"})
		if err != nil || len(got) != len(cases) {
			t.Fatalf("ListTaskLogs = %+v, %v", got, err)
		}
		for i, c := range cases {
			if got[i].Line != c.want || !got[i].At.Equal(at.Add(time.Duration(i))) {
				t.Errorf("stored %q at %v as %q at %v, want %q", c.in, at.Add(time.Duration(i)), got[i].Line, got[i].At, c.want)
			}
		}
		if last, err := db.LastTaskLogAt(ctx, "t1", "web"); err != nil || !last.Equal(at.Add(time.Duration(len(cases)-1))) {
			t.Fatalf("LastTaskLogAt = %v, %v", last, err)
		}
	})
}

// Collectors appending at once each keep their lines in their order, and
// a follower paging by id misses none.
func TestConcurrentTaskLogAppends(t *testing.T) {
	eachStore(t, func(t *testing.T, s testStore) {
		ctx := context.Background()
		db := openWithApps(t, s, "a")
		const perTask = 50
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		errs := race(t, db, func(i int) error {
			for batch := range 5 {
				var lines []TaskLogLine
				for j := range perTask / 5 {
					n := batch*perTask/5 + j
					lines = append(lines, TaskLogLine{App: "a", Env: "staging", Service: "web", Task: fmt.Sprintf("t%d", i), Container: "web", Source: "stdout",
						At: base.Add(time.Duration(n) * time.Millisecond), Line: fmt.Sprint(n)})
				}
				if err := db.AppendTaskLogs(ctx, lines); err != nil {
					return err
				}
			}
			return nil
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("AppendTaskLogs %d: %v", i, err)
			}
		}
		var all []TaskLogLine
		for after := int64(0); ; {
			page, err := db.ListTaskLogs(ctx, TaskLogQuery{App: "a", Env: "staging", Service: "web", AfterID: after, Limit: 37})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].ID
		}
		if len(all) != racers*perTask {
			t.Fatalf("%d lines read, want %d", len(all), racers*perTask)
		}
		next := map[string]int{}
		for _, l := range all {
			if l.Line != fmt.Sprint(next[l.Task]) {
				t.Fatalf("task %s: line %q after %d lines", l.Task, l.Line, next[l.Task])
			}
			next[l.Task]++
		}
	})
}
