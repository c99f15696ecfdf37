// Package fault drives the real portcullis binary through faults (Redis
// stopped, frozen or crashed, upstreams that hang, reset or stream slowly,
// slowloris clients, failing JWKS endpoints), hot reloads under load,
// graceful shutdown behind two nodes, and the documented limits
// (docs/limits.md). Every process is real: the gateway binary built from
// this checkout, redis-server, and loopback upstreams. Nothing waits a
// fixed time for an asynchronous effect; conditions are awaited with a
// deadline.
package fault

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	h "github.com/portcullis/portcullis/test/internal/harness"
)

const (
	adminToken = "fault-admin-token"
	issuer     = "https://idp.test/"
	cookieName = "__Host-portcullis"
	// margin is added to every configured timeout before a latency is
	// called a hang: the machine is shared and slow, a hang is not.
	margin = 2 * time.Second
)

// outcomes counts the results of a load run by key ("jwt 200",
// "session 503", ...) and keeps the slowest answer and the first failures.
type outcomes struct {
	mu       sync.Mutex
	n        map[string]int
	slowest  time.Duration
	failures []string
	failed   int
}

func newOutcomes() *outcomes { return &outcomes{n: map[string]int{}} }

// ok records an accepted answer.
func (o *outcomes) ok(key string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[key]++
	o.slowest = max(o.slowest, d)
}

// fail records a failed request with what went wrong.
func (o *outcomes) fail(key string, d time.Duration, what string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[key]++
	o.failed++
	o.slowest = max(o.slowest, d)
	if len(o.failures) < 10 {
		o.failures = append(o.failures, fmt.Sprintf("%s after %s: %s", key, d.Round(time.Millisecond), what))
	}
}

func (o *outcomes) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

func (o *outcomes) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := 0
	for _, n := range o.n {
		t += n
	}
	return t
}

// String lists the counts, sorted, for the test log.
func (o *outcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := make([]string, 0, len(o.n))
	for k := range o.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, o.n[k])
	}
	fmt.Fprintf(&b, "failed=%d slowest=%s", o.failed, o.slowest.Round(time.Millisecond))
	return b.String()
}

// check fails the test if any request failed.
func (o *outcomes) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failed > 0 {
		t.Errorf("%d failed requests, first ones:\n  %s", o.failed, strings.Join(o.failures, "\n  "))
	}
}

// startLoad runs workers goroutines calling fn(worker, i) in a loop until
// the returned stop is called (stop waits for them; calling it twice is
// fine). It is also stopped at cleanup.
func startLoad(t *testing.T, workers int, fn func(worker, i int)) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				fn(w, i)
			}
		}()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// loadClient is the HTTP client of load generators: keep-alive connections
// for every worker, a deadline far above any configured timeout.
func loadClient(workers int) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: workers,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends a GET with header pairs and returns the status, a header, the
// body and the error, without failing the test (load workers run outside
// the test goroutine).
func get(c *http.Client, url string, headers ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// status is the status of a GET, or 0 when the request failed.
func status(url string, headers ...string) int {
	resp, _, err := get(h.Client(), url, headers...)
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// metric reads one sample of the gateway's /metrics, e.g.
// metric(t, gw, `portcullis_config_reloads_total{result="ok"}`); a sample
// that is absent reads 0.
func metric(t *testing.T, gw *h.Gateway, sample string) float64 {
	t.Helper()
	resp, body := h.Get(t, gw.AdminURL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// pidOf finds the process serving gw by its unique configuration path.
func pidOf(t *testing.T, gw *h.Gateway) int {
	t.Helper()
	return findProcess(t, func(args []string) bool {
		return slices.Contains(args, "serve") && slices.Contains(args, gw.ConfigPath)
	})
}

// redisPid finds the redis-server listening on addr (it retitles itself
// "redis-server 127.0.0.1:port").
func redisPid(t *testing.T, addr string) int {
	t.Helper()
	return findProcess(t, func(args []string) bool {
		return len(args) > 1 && strings.HasSuffix(args[0], "redis-server") && slices.Contains(args[1:], addr)
	})
}

// findProcess returns the pid whose command line matches; the test fails
// if there is not exactly one.
func findProcess(t *testing.T, match func(args []string) bool) int {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.FieldsFunc(string(data), func(r rune) bool { return r == 0 || r == ' ' })
		if match(args) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("want one matching process, found %v", pids)
	}
	return pids[0]
}

// procStatusKB reads a field such as VmHWM or VmRSS (in KiB) of
// /proc/<pid>/status.
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// waitExit waits for the gateway process to exit and returns how long
// that took; the test fails after within.
func waitExit(t *testing.T, gw *h.Gateway, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-gw.Done():
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("the gateway did not exit within %s\nlogs:\n%s", within, tail(gw.Logs(), 20))
	}
	return 0
}

// exitCode is the exit status of an exited gateway (-1: killed by a
// signal).
func exitCode(gw *h.Gateway) int {
	err := gw.ExitErr()
	if err == nil {
		return 0
	}
	if ee, ok := err.(interface{ Sys() any }); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return -1
			}
			return ws.ExitStatus()
		}
	}
	return -2
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start is h.Start, and at cleanup stops the gateway and fails the test if
// it reported a data race (PORTCULLIS_E2E_RACE=1 builds it with -race) or
// a panic.
func start(t *testing.T, dir, config string) *h.Gateway {
	t.Helper()
	gw := h.Start(t, dir, config)
	t.Cleanup(func() {
		gw.Stop()
		logs := gw.Logs()
		for _, bad := range []string{"WARNING: DATA RACE", "panic:"} {
			if i := strings.Index(logs, bad); i >= 0 {
				t.Errorf("the gateway reported %q:\n%s", bad, logs[i:min(len(logs), i+4000)])
			}
		}
	})
	return gw
}
