package main

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

// pgServer is a PostgreSQL server the bench starts for the benchmarks
// that compare the server on SQLite with the server on PostgreSQL, as
// internal/testtool/pgtest starts one for tests: the machine's binaries
// (pg_config --bindir, else the newest /usr/lib/postgresql/*/bin), initdb
// into a temporary directory, run as the postgres user when we are root
// (PostgreSQL refuses to run as root), listening only on a Unix socket in
// that directory. Durability is off (fsync, synchronous_commit,
// full_page_writes): the bench measures Slipway, not the disk.
type pgServer struct {
	bin, root, dir string
	log            *os.File
	attr           func() *syscall.SysProcAttr
	cmd            *exec.Cmd
	exited         chan struct{}
	seq            int
}

// pgSettings is what the JSON lines say about the server.
const pgSettings = "PostgreSQL started by the bench: Unix socket, fsync=off, synchronous_commit=off, full_page_writes=off"

const (
	pgUser = "slipway"
	pgPort = 5432 // only names the socket file: no TCP
)

var pg struct {
	sync.Mutex
	srv *pgServer
	err error
}

// postgresDatabase creates a fresh database on the bench's PostgreSQL
// server, starting the server on first use, and returns its URL.
func postgresDatabase(name string) (string, error) {
	pg.Lock()
	defer pg.Unlock()
	if pg.srv == nil && pg.err == nil {
		begin := time.Now()
		pg.srv, pg.err = startPostgres()
		if pg.err == nil {
			fmt.Fprintf(os.Stderr, "bench: PostgreSQL from %s started in %v\n", pg.srv.bin, time.Since(begin).Round(time.Millisecond))
		}
	}
	if pg.err != nil {
		return "", pg.err
	}
	pg.srv.seq++
	db := fmt.Sprintf("bench_%d_%s", pg.srv.seq, strings.NewReplacer("-", "_").Replace(name))
	if err := pg.srv.admin("CREATE DATABASE " + pgx.Identifier{db}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w\n%s", db, err, pg.srv.logTail())
	}
	return pg.srv.dsn(db), nil
}

// stopPostgres stops the bench's PostgreSQL server, if it started one,
// and removes its files.
func stopPostgres() {
	pg.Lock()
	defer pg.Unlock()
	if pg.srv != nil {
		pg.srv.stop()
		pg.srv = nil
	}
}

func startPostgres() (*pgServer, error) {
	bin := postgresBin()
	if bin == "" {
		return nil, errors.New("PostgreSQL's server binaries (initdb, postgres) not found; apt-get install postgresql")
	}
	s := &pgServer{bin: bin, attr: testtool.SysProcAttr}
	asRoot := os.Geteuid() == 0
	var uid, gid int
	if asRoot {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if testtool.SysProcAttrAs(uint32(uid), uint32(gid)) == nil {
			return nil, errors.New("PostgreSQL refuses to run as root, and here it cannot be started as another user")
		}
		s.attr = func() *syscall.SysProcAttr { return testtool.SysProcAttrAs(uint32(uid), uint32(gid)) }
	}
	// Directly in /tmp: the socket's path is limited to 107 bytes, and the
	// postgres user must reach it (the bench's own directory is 0700).
	root, err := os.MkdirTemp("/tmp", "slipway-bench-pg")
	if err != nil {
		return nil, err
	}
	s.root, s.dir = root, filepath.Join(root, "data")
	fail := func(err error) (*pgServer, error) {
		err = fmt.Errorf("%w\n%s", err, s.logTail())
		s.stop()
		return nil, err
	}
	if s.log, err = os.OpenFile(filepath.Join(root, "postgres.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
		return fail(err)
	}
	if asRoot {
		if err := os.Chown(root, uid, gid); err != nil {
			return fail(err)
		}
	}
	initdb := s.command("initdb", "-D", s.dir, "-U", pgUser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if err := initdb.Run(); err != nil {
		return fail(fmt.Errorf("initdb: %w", err))
	}
	s.cmd = s.command("postgres", "-D", s.dir, "-k", root, "-p", strconv.Itoa(pgPort),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200")
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fail(fmt.Errorf("start postgres: %w", err))
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := s.admin("SELECT 1")
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("postgres not accepting connections after 30s: %w", err))
		}
		select {
		case <-s.exited:
			return fail(errors.New("postgres exited during startup"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// postgresBin is the directory with initdb and postgres, "" if none.
func postgresBin() string {
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
	version := func(dir string) []int {
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

// command runs one of PostgreSQL's programs, as the postgres user if we
// are root, its output to the log; the kernel kills it if the bench dies.
func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.root
	cmd.SysProcAttr = s.attr()
	cmd.Env = append(os.Environ(), "LC_MESSAGES=C")
	cmd.Stdout, cmd.Stderr = s.log, s.log // a file: the server's children inherit it
	return cmd
}

func (s *pgServer) dsn(db string) string {
	host := strings.ReplaceAll(url.QueryEscape(s.root), "%2F", "/")
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", pgUser, url.PathEscape(db), host, pgPort)
}

// admin runs one statement in the postgres database.
func (s *pgServer) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// stop shuts the server down (fast, then immediate, then SIGKILL) and
// removes its files.
func (s *pgServer) stop() {
	if s.cmd != nil && s.exited != nil {
		for _, step := range []struct {
			sig  os.Signal
			wait time.Duration
		}{{os.Interrupt, 30 * time.Second}, {syscall.SIGQUIT, 10 * time.Second}, {os.Kill, time.Minute}} {
			_ = s.cmd.Process.Signal(step.sig)
			stopped := false
			select {
			case <-s.exited:
				stopped = true
			case <-time.After(step.wait):
			}
			if stopped {
				break
			}
		}
	}
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.root)
}

func (s *pgServer) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.root, "postgres.log"))
	if err != nil || len(b) == 0 {
		return "(postgres wrote nothing)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "postgres's last words:\n" + strings.Join(lines, "\n")
}
