// Command webapp is the test service: it reports its version, answers health
// checks (failing when UNHEALTHY=1), and can be slow, slow to start
// (START_DELAY), crash on demand, or use CPU and memory on request.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	hogMu  sync.Mutex
	hogged [][]byte
)

func main() {
	if os.Getenv("CRASH") == "1" {
		fmt.Println("crashing as asked")
		os.Exit(2)
	}
	if d, err := time.ParseDuration(os.Getenv("START_DELAY")); err == nil {
		time.Sleep(d)
	}
	version := os.Getenv("VERSION")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("ERRORS") == "1" { // healthy, yet failing its users: what alarms are for
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintf(w, "version=%s host=%s\n", version, os.Getenv("HOSTNAME"))
	})
	// POST /sicken fails this instance's health checks from then on.
	var sick atomic.Bool
	http.HandleFunc("POST /sicken", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("UNHEALTHY") == "1" || sick.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// POST /burn?for=D keeps one CPU busy for D; POST /hog?mib=N holds N MiB.
	http.HandleFunc("POST /burn", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.FormValue("for"))
		if err != nil {
			http.Error(w, "for: "+err.Error(), http.StatusBadRequest)
			return
		}
		go func() {
			for end := time.Now().Add(d); time.Now().Before(end); {
			}
		}()
		w.WriteHeader(http.StatusAccepted)
	})
	http.HandleFunc("POST /hog", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.FormValue("mib"))
		if err != nil || n < 1 {
			http.Error(w, "mib: a whole number of MiB", http.StatusBadRequest)
			return
		}
		b := make([]byte, n<<20)
		for i := range b { // touch every page so it is resident
			b[i] = 1
		}
		hogMu.Lock()
		hogged = append(hogged, b)
		hogMu.Unlock()
	})
	http.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
		fmt.Fprintf(w, "slow version=%s\n", version)
	})
	fmt.Println("listening on :8080, version", version)
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
