// Command webapp is the test service: it reports its version, answers health
// checks (failing when UNHEALTHY=1), and can be slow, slow to start
// (START_DELAY) or crash on demand.
package main

import (
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"
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
