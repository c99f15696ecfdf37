package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const shutdownConfig = `
server:
  listen: "127.0.0.1:0"
  shutdown_delay: {{.Delay}}
  shutdown_timeout: {{.Timeout}}
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
jwt:
  issuers:
    - issuer: "` + issuer + `"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
log:
  access: false
routes:
  - name: api
    path: /api
    upstream: "{{.API}}"
    auth: jwt
  - name: stream
    path: /stream
    upstream: "{{.Faulty}}"
    auth: none
    timeout: 5s
  - name: hang
    path: /hang
    upstream: "{{.Faulty}}"
    auth: none
    timeout: 30s
`

type shutdownEnv struct {
	keys   h.Keys
	api    string
	faulty *faultyUpstream
	auth   string
}

func newShutdownEnv(t *testing.T) *shutdownEnv {
	t.Helper()
	keys := h.NewES256(t, t.TempDir(), "idp")
	api, _ := okUpstream(t)
	return &shutdownEnv{keys: keys, api: api, faulty: newFaultyUpstream(t),
		auth: "Bearer " + token(t, keys, mint.Dev{Subject: "alice"})}
}

func (e *shutdownEnv) start(t *testing.T, delay, timeout time.Duration) *h.Gateway {
	t.Helper()
	gw := start(t, t.TempDir(), h.Config(t, shutdownConfig, map[string]any{
		"Delay": delay.String(), "Timeout": timeout.String(), "Key": e.keys.Public, "API": e.api, "Faulty": e.faulty.URL,
	}))
	gw.WaitReady(t)
	return gw
}

// openStream starts GET /stream on gw and returns once the first chunk has
// arrived and the upstream holds the rest.
func openStream(t *testing.T, gw *h.Gateway, up *faultyUpstream) (*http.Response, *bufio.Reader) {
	t.Helper()
	resp, err := h.Client().Get(gw.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	if first, err := br.ReadString('\n'); err != nil || first != "first\n" {
		t.Fatalf("first chunk %q, %v", first, err)
	}
	<-up.streaming
	return resp, br
}

// refusesConnections reports whether a new TCP connection to addr fails.
func refusesConnections(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// TestShutdownDrains: on SIGTERM /readyz turns 503 at once while the main
// listener still accepts for server.shutdown_delay; then new connections
// are refused, the in-flight streaming request finishes, and the process
// exits 0.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond
	e := newShutdownEnv(t)
	gw := e.start(t, delay, 10*time.Second)
	_, stream := openStream(t, gw, e.faulty)

	gw.Signal(syscall.SIGTERM)
	sent := time.Now()
	h.Eventually(t, 5*time.Second, "/readyz 503 after SIGTERM", func() bool { return status(gw.AdminURL+"/readyz") == 503 })
	resp, body := h.Get(t, gw.AdminURL+"/readyz")
	var rd struct{ Draining bool }
	if resp.StatusCode != 503 || json.Unmarshal(body, &rd) != nil || !rd.Draining {
		t.Errorf("/readyz while draining: %d %s", resp.StatusCode, body)
	}

	// Still accepting during the delay: a new connection is served.
	fresh := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, _, err := get(fresh, gw.URL+"/api", "Authorization", e.auth)
	if elapsed := time.Since(sent); elapsed >= delay {
		t.Fatalf("the machine is too slow for this test: %s passed before the request during shutdown_delay %s", elapsed, delay)
	}
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("a new request during shutdown_delay: %v %v", r, err)
	}

	// Then new connections stop.
	h.Eventually(t, delay+margin, "new connections refused", func() bool { return refusesConnections(gw.Addr) })
	if elapsed := time.Since(sent); elapsed < delay-50*time.Millisecond {
		t.Errorf("the listener closed after %s, before shutdown_delay %s", elapsed, delay)
	}
	select {
	case <-gw.Done():
		t.Fatal("the gateway exited with a streaming request in flight")
	default:
	}

	// The in-flight stream completes, then the process exits 0.
	close(e.faulty.release)
	rest, err := io.ReadAll(stream)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("the in-flight stream: rest %q, %v", rest, err)
	}
	waitExit(t, gw, 10*time.Second)
	if code := exitCode(gw); code != 0 {
		t.Fatalf("exit status %d, want 0\n%s", code, tail(gw.Logs(), 10))
	}
}

// TestShutdownTimeoutCutsStragglers: a request still running when
// server.shutdown_timeout ends is cut, and the process exits 0 at that
// point instead of waiting for it.
func TestShutdownTimeoutCutsStragglers(t *testing.T) {
	t.Parallel()
	const drain = time.Second
	e := newShutdownEnv(t)
	gw := e.start(t, 0, drain)
	before := e.faulty.requests.Load()
	errc := make(chan error, 1)
	go func() {
		resp, err := h.Client().Get(gw.URL + "/hang")
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		errc <- err
	}()
	h.Eventually(t, 10*time.Second, "the straggler to reach the upstream", func() bool { return e.faulty.requests.Load() > before })

	gw.Signal(syscall.SIGTERM)
	took := waitExit(t, gw, drain+margin+5*time.Second)
	if code := exitCode(gw); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	if took < drain-100*time.Millisecond || took > drain+margin {
		t.Errorf("exited %s after SIGTERM, want server.shutdown_timeout %s (+ margin %s)", took, drain, margin)
	}
	if err := <-errc; err == nil || strings.HasPrefix(err.Error(), "answered") {
		t.Errorf("the straggler: %v, want its connection closed", err)
	}
	if !strings.Contains(gw.Logs(), "did not finish within server.shutdown_timeout") {
		t.Errorf("the cut is not logged:\n%s", tail(gw.Logs(), 5))
	}
}

// node is one gateway behind the test's balancer.
type node struct {
	name   string
	gw     *h.Gateway
	ready  atomic.Bool
	served atomic.Int64
}

// balancer is a client-side load balancer: each request goes to a node
// whose /readyz was last seen 200 (polled every 20ms), round robin, and is
// retried on another node only when the connection failed before any byte
// of the request was written.
type balancer struct {
	nodes  []*node
	next   atomic.Uint64
	client *http.Client
}

var errNoReadyNode = errors.New("no ready node")

func newBalancer(t *testing.T, workers int, nodes ...*node) *balancer {
	t.Helper()
	b := &balancer{nodes: nodes, client: loadClient(workers)}
	ctx := h.Context(t)
	poll := &http.Client{Timeout: time.Second}
	for _, n := range nodes {
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				resp, err := poll.Get(n.gw.AdminURL + "/readyz")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				n.ready.Store(err == nil && resp.StatusCode == 200)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	h.Eventually(t, 10*time.Second, "the balancer to see every node ready", func() bool {
		for _, n := range nodes {
			if !n.ready.Load() {
				return false
			}
		}
		return true
	})
	return b
}

// get sends GET path with header pairs to a ready node.
func (b *balancer) get(path string, headers ...string) (*http.Response, []byte, *node, error) {
	first := int(b.next.Add(1))
	var lastErr error = errNoReadyNode
	for k := range b.nodes {
		n := b.nodes[(first+k)%len(b.nodes)]
		if !n.ready.Load() {
			continue
		}
		var wrote atomic.Bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteHeaderField: func(string, []string) { wrote.Store(true) },
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.gw.URL+path, nil)
		if err != nil {
			return nil, nil, n, err
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Add(headers[i], headers[i+1])
		}
		resp, err := b.client.Do(req)
		if err != nil {
			if wrote.Load() {
				return nil, nil, n, err // sent: the request may have run; no retry
			}
			lastErr = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			n.served.Add(1)
		}
		return resp, body, n, err
	}
	return nil, nil, nil, lastErr
}

// TestShutdownBehindTwoNodes: two gateways behind a readiness-polling
// balancer under load; one gets SIGTERM mid-load with a long streaming
// request in flight. No request fails, the stream completes, and the
// process exits 0.
func TestShutdownBehindTwoNodes(t *testing.T) {
	t.Parallel()
	e := newShutdownEnv(t)
	a := &node{name: "a", gw: e.start(t, 500*time.Millisecond, 10*time.Second)}
	bn := &node{name: "b", gw: e.start(t, 500*time.Millisecond, 10*time.Second)}
	const workers = 4
	lb := newBalancer(t, workers, a, bn)

	o := newOutcomes()
	stop := startLoad(t, workers, func(w, i int) {
		start := time.Now()
		resp, body, n, err := lb.get("/api", "Authorization", e.auth)
		d := time.Since(start)
		switch {
		case err != nil:
			o.fail("error", d, err.Error())
		case resp.StatusCode != 200 || string(body) != "ok":
			o.fail(fmt.Sprintf("%s %d", n.name, resp.StatusCode), d, string(body))
		default:
			o.ok(n.name+" 200", d)
		}
	})
	h.Eventually(t, 20*time.Second, "load on both nodes", func() bool { return a.served.Load() >= 50 && bn.served.Load() >= 50 })

	_, stream := openStream(t, a.gw, e.faulty)
	a.gw.Signal(syscall.SIGTERM)
	h.Eventually(t, 5*time.Second, "the balancer to take node a out", func() bool { return !a.ready.Load() })
	h.Eventually(t, 10*time.Second, "node a to refuse new connections", func() bool { return refusesConnections(a.gw.Addr) })
	select {
	case <-a.gw.Done():
		t.Fatal("node a exited with a streaming request in flight")
	default:
	}
	close(e.faulty.release)
	if rest, err := io.ReadAll(stream); err != nil || string(rest) != "second\n" {
		t.Fatalf("the in-flight stream on node a: rest %q, %v", rest, err)
	}
	waitExit(t, a.gw, 10*time.Second)
	if code := exitCode(a.gw); code != 0 {
		t.Fatalf("node a exit status %d, want 0\n%s", code, tail(a.gw.Logs(), 10))
	}
	served := bn.served.Load()
	h.Eventually(t, 20*time.Second, "load on node b after node a exited", func() bool { return bn.served.Load() >= served+50 })
	stop()
	o.check(t)
	t.Logf("SIGTERM to one of two nodes mid-load: %s", o)
}
