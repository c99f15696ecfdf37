// Package redistest starts real redis-server processes for tests: a single
// server on a free loopback port (Start), a Redis Cluster of several masters
// (StartCluster) and a master watched by a Sentinel (StartSentinel). Every
// process lives in its own t.TempDir() and is stopped when the test ends; no
// test ever touches a shared or system Redis.
//
// A test that needs Redis calls t.Fatal, not t.Skip, when redis-server is
// missing: a skipped integration test hides a broken environment.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts of the helpers. They bound waits on conditions; nothing sleeps a
// fixed time.
const (
	startTimeout = 15 * time.Second // until a started process answers PING
	stopTimeout  = 10 * time.Second // until a SIGTERMed process has exited
	pollInterval = 10 * time.Millisecond
	startRetries = 5 // new ports tried when a free port was taken meanwhile
)

// Available reports whether redis-server and redis-cli are on PATH; nil means
// the helpers can run.
func Available() error {
	var errs []error
	for _, name := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(name); err != nil {
			errs = append(errs, fmt.Errorf("redistest: %s not found: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Server is one redis-server (or sentinel) process on 127.0.0.1. Its port
// and data directory survive Stop, so Restart brings the same server back.
type Server struct {
	port int
	dir  string
	// argv builds the command line for port; ready reports whether the
	// process at addr serves.
	argv  func(port int) []string
	ready func(ctx context.Context, addr string) error

	mu   sync.Mutex
	proc *process // nil while stopped
	logs int      // number of log files written, for unique names
}

// process is one running redis-server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	log  string        // path of its stdout+stderr
}

// Start runs redis-server on 127.0.0.1 with a free port and a fresh data
// directory (t.TempDir()) and waits until it answers PING. args are extra
// arguments such as "--appendonly", "yes"; persistence is off (--save "")
// unless args set --save. t.Cleanup stops the server.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startWithArgs(t, func(int) []string { return args })
}

// startWithArgs is Start with extra arguments that depend on the port.
func startWithArgs(t testing.TB, extra func(port int) []string) *Server {
	t.Helper()
	requireAvailable(t)
	dir := t.TempDir()
	return startServer(t, dir, func(port int) []string {
		args := extra(port)
		a := []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--protected-mode", "no",
			"--daemonize", "no",
			"--logfile", "",
		}
		if !slices.Contains(args, "--save") {
			a = append(a, "--save", "")
		}
		return append(a, args...)
	}, pingReady)
}

// startServer picks a free port, starts the process and registers its stop
// at cleanup, retrying with another port if the chosen one was taken.
func startServer(t testing.TB, dir string, argv func(int) []string, ready func(context.Context, string) error) *Server {
	t.Helper()
	var lastErr error
	for range startRetries {
		s := &Server{port: freePort(t), dir: dir, argv: argv, ready: ready}
		err := s.start()
		if err == nil {
			t.Cleanup(func() { s.stop() })
			return s
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: start: %v", lastErr)
	return nil
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir is the server's data directory, kept across Stop and Restart.
func (s *Server) Dir() string { return s.dir }

// Client returns a go-redis client of the server, closed at cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop terminates the process (SIGTERM, then SIGKILL if it lingers) and
// waits until it has exited. The data directory is kept. Stopping a stopped
// server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("redistest: stop %s: %v", s.Addr(), err)
	}
}

// Kill ends the process with SIGKILL, as a crash would: unlike Stop, Redis
// gets no chance to flush anything.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.done
	s.proc = nil
}

// Restart starts the server again on the same port and data directory,
// stopping it first if it runs, and waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("redistest: restart %s: %v", s.Addr(), err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("redistest: restart %s: %v", s.Addr(), err)
	}
}

// Running reports whether the process is up (started and not stopped).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	s.logs++
	logPath := filepath.Join(s.dir, fmt.Sprintf("redistest-%d.log", s.logs))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor

	args := s.argv(s.port)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = waitUntil(ctx, p.done, func(ctx context.Context) error { return s.ready(ctx, s.Addr()) })
	if err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redis-server %s not ready: %w; log:\n%s", s.Addr(), err, tail(logPath))
	}
	s.proc = p
	return nil
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	p := s.proc
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return nil
}

// errExited reports a process that ended while we waited for it.
var errExited = errors.New("redistest: process exited")

// waitUntil calls check every pollInterval until it returns nil, the process
// exits (done closes) or ctx ends; it returns check's last error then.
func waitUntil(ctx context.Context, done <-chan struct{}, check func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// pingReady reports whether the Redis at addr answers PING (and is not
// loading its data set).
func pingReady(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: 500 * time.Millisecond, MaxRetries: -1, PoolSize: 1,
		Protocol: 2, DisableIdentity: true,
	})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func requireAvailable(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
}
