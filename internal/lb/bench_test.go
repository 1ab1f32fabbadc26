package lb

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkProxy measures one keep-alive client request through a listener
// to one healthy target, against the same request sent to the target directly.
func BenchmarkProxy(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bal := New(ctx, quiet())
	defer bal.Close(context.Background())
	be := backend(&testing.T{}, "be", nil)
	defer be.Close()
	addr := freeAddr(&testing.T{})
	if err := bal.Apply(Config{TargetGroups: map[string]TargetGroup{"tg": {Targets: []string{hostOf(be)}, HealthCheck: fastCheck}},
		Listeners: map[string]Listener{"web": {Addr: addr, Routes: []Route{{"tg", 100}}}}}); err != nil {
		b.Fatal(err)
	}
	for bal.State(time.Second).TargetGroups["tg"].Targets[0].State != StateHealthy {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct{ name, url string }{{"direct", be.URL + "/"}, {"proxied", "http://" + addr + "/"}} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(c.url)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}
