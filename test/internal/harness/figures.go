package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TCPProxy is a loopback TCP proxy in front of a server such as Redis, for
// fault tests and for counting what clients send. Cut drops every proxied
// connection and refuses new ones (they are accepted and closed at once)
// until Restore. The proxy also counts the RESP commands clients send
// through it, by name: one command sent is one round trip (go-redis sends
// a script call, not a pipeline, for each store operation).
type TCPProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	cmds  map[string]int64
}

// NewTCPProxy listens on 127.0.0.1:0 and forwards to target; it is closed
// at cleanup.
func NewTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCPProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, cmds: map[string]int64{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		p.Cut()
	})
	return p
}

// Addr is the proxy's "127.0.0.1:port".
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and makes the proxy close new ones
// as soon as they are accepted, as a network partition would.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Restore lets new connections through again.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Commands returns how many commands of each name (lower case) clients
// have sent through the proxy so far.
func (p *TCPProxy) Commands() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.cmds))
	for k, v := range p.cmds {
		out[k] = v
	}
	return out
}

func (p *TCPProxy) serve(client net.Conn) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut {
		_ = client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.cut { // cut while dialling
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client], p.conns[server] = struct{}{}, struct{}{}
	p.mu.Unlock()
	defer func() {
		_ = client.Close()
		_ = server.Close()
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	go func() {
		_, _ = io.Copy(client, server)
		_ = client.Close()
		_ = server.Close()
	}()
	// Client to server: forward every byte as soon as it is read, and parse
	// the copy for RESP command names.
	p.countCommands(bufio.NewReader(io.TeeReader(client, server)))
}

// countCommands reads RESP arrays of bulk strings (what clients send)
// until the stream ends.
func (p *TCPProxy) countCommands(br *bufio.Reader) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "*") {
			continue // not RESP (an inline command): not counted
		}
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return
		}
		name := ""
		for i := range n {
			hdr, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(hdr, "$") {
				return
			}
			size, err := strconv.Atoi(strings.TrimSpace(hdr[1:]))
			if err != nil || size < 0 {
				return
			}
			if i == 0 {
				b := make([]byte, size)
				if _, err := io.ReadFull(br, b); err != nil {
					return
				}
				name = strings.ToLower(string(b))
			} else if _, err := br.Discard(size); err != nil {
				return
			}
			if _, err := br.Discard(2); err != nil {
				return
			}
		}
		p.mu.Lock()
		p.cmds[name]++
		p.mu.Unlock()
	}
}

// RedisCommandStats reads INFO commandstats of the Redis at addr: command
// name (as Redis names it, e.g. "evalsha", "client|list") -> calls. Redis
// counts the commands a Lua script runs under their own names too.
func RedisCommandStats(t testing.TB, addr string) map[string]int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("INFO commandstats: bad line %q", line)
				}
				out[name] = n
			}
		}
	}
	return out
}

// CountDelta is after - before per name, leaving out zero differences and
// the names for which skip returns true.
func CountDelta(before, after map[string]int64, skip func(name string) bool) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if skip != nil && skip(k) {
			continue
		}
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Sum adds the values of m.
func Sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// FormatCounts prints m sorted by name: "a=1 b=2" ("none" when empty).
func FormatCounts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// Percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(float64(len(s))*p/100-1e-9)) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// PollClient is an HTTP client for tight polling loops from several
// goroutines: keep-alive connections enough for all of them, no redirects,
// no cookies.
func PollClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport:     tr,
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// StatusOf sends GET url with an Authorization: Bearer token and returns
// the status (the body is drained so the connection is reused). Safe to
// call from any goroutine: it reports errors instead of failing the test.
func StatusOf(c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// PollStatus polls StatusOf every interval until it answers want, and
// returns the time from start to that answer; it gives up at deadline.
// Safe to call from any goroutine.
func PollStatus(c *http.Client, url, token string, want int, start, deadline time.Time, interval time.Duration) (time.Duration, error) {
	last := 0
	for {
		code, err := StatusOf(c, url, token)
		if err == nil && code == want {
			return time.Since(start), nil
		}
		if err == nil {
			last = code
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("still %d (not %d) after %s", last, want, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(interval)
	}
}
