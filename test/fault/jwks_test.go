package fault

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const jwksConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
jwt:
  issuers:
    - issuer: "` + issuer + `"
      audiences: [api]
      algorithms: [ES256]
      jwks_url: "{{.JWKS}}"
      jwks_refresh: 1s
log:
  access: false
routes:
  - name: api
    path: /api
    upstream: "{{.Up}}"
    auth: jwt
`

// jwksServer serves a JWK Set, or fails in the way its mode says.
type jwksServer struct {
	*httptest.Server
	good []byte
	mu   sync.Mutex
	mode string
	hits map[string]int
}

func newJWKSServer(t *testing.T, keys h.Keys, mode string) *jwksServer {
	t.Helper()
	now := time.Now()
	s := &jwksServer{good: mint.NewKeyRing(now, 0, nil, keys.Signer.Key()).JWKS(now), mode: mode, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode := s.mode
		s.hits[mode]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch mode {
		case "good":
			_, _ = w.Write(s.good)
		case "500":
			http.Error(w, "internal error", http.StatusInternalServerError)
		case "garbage":
			_, _ = io.WriteString(w, "<html><body>maintenance</body></html>")
		case "truncated":
			_, _ = w.Write(s.good[:len(s.good)/2])
		case "empty":
			_, _ = io.WriteString(w, `{"keys":[]}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(mode string) {
	s.mu.Lock()
	s.mode = mode
	s.mu.Unlock()
}

func (s *jwksServer) hitsOf(mode string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[mode]
}

type readyz struct {
	Status  string `json:"status"`
	Keys    string `json:"keys"`
	Issuers []struct {
		Issuer      string `json:"issuer"`
		Keys        int    `json:"keys"`
		Ready       bool   `json:"ready"`
		LastError   string `json:"last_error"`
		LastErrorAt int64  `json:"last_error_at"`
		LastRefresh int64  `json:"last_refresh"`
	} `json:"issuers"`
}

func readiness(t *testing.T, gw *h.Gateway) (int, readyz) {
	t.Helper()
	resp, body := h.Get(t, gw.AdminURL+"/readyz")
	var rd readyz
	if err := json.Unmarshal(body, &rd); err != nil || len(rd.Issuers) != 1 {
		t.Fatalf("/readyz body %s: %v", body, err)
	}
	return resp.StatusCode, rd
}

// TestJWKSFailures: a JWKS endpoint that fails (500), serves garbage, a
// truncated document or an empty key set: the last good key set stays in
// use, tokens keep verifying, and /readyz stays 200 while naming the
// issuer's last error. A node whose JWKS never loaded is not ready, and
// becomes ready by itself once the endpoint recovers.
func TestJWKSFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := h.NewES256(t, dir, "idp")
	tok := token(t, keys, mint.Dev{Subject: "alice"})
	auth := []string{"Authorization", "Bearer " + tok}

	t.Run("the last good key set stays in use", func(t *testing.T) {
		t.Parallel()
		js := newJWKSServer(t, keys, "good")
		up, _ := okUpstream(t)
		gw := start(t, t.TempDir(), h.Config(t, jwksConfig, map[string]any{"JWKS": js.URL, "Up": up}))
		gw.WaitReady(t)
		if got := status(gw.URL+"/api", auth...); got != 200 {
			t.Fatalf("with a good JWKS: %d", got)
		}
		// Each failure, and the error /readyz shows for it.
		for _, tc := range []struct{ mode, says string }{
			{"500", "500"}, {"garbage", "invalid character"}, {"truncated", "unexpected EOF"}, {"empty", "no usable signature keys"},
		} {
			js.set(tc.mode)
			var rd readyz
			code := 0
			h.Eventually(t, 15*time.Second, "/readyz to report the "+tc.mode+" JWKS", func() bool {
				code, rd = readiness(t, gw)
				return strings.Contains(rd.Issuers[0].LastError, tc.says)
			})
			is := rd.Issuers[0]
			if code != 200 || rd.Status != "ready" || !is.Ready || is.Keys != 1 || is.LastErrorAt == 0 {
				t.Errorf("%s JWKS: /readyz %d %+v, want 200 with the last good set (1 key) and the last error", tc.mode, code, rd)
			}
			if got := status(gw.URL+"/api", auth...); got != 200 {
				t.Errorf("%s JWKS: a token of the last good set got %d, want 200", tc.mode, got)
			}
			t.Logf("%s JWKS: /readyz %d reports %q", tc.mode, code, is.LastError)
		}
		errors := fmt.Sprintf(`portcullis_jwks_refresh_total{issuer=%q,result="error"}`, issuer)
		if n := metric(t, gw, errors); n < 4 {
			t.Errorf("%s = %v, want >= 4", errors, n)
		}
		oks := fmt.Sprintf(`portcullis_jwks_refresh_total{issuer=%q,result="ok"}`, issuer)
		before := metric(t, gw, oks)
		js.set("good")
		h.Eventually(t, 15*time.Second, "a successful refresh after recovery", func() bool { return metric(t, gw, oks) > before })
		if got := status(gw.URL+"/api", auth...); got != 200 {
			t.Errorf("after recovery: %d", got)
		}
	})

	t.Run("never loaded: not ready until the endpoint recovers", func(t *testing.T) {
		t.Parallel()
		js := newJWKSServer(t, keys, "500")
		up, count := okUpstream(t)
		gw := start(t, t.TempDir(), h.Config(t, jwksConfig, map[string]any{"JWKS": js.URL, "Up": up}))
		h.Eventually(t, 15*time.Second, "a failed JWKS fetch", func() bool { return js.hitsOf("500") >= 1 })
		h.Eventually(t, 5*time.Second, "/readyz to name the failure", func() bool {
			code, rd := readiness(t, gw)
			return code == 503 && strings.Contains(rd.Keys, "never loaded") && !rd.Issuers[0].Ready && rd.Issuers[0].LastError != ""
		})
		before := count.Load()
		if got := status(gw.URL+"/api", auth...); got != 503 {
			t.Fatalf("a token of an issuer whose keys never loaded: %d, want 503 (a technical failure, not a bad token)", got)
		}
		if count.Load() != before {
			t.Fatal("a request without verifiable keys reached the upstream")
		}
		js.set("good")
		gw.WaitReady(t)
		if got := status(gw.URL+"/api", auth...); got != 200 {
			t.Fatalf("after the JWKS recovered: %d", got)
		}
	})
}
