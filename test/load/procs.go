package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process of the harness. Its stdout and stderr go to a
// file (opened O_APPEND, so the harness may truncate it between runs): the
// harness never reads a pipe while load runs, so logging costs the process
// under test what it costs in production and the harness nothing.
type proc struct {
	name string
	cpu  int // pinned CPU, -1 when not pinned
	cmd  *exec.Cmd
	log  string // path of its output file
	done chan struct{}
	err  error // exit status, after done
}

// procs starts children and stops every one of them at the end or on
// Ctrl-C. Every child is forked from one OS thread that the harness keeps
// locked for its whole life: the thread's CPU mask is set just before a
// fork so the child starts pinned (its Go runtime then sizes GOMAXPROCS to
// the one CPU), and Pdeathsig, which fires when the forking thread exits,
// kills the children only when the harness itself dies.
type procs struct {
	dir   string
	spawn chan spawnReq
	mu    sync.Mutex
	list  []*proc
}

type spawnReq struct {
	cmd   *exec.Cmd
	cpu   int
	reply chan error
}

func newProcs(dir string) *procs {
	ps := &procs{dir: dir, spawn: make(chan spawnReq)}
	go ps.spawner()
	return ps
}

// spawner never returns: its thread must outlive every child (Pdeathsig).
func (ps *procs) spawner() {
	runtime.LockOSThread()
	for req := range ps.spawn {
		req.reply <- startOnCPU(req.cmd, req.cpu)
	}
	select {}
}

func startOnCPU(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	old, err := setThreadAffinity(cpu, nil)
	if err != nil {
		return err
	}
	startErr := cmd.Start()
	if _, err := setThreadAffinity(-1, &old); err != nil && startErr == nil {
		startErr = fmt.Errorf("restoring the harness's CPU mask: %w", err)
	}
	return startErr
}

// start runs name (argv) pinned to cpu (-1: anywhere) with its output in
// dir/name.log.
func (ps *procs) start(name string, cpu int, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(ps.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cpu: cpu, cmd: cmd, log: logPath, done: make(chan struct{})}
	if err := ps.launch(p, cpu); err != nil {
		return nil, err
	}
	if cpu >= 0 {
		if got := cpusAllowed(cmd.Process.Pid); got != "" && got != fmt.Sprint(cpu) {
			return p, fmt.Errorf("%s: pinned to CPU %d but Cpus_allowed_list is %q", name, cpu, got)
		}
	}
	return p, nil
}

// run runs argv to completion (pinned to cpu) and returns its stdout; ctx
// cancels it.
func (ps *procs) run(ctx context.Context, name string, cpu int, argv ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := ps.launch(p, cpu); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(2 * time.Second)
		return nil, ctx.Err()
	}
	if p.err != nil {
		return out.Bytes(), fmt.Errorf("%s: %v: %s", name, p.err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// launch starts p.cmd pinned to cpu (through the spawning thread),
// registers p for cleanup and closes p.done when it exits.
func (ps *procs) launch(p *proc, cpu int) error {
	reply := make(chan error, 1)
	ps.spawn <- spawnReq{cmd: p.cmd, cpu: cpu, reply: reply}
	if err := <-reply; err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopAll stops every child, the last started first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(10 * time.Second)
	}
}

// output is what the process has written to its log so far.
func (p *proc) output() string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

// tail is the last n bytes of its output.
func (p *proc) tail(n int) string {
	s := p.output()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// waitOutput waits until the process's output has a line containing
// marker and returns that line.
func (p *proc) waitOutput(ctx context.Context, marker string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		for _, line := range strings.Split(p.output(), "\n") {
			if strings.Contains(line, marker) {
				return line, nil
			}
		}
		if p.exited() {
			return "", fmt.Errorf("%s exited (%v) before %q:\n%s", p.name, p.err, marker, p.tail(4000))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no %q within %s:\n%s", p.name, marker, within, p.tail(4000))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// logScan counts the warn and error lines of a gateway's JSON log, keeps
// the first few, and truncates the file so that access logs do not fill
// the disk over a long run.
type logScan struct {
	warnings int
	// cancelled counts the warnings that are a client closing its
	// connection during a store call (logged as 503 store-unavailable).
	cancelled int
	samples   []string
}

func (ls *logScan) scan(p *proc) {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.Contains(line, []byte(`"level":"warn"`)) || bytes.Contains(line, []byte(`"level":"error"`)) ||
			bytes.Contains(line, []byte(`"level":"fatal"`)) || bytes.Contains(line, []byte("panic:")) {
			ls.warnings++
			if bytes.Contains(line, []byte("context canceled")) && bytes.Contains(line, []byte(`"status":503`)) {
				ls.cancelled++
				if ls.cancelled > 1 {
					continue // one sample is enough
				}
			}
			if len(ls.samples) < 5 {
				ls.samples = append(ls.samples, p.name+": "+truncate(string(line), 700))
			}
		}
	}
	_ = os.Truncate(p.log, 0)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
