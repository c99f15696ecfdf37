package e2e

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// collector is a minimal OTLP/HTTP traces receiver.
type collector struct {
	mu    sync.Mutex
	spans map[string][]string // trace id (hex) -> span names
}

func newCollector(t *testing.T) (*collector, string) {
	c := &collector{spans: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", 400)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					id := hex.EncodeToString(s.TraceId)
					c.spans[id] = append(c.spans[id], s.Name)
				}
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL + "/v1/traces"
}

func (c *collector) names(traceID string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans[traceID]...)
}

func TestTracingPropagatesAndExports(t *testing.T) {
	t.Parallel()
	col, endpoint := newCollector(t)
	e := startJWTWith(t, "tracing:\n  endpoint: \""+endpoint+"\"\n")
	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	resp, _ := h.Get(t, e.gw.URL+"/api/orders", "Authorization", "Bearer "+e.token(t, mint.Dev{Roles: []string{"admin"}}),
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tp := e.up.Last(t).Header.Get("Traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == "00f067aa0ba902b7" {
		t.Fatalf("upstream traceparent %q: want trace %s with the gateway's own span as parent", tp, traceID)
	}
	e.gw.Stop() // flushes the batched spans
	h.Eventually(t, 10*time.Second, "the request's spans at the collector", func() bool {
		got := strings.Join(col.names(traceID), ",")
		return strings.Contains(got, "portcullis.request") && strings.Contains(got, "portcullis.auth") && strings.Contains(got, "portcullis.upstream")
	})
}
