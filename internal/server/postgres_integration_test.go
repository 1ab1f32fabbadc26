package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/testtool/pgtest"
)

// TestIntegrationPostgresStore runs the demo flow (push, build, image,
// deploy) on a server whose state is in a real PostgreSQL, restarts the
// server on the same database, and checks what a lost database does to
// requests: 503 with a reason, and service again once it is back.
func TestIntegrationPostgresStore(t *testing.T) {
	dsn := pgtest.New(t)
	data := t.TempDir()
	app := fmt.Sprintf("pgs%d", time.Now().UnixNano()%1e6)
	cleanupRuntimeDB(t, app, data, dsn)
	env := []string{"SLIPWAY_DATABASE=" + dsn, "SLIPWAY_LEASE_TTL=2s"}
	srv := startProcServerEnv(t, slipwayBinary(t), data, "", env...)
	srv.createApp(app)
	prodPort := freePort(t)
	files := func(version string) map[string]string {
		return webappPipeline(t, app, version, "", fmt.Sprintf(`strategy: blue-green
			desired-count: 1
			listener-port: %d
			health-check-path: /health`, prodPort))
	}
	w := newWork(t)
	shipVersion(t, srv, w, app, 1, files("1"), prodPort)
	// The state is in PostgreSQL, not beside the data.
	if _, err := os.Stat(filepath.Join(data, "slipway.db")); !os.IsNotExist(err) {
		t.Errorf("DATA/slipway.db exists with --database: %v", err)
	}
	db, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := db.ListRuns(context.Background(), app, store.Page{})
	db.Close()
	if err != nil || len(runs) != 1 || runs[0].State != store.RunSucceeded {
		t.Fatalf("runs in PostgreSQL: %+v %v", runs, err)
	}

	// A second version deploys blue/green after a restart on the same database.
	srv = srv.restartEnv(env...)
	shipVersion(t, srv, w, app, 2, files("2"), prodPort)

	// PostgreSQL goes away for longer than the control lease lasts:
	// requests get 503 with a reason, the app keeps serving, and the server
	// stops its loops until it holds the lease again.
	pg := pgtest.Server(t)
	pg.Stop(t)
	down := time.Now()
	code, body := srv.call("GET", "/api/v1/runs?app="+app, srv.Admin, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(body), "database is unreachable") {
		t.Errorf("with the database down: %d %v", code, body)
	}
	if code, body := getURL(t, fmt.Sprintf("http://127.0.0.1:%d/", prodPort)); code != 200 || !strings.HasPrefix(body, "version=2") {
		t.Errorf("the app with the database down: %d %s", code, body)
	}
	time.Sleep(time.Until(down.Add(5 * time.Second)))
	pg.Start(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = srv.call("GET", "/api/v1/runs?app="+app, srv.Admin, nil)
		if code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("with the database back: %d %v", code, body)
	}
	// The control loops are back: a third version builds and deploys.
	shipVersion(t, srv, w, app, 3, files("3"), prodPort)
	if log, _ := os.ReadFile(filepath.Join(data, "server.log")); !strings.Contains(string(log), "lost the control lease") {
		t.Errorf("the server did not say it lost the control lease while the database was down")
	}
}

// A server whose database cannot be reached does not start, and says which
// database without its password.
func TestIntegrationPostgresUnreachableAtStart(t *testing.T) {
	cmd := exec.Command(slipwayBinary(t), "server", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--database", "postgres://slipway:hunter2-secret@127.0.0.1:1/slipway?connect_timeout=2")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("server started without its database:\n%s", out)
	}
	text := string(out)
	if !strings.Contains(text, "postgres://slipway:xxxxx@127.0.0.1:1/slipway") || !strings.Contains(text, "unreachable") {
		t.Errorf("the error does not name the database and what is wrong:\n%s", text)
	}
	if strings.Contains(text, "hunter2-secret") {
		t.Errorf("the error shows the password:\n%s", text)
	}
}
