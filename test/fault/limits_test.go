package fault

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	h "github.com/portcullis/portcullis/test/internal/harness"
)

const limitsConfig = `
server:
  listen: "127.0.0.1:0"
{{.Limits}}
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
log:
  access: false
routes:
  - name: open
    path: /open
    upstream: "{{.Up}}"
    auth: none
  - name: upload
    path: /upload
    upstream: "{{.Sink}}"
    auth: none
  - name: capped
    path: /capped
    upstream: "{{.Gate}}"
    auth: none
    max_concurrent: 2
`

// rawStatus sends a raw HTTP/1.1 request and returns the status code of
// the answer (0: none).
func rawStatus(t *testing.T, addr, request string) int {
	t.Helper()
	out := h.Raw(t, addr, request)
	var code int
	if _, err := fmt.Sscanf(out, "HTTP/1.1 %d", &code); err != nil {
		return 0
	}
	return code
}

// withFields is a GET /open with exactly n header fields (Host is not a
// field: net/http moves it to the request line's authority).
func withFields(n int) string {
	var b strings.Builder
	b.WriteString("GET /open HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-Field-%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// ofSize is a GET /open whose request line and header lines, as sent
// (CRLFs included, the final empty line not), are exactly size bytes.
func ofSize(size int) string {
	head := "GET /open HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nX-Pad: "
	return head + strings.Repeat("p", size-len(head)-len("\r\n")) + "\r\n\r\n"
}

// TestHeaderLimits: server.max_header_count and server.max_header_bytes,
// configured and at their defaults, accept a request exactly at the limit
// and answer 431 one above it, before anything reaches the upstream.
func TestHeaderLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		limits        string
		fields, bytes int
	}{
		{"configured", "  max_header_count: 20\n  max_header_bytes: 4096", 20, 4096},
		{"defaults", "", 100, 32768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up, count := okUpstream(t)
			gw := start(t, t.TempDir(), h.Config(t, limitsConfig, map[string]any{
				"Limits": tc.limits, "Up": up, "Sink": up, "Gate": up,
			}))
			for _, c := range []struct {
				what    string
				request string
				want    int
			}{
				{fmt.Sprintf("%d fields", tc.fields), withFields(tc.fields), 200},
				{fmt.Sprintf("%d fields", tc.fields+1), withFields(tc.fields + 1), 431},
				{fmt.Sprintf("%d bytes", tc.bytes), ofSize(tc.bytes), 200},
				{fmt.Sprintf("%d bytes", tc.bytes+1), ofSize(tc.bytes + 1), 431},
			} {
				before := count.Load()
				if got := rawStatus(t, gw.Addr, c.request); got != c.want {
					t.Errorf("%s: status %d, want %d", c.what, got, c.want)
				}
				if forwarded := count.Load() - before; (c.want == 431) != (forwarded == 0) {
					t.Errorf("%s: %d requests reached the upstream", c.what, forwarded)
				}
			}
		})
	}
}

// sink is an upstream that reads the request body as it arrives and
// answers its length and SHA-256.
type sink struct {
	*httptest.Server
	received atomic.Int64
}

func (s *sink) Write(p []byte) (int, error) {
	s.received.Add(int64(len(p)))
	return len(p), nil
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(sum, s), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
	}))
	t.Cleanup(s.Close)
	return s
}

// gate is an upstream that holds every request until released.
type gate struct {
	*httptest.Server
	arrived chan struct{}
	release chan struct{}
	count   atomic.Int64
}

func newGate(t *testing.T) *gate {
	t.Helper()
	g := &gate{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.count.Add(1)
		g.arrived <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
		g.Close()
	})
	return g
}

var errNotStreamed = errors.New("the upstream received nothing while the client held the rest of the body: the gateway buffers request bodies")

// TestBodyStreamingAndRouteCap: a 64 MiB request body is streamed to the
// upstream (it receives the beginning while the client still holds the
// rest) without the gateway's memory growing by anything like the body's
// size; and a route's max_concurrent turns the request above the cap into
// 503 with Retry-After, without queueing it or touching the upstream.
func TestBodyStreamingAndRouteCap(t *testing.T) {
	t.Parallel()
	up, _ := okUpstream(t)
	sk := newSink(t)
	gt := newGate(t)
	gw := start(t, t.TempDir(), h.Config(t, limitsConfig, map[string]any{
		"Limits": "", "Up": up, "Sink": sk.URL, "Gate": gt.URL,
	}))

	t.Run("64 MiB body streamed, not buffered", func(t *testing.T) {
		const chunks, chunkSize = 64, 1 << 20
		const size = chunks * chunkSize
		chunk := make([]byte, chunkSize)
		rng := rand.NewChaCha8([32]byte{7})
		_, _ = rng.Read(chunk)
		want := sha256.New()
		for range chunks {
			want.Write(chunk)
		}
		pid := pidOf(t, gw)
		peakBefore := procStatusKB(t, pid, "VmHWM")

		pr, pw := io.Pipe()
		go func() {
			for i := range chunks {
				if i == 4 {
					// Hold the remaining 60 MiB until the upstream has seen
					// the first MiB: a gateway that buffers bodies never
					// lets it through.
					deadline := time.Now().Add(20 * time.Second)
					for sk.received.Load() < chunkSize {
						if time.Now().After(deadline) {
							pw.CloseWithError(errNotStreamed)
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, gw.URL+"/upload", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		resp, body := h.Do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
		if got, wantBody := string(body), fmt.Sprintf("%d %s", size, hex.EncodeToString(want.Sum(nil))); got != wantBody {
			t.Fatalf("the upstream received %q, want %q", got, wantBody)
		}
		peakAfter := procStatusKB(t, pid, "VmHWM")
		grew := (peakAfter - peakBefore) << 10
		t.Logf("gateway peak RSS %d KiB before, %d KiB after a %d MiB body", peakBefore, peakAfter, size>>20)
		if grew > size/4 {
			t.Errorf("the gateway's peak RSS grew by %d MiB for a %d MiB body", grew>>20, size>>20)
		}
	})

	t.Run("max_concurrent: the request above the cap gets 503 with Retry-After", func(t *testing.T) {
		type result struct {
			code int
			body []byte
		}
		results := make(chan result, 2)
		for range 2 {
			go func() {
				resp, body, err := get(h.Client(), gw.URL+"/capped")
				if err != nil {
					results <- result{}
					return
				}
				results <- result{resp.StatusCode, body}
			}()
		}
		for i := range 2 {
			select {
			case <-gt.arrived:
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d requests reached the capped upstream", i)
			}
		}
		resp, body := h.Get(t, gw.URL+"/capped")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"error":"temporarily_unavailable"`)) {
			t.Fatalf("third concurrent request: %d Retry-After %q %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if n := gt.count.Load(); n != 2 {
			t.Fatalf("the capped upstream got %d requests, want 2", n)
		}
		if resp, _ := h.Get(t, gw.URL+"/open"); resp.StatusCode != 200 {
			t.Fatalf("another route while the cap is reached: %d", resp.StatusCode)
		}
		close(gt.release)
		for range 2 {
			if r := <-results; r.code != 200 || string(r.body) != "done" {
				t.Fatalf("a request within the cap: %d %q", r.code, r.body)
			}
		}
		if resp, _ := h.Get(t, gw.URL+"/capped"); resp.StatusCode != 200 {
			t.Fatalf("after the slots were freed: %d", resp.StatusCode)
		}
	})
}

// TestRouteCapSurvivesReload: requests in flight on a capped route still
// count against its max_concurrent after a reload that leaves the route's
// cap unchanged, so a reload never lets a burst of twice the cap through
// to the upstream the cap protects.
func TestRouteCapSurvivesReload(t *testing.T) {
	t.Parallel()
	up, _ := okUpstream(t)
	gt := newGate(t)
	vars := map[string]any{"Limits": "", "Up": up, "Sink": up, "Gate": gt.URL}
	gw := start(t, t.TempDir(), h.Config(t, limitsConfig, vars))

	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _, err := get(h.Client(), gw.URL+"/capped")
			if err != nil {
				done <- 0
				return
			}
			done <- resp.StatusCode
		}()
	}
	for i := range 2 {
		select {
		case <-gt.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d requests reached the capped upstream", i)
		}
	}

	// An unrelated change: one more route.
	h.ReplaceFile(t, gw.ConfigPath, h.Config(t, limitsConfig, vars)+
		"  - name: extra\n    path: /extra\n    upstream: \""+up+"\"\n    auth: none\n")
	gw.Signal(syscall.SIGHUP)
	h.Eventually(t, 10*time.Second, "the reload", func() bool { return strings.Contains(gw.Logs(), `"configuration reloaded"`) })
	if got := status(gw.URL + "/extra"); got != 200 {
		t.Fatalf("the reloaded route: %d", got)
	}
	third := make(chan *http.Response, 1)
	go func() {
		resp, _, _ := get(h.Client(), gw.URL+"/capped")
		third <- resp
	}()
	select {
	case resp := <-third:
		if resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("a third concurrent request after the reload: %v, want 503 with Retry-After", resp)
		}
	case <-gt.arrived:
		t.Error("a third concurrent request reached the capped upstream after the reload (max_concurrent: 2)")
	}
	close(gt.release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Fatalf("a request within the cap: %d", code)
		}
	}
}
