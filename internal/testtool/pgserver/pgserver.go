// Package pgserver starts a throwaway PostgreSQL server from the machine's
// binaries. It is the core that pgtest (for tests) and the bench (to
// compare Slipway on SQLite with Slipway on PostgreSQL) share, so it does
// not import "testing".
//
// The binaries are pg_config's (`pg_config --bindir`), else the newest of
// Debian's /usr/lib/postgresql/*/bin (`apt-get install postgresql`). The
// server is initialised in a fresh temporary directory, listens only on a
// Unix socket there, and runs with durability off (fsync,
// synchronous_commit and full_page_writes off): its users measure or test
// Slipway, not the disk. PostgreSQL refuses to run as root, so as root it
// runs as the `postgres` user that Debian's package creates, with the
// directory given to it. If our process dies, the kernel kills the server
// (testtool.SysProcAttr); Close stops it and removes its files.
package pgserver

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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slipway-dev/slipway/internal/testtool"
)

// User is the superuser the server is initialised with; it connects with
// no password.
const User = "slipway"

// port only names the socket file (.s.PGSQL.PORT): there is no TCP.
const port = 5432

// ErrUnavailable is in Start's error when PostgreSQL cannot run here at
// all (not installed, or we are root and cannot switch user), as opposed
// to failing to start. Tests skip on it.
var ErrUnavailable = errors.New("PostgreSQL is unavailable")

type unavailable string

func (u unavailable) Error() string        { return string(u) }
func (u unavailable) Is(target error) bool { return target == ErrUnavailable }

// Server is a PostgreSQL server in a temporary directory. Its methods may
// be called concurrently. Errors from the server end with the last lines
// of its log.
type Server struct {
	// Dir is the data directory.
	Dir string
	// Socket is the directory that holds the server's Unix socket.
	Socket string
	// Port is the port in the socket's name; clients need it with Socket.
	Port int
	// Bin is the directory with the PostgreSQL binaries used.
	Bin string

	root    string   // the temporary directory holding everything
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

// Start initialises a server in a new temporary directory, starts it and
// waits until it accepts connections.
func Start() (*Server, error) {
	bin := findBin()
	if bin == "" {
		return nil, unavailable("PostgreSQL's server binaries (initdb, postgres) not found; apt-get install postgresql")
	}
	s := &Server{Port: port, Bin: bin, attr: testtool.SysProcAttr}
	var uid, gid int
	asRoot := os.Geteuid() == 0
	if asRoot {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as (Debian's postgresql package creates one): %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if testtool.SysProcAttrAs(uint32(uid), uint32(gid)) == nil {
			return nil, unavailable("PostgreSQL refuses to run as root, and here it cannot be started as another user; run as another user")
		}
		s.attr = func() *syscall.SysProcAttr { return testtool.SysProcAttrAs(uint32(uid), uint32(gid)) }
	}

	root, err := tempDir(asRoot)
	if err != nil {
		return nil, err
	}
	s.root, s.Socket, s.Dir = root, root, filepath.Join(root, "data")
	s.log = filepath.Join(root, "postgres.log")
	fail := func(err error) (*Server, error) {
		err = s.withTail(err)
		_ = s.Close()
		return nil, err
	}
	if s.logFile, err = os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
		return fail(err)
	}
	if asRoot {
		if err := os.Chown(root, uid, gid); err != nil {
			return fail(err)
		}
	}
	initdb := s.command("initdb", "-D", s.Dir, "-U", User, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err := initdb.Run(); err != nil {
		return fail(fmt.Errorf("initdb: %w", err))
	}
	if err := s.start(); err != nil {
		return fail(err)
	}
	return s, nil
}

// DSN is the URL of database dbname on this server, which pgx and lib/pq
// accept:
//
//	postgres://slipway@/NAME?host=SOCKETDIR&port=PORT&sslmode=disable
func (s *Server) DSN(dbname string) string {
	// Slashes are fine in a query value, and keep the URL readable.
	host := strings.ReplaceAll(url.QueryEscape(s.Socket), "%2F", "/")
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		User, url.PathEscape(dbname), host, s.Port)
}

// CreateDatabase creates an empty database.
func (s *Server) CreateDatabase(name string) error {
	if err := s.admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		return s.withTail(fmt.Errorf("create database %s: %w", name, err))
	}
	return nil
}

// DropDatabase drops a database, closing its connections by force.
func (s *Server) DropDatabase(name string) error {
	if err := s.admin("DROP DATABASE " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
		return s.withTail(fmt.Errorf("drop database %s: %w", name, err))
	}
	return nil
}

// Start starts a stopped (or crashed) server again on the same data,
// socket and port, and waits until it accepts connections. Starting a
// running server does nothing.
func (s *Server) Start() error {
	if err := s.start(); err != nil {
		return s.withTail(err)
	}
	return nil
}

// Stop shuts the server down and waits for it to exit: a fast shutdown
// (open connections are closed, their transactions rolled back), then an
// immediate one, then SIGKILL, each given time to work. The data stays
// for Start. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
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
	return s.withTail(errors.New("postgres ignored SIGINT and SIGQUIT and was killed"))
}

// Close stops the server and removes its files; the error is Stop's.
func (s *Server) Close() error {
	err := s.Stop()
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
	_ = os.RemoveAll(s.root)
	return err
}

// start starts the server unless it runs, and waits for it to accept
// connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.exited:
			s.proc = nil // it died: start it again
		default:
			return nil
		}
	}
	cmd := s.command("postgres", "-D", s.Dir, "-k", s.Socket, "-p", strconv.Itoa(s.Port),
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
	if err := s.waitReady(p.exited); err != nil {
		_ = cmd.Process.Kill()
		<-p.exited
		return err
	}
	s.proc = p
	return nil
}

// waitReady waits up to 30 s for the server to accept a connection.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not accepting connections after 30s: %w", err)
		}
		select {
		case <-exited:
			return errors.New("postgres exited during startup")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// command runs one of PostgreSQL's programs, as the postgres user if we
// are root, writing its output to the log.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.Bin, name), args...)
	cmd.Dir = s.root
	cmd.SysProcAttr = s.attr()
	cmd.Env = append(os.Environ(), "LC_MESSAGES=C")
	// A file, not a pipe: the server's children inherit it, and a pipe
	// would keep cmd.Wait waiting for them after the server is gone.
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	return cmd
}

// admin runs one statement in the postgres database.
func (s *Server) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// withTail appends the end of the server's log to err.
func (s *Server) withTail(err error) error {
	b, rerr := os.ReadFile(s.log)
	if rerr != nil || len(b) == 0 {
		return fmt.Errorf("%w\n(postgres wrote nothing)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return fmt.Errorf("%w\npostgres's last words:\n%s", err, strings.Join(lines, "\n"))
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
	const prefix, socketName = "slipway-pg", "/.s.PGSQL.65535.lock"
	base := os.TempDir()
	if len(base)+len("/"+prefix+"1234567890")+len(socketName) > 107 ||
		strings.ContainsAny(base, " #%&+?") || asRoot && !traversable(base) {
		base = "/tmp"
	}
	return os.MkdirTemp(base, prefix)
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
