package fault

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	h "github.com/portcullis/portcullis/test/internal/harness"
)

const upstreamConfig = `
server:
  listen: "127.0.0.1:0"
  read_header_timeout: {{.ReadHeaderTimeout}}
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
routes:
  - name: hang
    path: /hang
    upstream: "{{.Up}}"
    auth: none
    timeout: {{.RouteTimeout}}
  - name: reset
    path: /reset
    upstream: "{{.Up}}"
    auth: none
  - name: stream
    path: /stream
    upstream: "{{.Up}}"
    auth: none
    timeout: {{.RouteTimeout}}
  - name: truncate
    path: /truncate
    upstream: "{{.Up}}"
    auth: none
  - name: bighdr
    path: /bighdr
    upstream: "{{.Up}}"
    auth: none
  - name: ok
    path: /ok
    upstream: "{{.Up}}"
    auth: none
`

// faultyUpstream hangs on /hang (until the gateway gives up), resets the
// connection on /reset, aborts /truncate after part of its announced body,
// answers /bighdr with a header over 1 MiB, and on /stream sends "first\n",
// then holds the rest until release is closed.
type faultyUpstream struct {
	*httptest.Server
	hung      atomic.Int64 // /hang requests whose client went away
	streaming chan struct{}
	release   chan struct{}
	requests  atomic.Int64
}

func newFaultyUpstream(t *testing.T) *faultyUpstream {
	t.Helper()
	u := &faultyUpstream{streaming: make(chan struct{}, 16), release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		switch {
		case strings.HasPrefix(r.URL.Path, "/hang"):
			select {
			case <-r.Context().Done():
				u.hung.Add(1)
			case <-u.release:
			}
		case strings.HasPrefix(r.URL.Path, "/reset"):
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close sends RST
			}
			conn.Close()
		case strings.HasPrefix(r.URL.Path, "/truncate"):
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "partial")
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		case strings.HasPrefix(r.URL.Path, "/bighdr"):
			w.Header().Set("X-Big", strings.Repeat("b", 1<<20+1))
			_, _ = io.WriteString(w, "ok")
		case strings.HasPrefix(r.URL.Path, "/stream"):
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "first\n")
			_ = http.NewResponseController(w).Flush()
			u.streaming <- struct{}{}
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "second\n")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(func() {
		select {
		case <-u.release:
		default:
			close(u.release)
		}
		u.Close()
	})
	return u
}

// TestUpstreamFaults: an upstream that hangs gets 504 at the route timeout,
// one that resets the connection 502, and a slow stream is streamed: the
// client reads the first chunk while the upstream still holds the rest,
// past the route timeout (which bounds the wait for the response headers,
// not the body).
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	const routeTimeout = 400 * time.Millisecond
	up := newFaultyUpstream(t)
	gw := start(t, t.TempDir(), h.Config(t, upstreamConfig, map[string]any{
		"Up": up.URL, "RouteTimeout": routeTimeout.String(), "ReadHeaderTimeout": "5s",
	}))

	t.Run("hang: 504 at the route timeout", func(t *testing.T) {
		start := time.Now()
		resp, body := h.Get(t, gw.URL+"/hang")
		d := time.Since(start)
		if resp.StatusCode != 504 {
			t.Fatalf("status %d %s, want 504", resp.StatusCode, body)
		}
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error != "gateway_timeout" {
			t.Errorf("body %s", body)
		}
		if d < routeTimeout || d > routeTimeout+margin {
			t.Errorf("answered after %s, want the route timeout %s (+ margin %s)", d, routeTimeout, margin)
		}
		h.Eventually(t, 5*time.Second, "the upstream request to be cancelled", func() bool { return up.hung.Load() >= 1 })
	})

	t.Run("reset: 502", func(t *testing.T) {
		for range 3 { // fresh and pooled upstream connections alike
			resp, body := h.Get(t, gw.URL+"/reset")
			if resp.StatusCode != 502 || !strings.Contains(string(body), `"error":"bad_gateway"`) {
				t.Fatalf("status %d %s, want 502 bad_gateway", resp.StatusCode, body)
			}
		}
		if resp, _ := h.Get(t, gw.URL+"/ok"); resp.StatusCode != 200 {
			t.Fatalf("after resets, a healthy route: %d", resp.StatusCode)
		}
	})

	t.Run("response header over 1 MiB: 502", func(t *testing.T) {
		resp, body := h.Get(t, gw.URL+"/bighdr")
		if resp.StatusCode != 502 || resp.Header.Get("X-Big") != "" {
			t.Fatalf("status %d %s, want 502", resp.StatusCode, body)
		}
	})

	t.Run("upstream aborts mid-body: the client sees the cut, the request is counted", func(t *testing.T) {
		count := func() float64 {
			resp, body := h.Get(t, gw.AdminURL+"/metrics")
			if resp.StatusCode != 200 {
				t.Fatalf("/metrics: %d", resp.StatusCode)
			}
			n := 0.0
			for _, line := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(line, "portcullis_requests_total{") && strings.Contains(line, `route="truncate"`) {
					var v float64
					fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
					n += v
				}
			}
			return n
		}
		before := count()
		resp, err := h.Client().Get(gw.URL + "/truncate")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil {
				t.Fatalf("status %d body %q: a cut response looked complete", resp.StatusCode, body)
			}
		}
		h.Eventually(t, 5*time.Second, "portcullis_requests_total to count the cut request", func() bool { return count() > before })
		h.Eventually(t, 5*time.Second, "an access log line for the cut request", func() bool {
			return accessLogged(gw, `"route":"truncate"`, `"reason":"upstream-aborted"`)
		})
		if resp, _ := h.Get(t, gw.URL+"/ok"); resp.StatusCode != 200 {
			t.Fatalf("after an aborted response: %d", resp.StatusCode)
		}
	})

	t.Run("client goes away mid-stream: logged as 499", func(t *testing.T) {
		resp, err := h.Client().Get(gw.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		if first, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || first != "first\n" {
			t.Fatalf("first chunk %q, %v", first, err)
		}
		<-up.streaming
		resp.Body.Close() // the client hangs up while the upstream holds the rest
		h.Eventually(t, 5*time.Second, "an access log line for the abandoned stream", func() bool {
			return accessLogged(gw, `"route":"stream"`, `"status":499`, `"reason":"client-closed"`)
		})
	})

	t.Run("slow stream: streamed, not buffered, not cut by the route timeout", func(t *testing.T) {
		start := time.Now()
		resp, err := h.Client().Get(gw.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || first != "first\n" {
			t.Fatalf("first chunk %q, %v", first, err)
		}
		select {
		case <-up.streaming:
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream handler is not holding the rest")
		}
		// The client has the first chunk while the upstream holds the rest.
		// Hold it beyond the route timeout before letting go.
		<-time.After(time.Until(start.Add(routeTimeout + 100*time.Millisecond)))
		close(up.release)
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "second\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
}

// TestSlowloris: clients that trickle their request headers are cut at
// server.read_header_timeout although they keep sending, nothing reaches
// the upstream, and other clients are served meanwhile.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	const readHeaderTimeout = time.Second
	up := newFaultyUpstream(t)
	gw := start(t, t.TempDir(), h.Config(t, upstreamConfig, map[string]any{
		"Up": up.URL, "RouteTimeout": "5s", "ReadHeaderTimeout": readHeaderTimeout.String(),
	}))

	const clients = 10
	type result struct {
		d    time.Duration
		got  string
		err  error
		sent int
	}
	results := make(chan result, clients)
	start := time.Now()
	for range clients {
		go func() {
			c, err := net.Dial("tcp", gw.Addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			cut := make(chan struct{})
			sent := make(chan int, 1)
			go func() { // one header byte every 50ms, for as long as the server reads
				n := 0
				defer func() { sent <- n }()
				if _, err := io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: gw\r\nX-Slow: "); err != nil {
					return
				}
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-cut:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
					n++
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(readHeaderTimeout + margin + 5*time.Second))
			data, err := io.ReadAll(c)
			d := time.Since(start)
			close(cut)
			results <- result{d: d, got: string(data), err: err, sent: <-sent}
		}()
	}
	// Served meanwhile.
	if resp, _ := h.Get(t, gw.URL+"/ok"); resp.StatusCode != 200 {
		t.Fatalf("a normal client during the slowloris: %d", resp.StatusCode)
	}
	before := up.requests.Load()
	for range clients {
		r := <-results
		if ne, ok := r.err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a slowloris connection was still open after %s", r.d)
		}
		if r.d < readHeaderTimeout-100*time.Millisecond || r.d > readHeaderTimeout+margin {
			t.Errorf("cut after %s, want read_header_timeout %s (+ margin %s)", r.d, readHeaderTimeout, margin)
		}
		if r.got != "" {
			t.Errorf("a slowloris got an answer, want the connection closed: %q", r.got)
		}
		if r.sent < 5 {
			t.Errorf("the client trickled only %d bytes", r.sent)
		}
	}
	if n := up.requests.Load(); n != before {
		t.Errorf("%d slowloris requests reached the upstream", n-before)
	}
	t.Logf("%d slowloris connections cut after read_header_timeout %s", clients, readHeaderTimeout)
}

// accessLogged reports whether one access log line of gw holds every part.
func accessLogged(gw *h.Gateway, parts ...string) bool {
	for _, line := range strings.Split(gw.Logs(), "\n") {
		if !strings.Contains(line, `"msg":"request"`) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
