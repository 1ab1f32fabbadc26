package certs

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/secret"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/tlscert"
	"github.com/slipway-dev/slipway/internal/tlscert/tlstest"
)

// newManager is a manager on a real store and keyring, recording what it
// applies and reports; no ACME.
func newManager(t *testing.T) (*Manager, *store.DB, *recorder) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	keys, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := &Manager{Store: db, Keys: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Apply:   func(context.Context) error { rec.add("apply"); return nil },
		Problem: func(_ context.Context, host, msg string) { rec.add(host + ": " + msg) }}
	return m, db, rec
}

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func claim(t *testing.T, db *store.DB, name, host string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.GetApp(ctx, "shop"); err != nil {
		if _, err := db.CreateApp(ctx, store.App{Name: "shop", Environments: []string{"prod"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RegisterTaskDef(ctx, "f", []byte(`{"family":"f","containerDefinitions":[]}`), "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CreateService(context.Background(), store.Service{App: "shop", Env: "prod", Name: name, Family: "f", Revision: 1,
		LoadBalancer: &store.LoadBalancer{ContainerName: "web", ContainerPort: 80, Host: host, HTTPS: true}}); err != nil {
		t.Fatal(err)
	}
}

func TestAddSealsTheKeyAndServesIt(t *testing.T) {
	m, db, rec := newManager(t)
	ctx := context.Background()
	ca := tlstest.NewCA(t)
	crt, key := ca.IssueNow(t, "a.test", "*.a.test")
	c, err := m.Add(ctx, crt, key, "", "admin")
	if err != nil || c.Name != "a.test" || c.Source != store.CertUploaded {
		t.Fatalf("Add = %+v, %v", c, err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "apply" {
		t.Fatalf("Add applied %v, want one apply", got)
	}
	_, sealed, err := db.SealedCertificate(ctx, "a.test")
	if err != nil || strings.Contains(string(sealed), "PRIVATE KEY") {
		t.Fatalf("stored key %q, %v: want it sealed", sealed, err)
	}
	list, err := m.ForLB(ctx)
	if err != nil || len(list) != 1 || list[0].KeyPEM != string(key) {
		t.Fatalf("ForLB = %v, %v", list, err)
	}
	// A bad pair is refused with the field and nothing is stored.
	_, otherKey := ca.IssueNow(t, "b.test")
	var ce *tlscert.Error
	if _, err := m.Add(ctx, crt, otherKey, "", "admin"); !errors.As(err, &ce) || ce.Field != "key" {
		t.Fatalf("Add of a mismatched key = %v", err)
	}
	if _, err := m.Add(ctx, crt, key, "b.test", "admin"); !errors.As(err, &ce) || ce.Field != "host" || !strings.Contains(ce.Reason, "holds a.test, *.a.test, not b.test") {
		t.Fatalf("Add for a host it does not hold = %v", err)
	}
	if err := m.Remove(ctx, "a.test"); err != nil {
		t.Fatal(err)
	}
	if list, _ := m.ForLB(ctx); len(list) != 0 {
		t.Fatalf("after Remove ForLB = %d certificates", len(list))
	}
}

func TestCheckReportsMissingAndExpiringCertificates(t *testing.T) {
	m, db, rec := newManager(t)
	ctx := context.Background()
	ca := tlstest.NewCA(t)
	claim(t, db, "web", "www.shop.test")
	claim(t, db, "api", "api.shop.test")
	claim(t, db, "wild", "*.tenants.test")
	now := time.Now()
	m.Now = func() time.Time { return now }
	// api's certificate expires in ten days; nobody renews one brought by hand.
	crt, key := ca.Issue(t, now.Add(-time.Hour), now.Add(10*24*time.Hour), "api.shop.test")
	if _, err := m.Add(ctx, crt, key, "", "admin"); err != nil {
		t.Fatal(err)
	}
	rec.take()
	m.Check(ctx)
	got := strings.Join(rec.take(), "\n")
	for _, want := range []string{
		"www.shop.test: no certificate holds host www.shop.test: HTTPS clients get the default certificate; add one with `slipway cert add",
		"*.tenants.test: no certificate holds host *.tenants.test",
		"api.shop.test: certificate api.shop.test expires on ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("reports lack %q:\n%s", want, got)
		}
	}
	// The same problems are not reported again at every check.
	m.Check(ctx)
	if again := rec.take(); len(again) != 0 {
		t.Fatalf("second check reported again: %v", again)
	}
	// Once expired, it leaves the load balancer's table and the report says so.
	if list, _ := m.ForLB(ctx); len(list) != 1 {
		t.Fatalf("ForLB = %d certificates, want 1", len(list))
	}
	now = now.Add(11 * 24 * time.Hour)
	m.Check(ctx)
	got = strings.Join(rec.take(), "\n")
	if !strings.Contains(got, "api.shop.test: certificate api.shop.test expired on") || !strings.Contains(got, "apply") || strings.Contains(got, "no certificate holds host api.shop.test") {
		t.Fatalf("after expiry: %s", got)
	}
	if list, _ := m.ForLB(ctx); len(list) != 0 {
		t.Fatalf("an expired certificate is still served: %d", len(list))
	}
}

func TestBackoffDoublesToAnHour(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {6, 32 * time.Minute}, {7, time.Hour}, {20, time.Hour}} {
		if got := backoff(c.n, time.Minute); got != c.want {
			t.Errorf("backoff(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}
