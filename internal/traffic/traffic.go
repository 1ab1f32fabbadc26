// Package traffic keeps steady HTTP requests flowing to a service and
// counts the answers. A rollout is judged by what its users saw: the demo,
// the deployment tests and the benchmarks all watch one through it.
package traffic

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options say where and how hard to send.
type Options struct {
	URLs    []string      // the clients take them in turn
	Clients int           // concurrent clients; 8 when 0
	Pause   time.Duration // between one client's requests
	Timeout time.Duration // per request; 10 s when 0
}

// keptFailures bounds the failures kept for a report; all are counted.
const keptFailures = 20

// Load is traffic under way.
type Load struct {
	ok, failed atomic.Int64
	served     sync.Map // first word of the body → *atomic.Int64
	mu         sync.Mutex
	failures   []string
	last       string
	stop       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

// Start starts the clients; Stop ends them.
func Start(o Options) *Load {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	l := &Load{stop: make(chan struct{})}
	hc := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients}}
	for i := 0; i < o.Clients; i++ {
		url := o.URLs[i%len(o.URLs)]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.request(hc, url)
				if o.Pause > 0 {
					time.Sleep(o.Pause)
				}
			}
		}()
	}
	return l
}

func (l *Load) request(hc *http.Client, url string) {
	resp, err := hc.Get(url)
	if err != nil {
		l.fail(err.Error())
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		l.fail(fmt.Sprintf("GET %s: reading the body: %v", url, err))
	case resp.StatusCode != http.StatusOK:
		line, _, _ := bytes.Cut(body, []byte("\n"))
		l.fail(fmt.Sprintf("GET %s: %s %s", url, resp.Status, line))
	default:
		l.ok.Add(1)
		word := string(firstWord(body))
		n, _ := l.served.LoadOrStore(word, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
}

// firstWord is b's first space-separated word, found without splitting
// the rest: it runs once per answer.
func firstWord(b []byte) []byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if i := bytes.IndexAny(b, " \t\r\n"); i >= 0 {
		return b[:i]
	}
	return b
}

func (l *Load) fail(msg string) {
	l.failed.Add(1)
	msg = time.Now().Format("15:04:05.000") + " " + msg
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < keptFailures {
		l.failures = append(l.failures, msg)
	}
	l.last = msg
}

// Stop ends the clients, waits for their requests, and returns how many
// requests were answered and how many of them failed. It may be called
// more than once.
func (l *Load) Stop() (total, failed int64) {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	return l.ok.Load() + l.failed.Load(), l.failed.Load()
}

// OK is the number of 200 answers so far.
func (l *Load) OK() int64 { return l.ok.Load() }

// Failed is the number of failed requests so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// Failures are the first failures, each with its time.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// LastError is the latest failure, or "".
func (l *Load) LastError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Served counts the 200 answers whose body starts with the word w, such
// as "version=2".
func (l *Load) Served(w string) int64 {
	if n, ok := l.served.Load(w); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}
