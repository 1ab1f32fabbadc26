// Package pgtest runs a real PostgreSQL server for tests, so that code
// written for PostgreSQL is tested against PostgreSQL: its SQL dialect,
// its locking, its errors and its behaviour when the server goes away,
// none of which a mock or another database reproduces.
//
// The server comes from the machine's PostgreSQL binaries (`pg_config
// --bindir`, else the newest /usr/lib/postgresql/*/bin), never from a
// system service: CI and developers get them from Debian's package
// (`apt-get install postgresql`), and a test skips, saying so, where they
// are missing. One server is started per test binary, on first use, in a
// temporary directory with durability turned off (fsync,
// synchronous_commit and full_page_writes off), listening only on a Unix
// socket; New gives each test a fresh database of its own on it.
//
// A package that uses pgtest must run its tests through RunMain, which
// stops the server and removes its files when they end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
//
// If the test binary dies first, the kernel kills the server
// (testtool.SysProcAttr).
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI
// does), pgtest runs initdb and postgres as the `postgres` user that
// Debian's package creates, with the server's directories given to it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-dev/slipway/internal/testtool"
)

// User is the superuser the server is initialised with; it connects with
// no password.
const User = "slipway"

// port only names the socket file (.s.PGSQL.PORT) in the server's own
// directory: the server listens on no TCP port.
const port = 5432

// PG is the test binary's PostgreSQL server.
type PG struct {
	// Dir is the data directory.
	Dir string
	// Socket is the directory that holds the server's Unix socket.
	Socket string
	// Port is the port in the socket's name; clients need it with Socket.
	Port int

	bin     string   // the directory with initdb and postgres
	root    string   // the temporary directory holding everything else
	log     string   // the server's output, across restarts
	logFile *os.File // log, open for appending
	attr    func() *syscall.SysProcAttr

	mu   sync.Mutex
	proc *process // nil while stopped
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

var shared struct {
	mu      sync.Mutex
	inMain  bool   // RunMain is running the tests
	started bool   // the first start was tried
	skip    string // why every test that needs the server skips
	err     error  // why the first start failed
	pg      *PG
}

var dbSeq atomic.Int64

// RunMain runs the tests, then stops the server if one was started and
// removes its files. Call it from TestMain: os.Exit(pgtest.RunMain(m)).
func RunMain(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if pg := shared.pg; pg != nil {
		if err := pg.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n%s", err, pg.logTail())
			if code == 0 {
				code = 1
			}
		}
		pg.remove()
		shared.pg = nil
	}
	return code
}

// Server returns the running server, starting it on first use. It skips
// the test if PostgreSQL is not installed and fails it if the server
// cannot start. A test that stops the server finds it started again at
// its end, for the tests after it; such a test must not run in parallel
// with others that use the server.
func Server(t testing.TB) *PG {
	t.Helper()
	pg := server(t)
	t.Cleanup(func() {
		if err := pg.startIfStopped(); err != nil {
			t.Errorf("pgtest: start the server again after the test: %v\n%s", err, pg.logTail())
		}
	})
	return pg
}

// New creates an empty database for this test and returns its DSN, a URL
// that pgx and lib/pq accept:
//
//	postgres://slipway@/NAME?host=SOCKETDIR&port=PORT&sslmode=disable
//
// The database is dropped when the test ends, its open connections
// closed by force. New skips the test if PostgreSQL is not installed.
func New(t testing.TB) string {
	t.Helper()
	pg := server(t)
	name := dbName(t.Name())
	if err := pg.admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v\n%s", name, err, pg.logTail())
	}
	t.Cleanup(func() {
		err := pg.startIfStopped()
		if err == nil {
			err = pg.admin("DROP DATABASE " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)")
		}
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v\n%s", name, err, pg.logTail())
		}
	})
	return pg.DSN(name)
}

// DSN is the URL of database dbname on this server.
func (pg *PG) DSN(dbname string) string {
	// Slashes are fine in a query value, and keep the URL readable.
	host := strings.ReplaceAll(url.QueryEscape(pg.Socket), "%2F", "/")
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		User, url.PathEscape(dbname), host, pg.Port)
}

// Stop shuts the server down (a fast shutdown: open connections are
// closed and their transactions rolled back) and waits for it to exit,
// to see how clients fare when PostgreSQL goes away. The data stays for
// Start. Stopping a stopped server does nothing.
func (pg *PG) Stop(t testing.TB) {
	t.Helper()
	if err := pg.stop(); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, pg.logTail())
	}
}

// Start starts a stopped server again on the same data, socket and port,
// and waits until it accepts connections. Starting a running server does
// nothing.
func (pg *PG) Start(t testing.TB) {
	t.Helper()
	if err := pg.startIfStopped(); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, pg.logTail())
	}
}

// server returns the shared server, starting it on the first call.
func server(t testing.TB) *PG {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("pgtest: the package's TestMain must run its tests with pgtest.RunMain, which stops the server")
	}
	if !shared.started {
		shared.started = true
		begin := time.Now()
		shared.pg, shared.skip, shared.err = setup()
		if shared.err == nil && shared.skip == "" {
			t.Logf("pgtest: PostgreSQL from %s started in %v", shared.pg.bin, time.Since(begin).Round(time.Millisecond))
		}
	}
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.pg
}

// setup creates and starts the server. It returns a reason to skip if
// PostgreSQL is not installed, and an error, with the server's last words
// in it, if it does not start.
func setup() (_ *PG, skip string, _ error) {
	bin := findBin()
	if bin == "" {
		return nil, "pgtest: PostgreSQL's server binaries (initdb, postgres) not found; apt-get install postgresql", nil
	}
	pg := &PG{Port: port, bin: bin, attr: testtool.SysProcAttr}
	var uid, gid int
	asRoot := os.Geteuid() == 0
	if asRoot {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "", fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as (Debian's postgresql package creates one): %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if testtool.SysProcAttrAs(uint32(uid), uint32(gid)) == nil {
			return nil, "pgtest: PostgreSQL refuses to run as root, and here it cannot be started as another user; run the tests as another user", nil
		}
		pg.attr = func() *syscall.SysProcAttr { return testtool.SysProcAttrAs(uint32(uid), uint32(gid)) }
	}

	root, err := tempDir(asRoot)
	if err != nil {
		return nil, "", err
	}
	pg.root, pg.Socket, pg.Dir = root, root, filepath.Join(root, "data")
	pg.log = filepath.Join(root, "postgres.log")
	fail := func(err error) (*PG, string, error) {
		err = fmt.Errorf("%w\n%s", err, pg.logTail())
		pg.remove()
		return nil, "", err
	}
	if pg.logFile, err = os.OpenFile(pg.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
		return fail(err)
	}
	if asRoot {
		if err := os.Chown(root, uid, gid); err != nil {
			return fail(err)
		}
	}

	initdb := pg.command("initdb", "-D", pg.Dir, "-U", User, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err := initdb.Run(); err != nil {
		return fail(fmt.Errorf("initdb: %v", err))
	}
	if err := pg.startIfStopped(); err != nil {
		return fail(err)
	}
	return pg, "", nil
}

// findBin is the directory with initdb and postgres: pg_config's, else the
// newest of Debian's /usr/lib/postgresql/VERSION/bin; "" if none.
func findBin() string {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" && has(dir) {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) []int { // "9.6" → [9 6]; "17" → [17]
		var v []int
		for f := range strings.SplitSeq(filepath.Base(filepath.Dir(dir)), ".") {
			n, _ := strconv.Atoi(f)
			v = append(v, n)
		}
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return slices.Compare(version(b), version(a)) })
	for _, dir := range dirs {
		if has(dir) {
			return dir
		}
	}
	return ""
}

// tempDir makes the server's directory. It holds the socket, whose path
// the kernel limits to 107 bytes, so it is made directly in a temporary
// directory, and in /tmp if that one's name is too long or, for the
// postgres user when we are root, out of reach.
func tempDir(asRoot bool) (string, error) {
	const socketName = "/.s.PGSQL.65535.lock"
	base := os.TempDir()
	if len(base)+len("/pg1234567890")+len(socketName) > 107 ||
		strings.ContainsAny(base, " #%&+?") || asRoot && !traversable(base) {
		base = "/tmp"
	}
	return os.MkdirTemp(base, "pg")
}

// traversable reports whether anyone may pass through dir and its parents.
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// command runs one of PostgreSQL's programs, as the postgres user if we
// are root, writing its output to the log.
func (pg *PG) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.root
	cmd.SysProcAttr = pg.attr()
	cmd.Env = append(os.Environ(), "LC_MESSAGES=C")
	// A file, not a pipe: the server's children inherit it, and a pipe
	// would keep cmd.Wait waiting for them after the server is gone.
	cmd.Stdout, cmd.Stderr = pg.logFile, pg.logFile
	return cmd
}

// startIfStopped starts the server unless it runs, and waits for it to
// accept connections.
func (pg *PG) startIfStopped() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.proc != nil {
		select {
		case <-pg.proc.exited:
			pg.proc = nil // it died: start it again
		default:
			return nil
		}
	}
	cmd := pg.command("postgres", "-D", pg.Dir, "-k", pg.Socket, "-p", strconv.Itoa(pg.Port),
		"-c", "listen_addresses=",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	if err := pg.waitReady(p.exited); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return err
	}
	pg.proc = p
	return nil
}

// waitReady waits up to 30 s for the server to accept a connection.
func (pg *PG) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after 30s: %v", err)
		}
		select {
		case <-exited:
			return errors.New("postgres exited during startup")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop shuts the server down if it runs: a fast shutdown, then an
// immediate one, then SIGKILL, each given time to work.
func (pg *PG) stop() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	p := pg.proc
	if p == nil {
		return nil
	}
	pg.proc = nil
	for _, step := range []struct {
		sig  os.Signal
		wait time.Duration
	}{
		{os.Interrupt, 30 * time.Second},    // fast shutdown
		{syscall.SIGQUIT, 10 * time.Second}, // immediate shutdown
	} {
		_ = p.cmd.Process.Signal(step.sig)
		select {
		case <-p.exited:
			return nil
		case <-time.After(step.wait):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return errors.New("postgres ignored SIGINT and SIGQUIT and was killed")
}

// remove deletes the stopped server's files.
func (pg *PG) remove() {
	if pg.logFile != nil {
		_ = pg.logFile.Close()
	}
	_ = os.RemoveAll(pg.root)
}

// admin runs one statement in the postgres database.
func (pg *PG) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// logTail is the end of the server's output.
func (pg *PG) logTail() string {
	b, err := os.ReadFile(pg.log)
	if err != nil || len(b) == 0 {
		return "(postgres wrote nothing)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "postgres's last words:\n" + strings.Join(lines, "\n")
}

// dbName is a unique database name that says which test it belongs to.
func dbName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 45 {
		name = name[:45]
	}
	return fmt.Sprintf("t%d_%s", dbSeq.Add(1), name) // at most 63 bytes
}
