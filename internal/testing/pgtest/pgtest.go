// Package pgtest gives tests a real PostgreSQL: the server at
// TEST_DATABASE_URL when that is set, otherwise a private throwaway server
// started from the installed PostgreSQL binaries (initdb into a temporary
// directory, on a free port, as the postgres user when running as root), so
// fault tests can stop and restart it. Each test package gets fresh databases
// holding LiteLLM's own tables (litellm_schema.sql: LiteLLM's user table and
// every table that belongs to or references a user, as LiteLLM's migrations
// create them).
package pgtest

import (
	"context"
	"crypto/rand"
	_ "embed" // the LiteLLM schema
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rolesync/rolesync/internal/testing/freeport"
)

// LiteLLMSchema is the DDL of LiteLLM's user-related tables (see
// litellm_schema.sql for the LiteLLM version it follows).
//
//go:embed litellm_schema.sql
var LiteLLMSchema string

// EnvDatabaseURL names the variable that points tests at an existing server.
const EnvDatabaseURL = "TEST_DATABASE_URL"

// EnvSettings names the variable holding extra server settings for a
// private server, as space-separated name=value pairs (passed as -c), for
// example "shared_preload_libraries=pg_stat_statements" to see which
// statements a benchmark's database time goes to.
const EnvSettings = "ROLESYNC_PGTEST_SETTINGS"

// missingBinaries is the error text when no PostgreSQL server binaries exist.
const missingBinaries = "pgtest: PostgreSQL server binaries (initdb, postgres) not found: " +
	"install them (Debian/Ubuntu: apt-get install postgresql-15, or the postgresql package) " +
	"or set " + EnvDatabaseURL + " to a server tests may create databases on"

// Server is a PostgreSQL server tests may create databases on.
type Server struct {
	adminURL string // connection URL of the maintenance database

	// Set only for a private server.
	bin     string
	dir     string
	port    int
	cred    *syscall.Credential
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// Start returns the server at TEST_DATABASE_URL, or starts a private one.
// Call Close when done (in TestMain, after m.Run).
func Start() (*Server, error) {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		s := &Server{adminURL: u}
		if err := s.ping(context.Background(), 10*time.Second); err != nil {
			return nil, fmt.Errorf("pgtest: %s is set but unreachable: %w", EnvDatabaseURL, err)
		}
		return s, nil
	}
	return startPrivate()
}

// StartPrivate always starts a private server, even when TEST_DATABASE_URL
// is set: fault tests that stop the database use it.
func StartPrivate() (*Server, error) { return startPrivate() }

// Private reports whether the server was started by this package (and so
// supports Stop and Restart).
func (s *Server) Private() bool { return s.dir != "" }

// URL returns the connection URL of database db on this server.
func (s *Server) URL(db string) string {
	u, err := url.Parse(s.adminURL)
	if err != nil {
		panic(err) // adminURL was validated at start
	}
	u.Path = "/" + db
	return u.String()
}

// NewDatabase creates a fresh, uniquely named database holding LiteLLM's
// schema (LiteLLMSchema) and returns its connection URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rolesync_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	dsn := s.URL(name)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("pgtest: connect %s: %w", name, err)
	}
	defer func() { _ = db.Close(ctx) }()
	if _, err := db.Exec(ctx, LiteLLMSchema); err != nil {
		return "", fmt.Errorf("pgtest: create LiteLLM's schema: %w", err)
	}
	return dsn, nil
}

// Stop stops a private server (a fast shutdown, as an outage would look to
// clients). It fails for a server given by TEST_DATABASE_URL.
func (s *Server) Stop() error {
	if !s.Private() {
		return errors.New("pgtest: cannot stop the server at " + EnvDatabaseURL + "; unset it to use a private server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Restart starts a private server stopped by Stop, on the same port and data.
func (s *Server) Restart() error {
	if !s.Private() {
		return errors.New("pgtest: cannot restart the server at " + EnvDatabaseURL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	return s.startLocked()
}

// Close stops a private server and removes its data. It is a no-op for a
// server given by TEST_DATABASE_URL (its databases are left for inspection).
func (s *Server) Close() error {
	if !s.Private() {
		return nil
	}
	s.mu.Lock()
	err := s.stopLocked()
	s.mu.Unlock()
	if s.logFile != nil {
		_ = s.logFile.Close()
	}
	return errors.Join(err, os.RemoveAll(s.dir))
}

func (s *Server) ping(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.adminURL)
		if err == nil {
			err = conn.Ping(cctx)
			_ = conn.Close(cctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func binDir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(versions) - 1; i >= 0; i-- {
		candidates = append(candidates, versions[i])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New(missingBinaries)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func startPrivate() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rolesync-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs a postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	fail := func(err error) (*Server, error) {
		_ = s.Close()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		// A UTF-8 locale, as LiteLLM's databases have: its lower() folds
		// Unicode look-alikes (the Kelvin sign) the way tests must guard against.
		"--locale=C.UTF-8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pgtest: initdb: %w\n%s", err, out))
	}
	if s.logFile, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		return fail(fmt.Errorf("pgtest: %w", err))
	}
	if s.port, err = freePort(); err != nil {
		return fail(err)
	}
	s.adminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.mu.Lock()
	err = s.startLocked()
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	// The server dies with the test binary, even when the test is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

func (s *Server) startLocked() error {
	args := []string{
		"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port),
		"-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
	}
	for _, kv := range strings.Fields(os.Getenv(EnvSettings)) {
		args = append(args, "-c", kv)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	if err := s.ping(context.Background(), 30*time.Second); err != nil {
		_ = s.stopLocked()
		log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
		return fmt.Errorf("pgtest: postgres did not accept connections: %w\n%s", err, log)
	}
	return nil
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	// SIGINT is PostgreSQL's fast shutdown: clients are disconnected at once.
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd, s.exited = nil, nil
	return nil
}

func freePort() (int, error) { return freeport.Port() }
