package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// scrape reads /metrics into "name{labels}" -> value.
func scrape(t *testing.T, gw *h.Gateway) map[string]float64 {
	t.Helper()
	resp, body := h.Get(t, gw.AdminURL+"/metrics")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad metric line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsMove(t *testing.T) {
	t.Parallel()
	e := startJWT(t)
	good := e.token(t, mint.Dev{Roles: []string{"admin"}})
	revoked := e.token(t, mint.Dev{Roles: []string{"admin"}, JTI: "to-revoke"})
	before := scrape(t, e.gw)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "portcullis_store_errors_total", "portcullis_refresh_reuse_total", "portcullis_revocation_sync_lag_seconds"} {
		if _, ok := before[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	for i := 0; i < 3; i++ {
		h.Get(t, e.gw.URL+"/api/orders", "Authorization", "Bearer "+good)
	}
	h.Get(t, e.gw.URL+"/api/orders")
	body := fmt.Sprintf(`{"jti":"to-revoke","issuer":"https://idp.test/","expires_at":%d}`, time.Now().Add(time.Hour).Unix())
	if code, data := e.gw.Admin(t, "admin-secret-token", "POST", "/v1/revocations", body); code != 201 {
		t.Fatalf("revoke: %d %s", code, data)
	}
	if resp, _ := h.Get(t, e.gw.URL+"/api/orders", "Authorization", "Bearer "+revoked); resp.StatusCode != 401 {
		t.Fatalf("revoked token: %d", resp.StatusCode)
	}
	after := scrape(t, e.gw)
	for key, delta := range map[string]float64{
		`portcullis_requests_total{code="200",route="orders"}`:                                3,
		`portcullis_requests_total{code="401",route="orders"}`:                                2,
		`portcullis_auth_decisions_total{method="jwt",result="allow",route="orders"}`:         3,
		`portcullis_auth_decisions_total{method="-",result="no-credential",route="orders"}`:   1,
		`portcullis_auth_decisions_total{method="jwt",result="token-revoked",route="orders"}`: 1,
		`portcullis_revocations_bloom_hits_total{confirmed="true"}`:                           1,
		`portcullis_request_duration_seconds_count{route="orders"}`:                           5,
	} {
		if got := after[key] - before[key]; got != delta {
			t.Errorf("%s moved by %v, want %v", key, got, delta)
		}
	}
	for k := range after {
		if strings.Contains(k, "/api/orders") || strings.Contains(k, good) {
			t.Errorf("unbounded or secret label in %s", k)
		}
	}
}
