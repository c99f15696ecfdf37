// Package e2e drives the real portcullis binary, built from this checkout,
// against real upstreams (and a real redis-server where a test needs one),
// and checks what a user would: statuses, headers, bodies, and what the
// upstream received.
package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const jwtConfig = `
server:
  listen: "127.0.0.1:0"
  max_header_bytes: 8192
admin:
  listen: "127.0.0.1:0"
  token: "admin-secret-token"
store:
  type: memory
jwt:
  issuers:
    - issuer: "https://idp.test/"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
      max_lifetime: 24h
routes:
  - name: public
    path: /public
    upstream: "{{.Up}}"
    auth: none
  - name: orders
    path: /api/orders
    methods: [GET, POST]
    upstream: "{{.Up}}"
    auth: jwt
    roles: ["orders:read", admin]
  - name: scoped
    path: /api/scoped
    upstream: "{{.Up}}"
    auth: jwt
    scopes: [read, write]
  - name: strip
    path: /svc
    upstream: "{{.Up}}/base"
    strip_path: true
    auth: jwt
  - name: hosted
    host: "*.example.com"
    path: /
    upstream: "{{.Up}}"
    auth: jwt
    roles: [host-admin]
  - name: browser
    path: /app
    upstream: "{{.Up}}"
    auth: jwt
    login_url: "https://login.example.com/start"
  - name: noauthz
    path: /private
    upstream: "{{.Up}}"
    auth: jwt
    forward_authorization: false
  - name: slow
    path: /slow
    upstream: "{{.Up}}"
    auth: none
    timeout: 300ms
  - name: dead
    path: /dead
    upstream: "http://127.0.0.1:1"
    auth: none
`

type jwtEnv struct {
	gw   *h.Gateway
	up   *h.Upstream
	keys h.Keys
}

func startJWT(t *testing.T) *jwtEnv { return startJWTWith(t, "") }

// startJWTWith starts the JWT configuration with extra top-level YAML.
func startJWTWith(t *testing.T, extra string) *jwtEnv {
	t.Helper()
	dir := t.TempDir()
	up := h.NewUpstream(t)
	keys := h.NewES256(t, dir, "idp")
	cfg := h.Config(t, jwtConfig, map[string]any{"Key": keys.Public, "Up": up.URL}) + extra
	return &jwtEnv{gw: h.Start(t, dir, cfg), up: up, keys: keys}
}

func (e *jwtEnv) token(t *testing.T, d mint.Dev) string {
	if d.Issuer == "" {
		d.Issuer = "https://idp.test/"
	}
	if d.Audience == nil {
		d.Audience = []string{"api"}
	}
	if d.Subject == "" {
		d.Subject = "alice"
	}
	return e.keys.Token(t, d)
}

func bearer(tok string) string { return "Bearer " + tok }

func TestJWTEdgePath(t *testing.T) {
	e := startJWT(t)
	good := e.token(t, mint.Dev{Roles: []string{"orders:read"}, JTI: "jti-1", ACR: "pwd", AMR: []string{"pwd", "otp"}, AuthTime: time.Now().Unix()})

	t.Run("no credential is 401 with the realm challenge and never forwarded", func(t *testing.T) {
		e.up.Reset()
		resp, body := h.Get(t, e.gw.URL+"/api/orders")
		if resp.StatusCode != 401 {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="portcullis"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
		var eb struct{ Error, RequestID string }
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
			t.Fatalf("body %s is not a JSON error", body)
		}
		if e.up.Count() != 0 {
			t.Fatal("the upstream was reached")
		}
	})

	t.Run("valid token: identity headers set, spoofed ones stripped", func(t *testing.T) {
		e.up.Reset()
		req, _ := http.NewRequest("GET", e.gw.URL+"/api/orders/42?x=1", nil)
		req.Header.Set("Authorization", bearer(good))
		req.Header.Set("X-Auth-Subject", "mallory")
		req.Header.Set("x-auth-roles", "admin")
		req.Header["X_Auth_Subject"] = []string{"mallory2"}
		req.Header["X-AUTH-ACR"] = []string{"mfa"}
		req.Header.Set("X-Auth-Extra", "spoof")
		req.Header.Set("Connection", "X-Auth-Subject, X-Auth-Roles")
		req.Header.Set("X-Forwarded-For", "1.2.3.4")
		req.Header.Set("X-Request-Id", "client-chosen")
		resp, _ := h.Do(t, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		got := e.up.Last(t)
		want := map[string]string{
			"X-Auth-Subject":  "alice",
			"X-Auth-Method":   "jwt",
			"X-Auth-Roles":    "orders:read",
			"X-Auth-Issuer":   "https://idp.test/",
			"X-Auth-Token-Id": "jti-1",
			"X-Auth-Acr":      "pwd",
			"X-Auth-Amr":      "pwd,otp",
			"X-Forwarded-For": "127.0.0.1",
		}
		for k, v := range want {
			if vs := got.Header.Values(k); len(vs) != 1 || vs[0] != v {
				t.Errorf("upstream %s = %q, want exactly %q", k, vs, v)
			}
		}
		for k := range got.Header {
			if strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-Auth-Extra") || strings.Contains(k, "_") {
				t.Errorf("spoofed header %s reached the upstream", k)
			}
		}
		if rid := got.Header.Get("X-Request-Id"); rid == "" || rid == "client-chosen" {
			t.Errorf("X-Request-Id %q: an untrusted client's id must be replaced", rid)
		}
		if rid := resp.Header.Get("X-Request-Id"); rid != got.Header.Get("X-Request-Id") {
			t.Errorf("response X-Request-Id %q differs from the upstream's %q", rid, got.Header.Get("X-Request-Id"))
		}
		if got.RequestURI != "/api/orders/42?x=1" {
			t.Errorf("upstream RequestURI %q", got.RequestURI)
		}
		if got.Header.Get("Authorization") != bearer(good) {
			t.Error("Authorization was not forwarded (forward_authorization defaults to true)")
		}
	})

	refusals := []struct {
		name, path, token, wantErr string
		status                     int
	}{
		{"expired", "/api/orders", e.token(t, mint.Dev{Roles: []string{"admin"}, TTL: -time.Minute}), "invalid_token", 401},
		{"wrong audience", "/api/orders", e.token(t, mint.Dev{Roles: []string{"admin"}, Audience: []string{"other"}}), "invalid_token", 401},
		{"wrong issuer", "/api/orders", e.token(t, mint.Dev{Roles: []string{"admin"}, Issuer: "https://evil.test/"}), "invalid_token", 401},
		{"over max_lifetime", "/api/orders", e.token(t, mint.Dev{Roles: []string{"admin"}, TTL: 48 * time.Hour}), "invalid_token", 401},
		{"garbage", "/api/orders", "a.b.c", "invalid_token", 401},
		{"missing role", "/api/orders", e.token(t, mint.Dev{Roles: []string{"orders:write"}}), "insufficient_scope", 403},
		{"missing one scope", "/api/scoped", e.token(t, mint.Dev{Scope: "read"}), "insufficient_scope", 403},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			e.up.Reset()
			resp, body := h.Get(t, e.gw.URL+tc.path, "Authorization", bearer(tc.token))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="`+tc.wantErr+`"`) {
				t.Errorf("WWW-Authenticate %q lacks error=%q", wa, tc.wantErr)
			}
			var eb struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(body, &eb) != nil || eb.Error != tc.wantErr {
				t.Errorf("body %s, want error %q", body, tc.wantErr)
			}
			if strings.Contains(string(body), tc.token) || strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.token) {
				t.Error("the answer echoes the token")
			}
			if e.up.Count() != 0 {
				t.Error("a refused request reached the upstream")
			}
		})
	}

	t.Run("scopes all-of pass", func(t *testing.T) {
		resp, _ := h.Get(t, e.gw.URL+"/api/scoped", "Authorization", bearer(e.token(t, mint.Dev{Scope: "write extra read"})))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := e.up.Last(t).Header.Get("X-Auth-Scopes"); got != "write extra read" {
			t.Fatalf("X-Auth-Scopes %q", got)
		}
	})

	t.Run("method not allowed names the allowed ones", func(t *testing.T) {
		req, _ := http.NewRequest("DELETE", e.gw.URL+"/api/orders/1", nil)
		req.Header.Set("Authorization", bearer(good))
		resp, _ := h.Do(t, req)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("status %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("no route is 404", func(t *testing.T) {
		resp, _ := h.Get(t, e.gw.URL+"/nowhere")
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("strip_path forwards below the prefix onto the upstream path", func(t *testing.T) {
		e.up.Reset()
		resp, _ := h.Get(t, e.gw.URL+"/svc/a/b?q=1", "Authorization", bearer(good))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := e.up.Last(t).RequestURI; got != "/base/a/b?q=1" {
			t.Fatalf("upstream RequestURI %q", got)
		}
	})

	t.Run("other percent-encodings reach the upstream as sent", func(t *testing.T) {
		e.up.Reset()
		raw := h.Raw(t, e.gw.Addr, "GET /api/orders/caf%C3%A9/%7Euser/a%20b HTTP/1.1\r\nHost: x\r\nAuthorization: "+bearer(good)+"\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 200") {
			t.Fatalf("answer %q", firstLine(raw))
		}
		if got := e.up.Last(t).RequestURI; got != "/api/orders/caf%C3%A9/%7Euser/a%20b" {
			t.Fatalf("upstream RequestURI %q", got)
		}
	})

	t.Run("host-specific routes win over host-less ones", func(t *testing.T) {
		e.up.Reset()
		req, _ := http.NewRequest("GET", e.gw.URL+"/api/orders", nil)
		req.Host = "API.Example.com."
		req.Header.Set("Authorization", bearer(good))
		resp, _ := h.Do(t, req)
		if resp.StatusCode != 403 {
			t.Fatalf("status %d, want 403 from the host route's role rule", resp.StatusCode)
		}
		admin := e.token(t, mint.Dev{Roles: []string{"host-admin"}})
		req.Header.Set("Authorization", bearer(admin))
		if resp, _ := h.Do(t, req); resp.StatusCode != 200 {
			t.Fatalf("status %d with the host role", resp.StatusCode)
		}
	})

	t.Run("browsers without a credential go to login_url with return_to", func(t *testing.T) {
		resp, _ := h.Get(t, e.gw.URL+"/app/page?x=1", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		if resp.StatusCode != 302 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "https://login.example.com/start?return_to=%2Fapp%2Fpage%3Fx%3D1" {
			t.Fatalf("Location %q", loc)
		}
		resp, _ = h.Get(t, e.gw.URL+"/app/page", "Accept", "application/json")
		if resp.StatusCode != 401 {
			t.Fatalf("API client status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("forward_authorization false drops the Authorization header", func(t *testing.T) {
		e.up.Reset()
		resp, _ := h.Get(t, e.gw.URL+"/private", "Authorization", bearer(good))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := e.up.Last(t)
		if got.Header.Get("Authorization") != "" || got.Header.Get("X-Auth-Subject") != "alice" {
			t.Fatalf("upstream Authorization %q subject %q", got.Header.Get("Authorization"), got.Header.Get("X-Auth-Subject"))
		}
	})

	t.Run("an oversized header block is 431", func(t *testing.T) {
		resp, _ := h.Get(t, e.gw.URL+"/public", "X-Big", strings.Repeat("a", 9000))
		if resp.StatusCode != 431 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("unreachable upstream is 502, a slow one 504", func(t *testing.T) {
		if resp, _ := h.Get(t, e.gw.URL+"/dead"); resp.StatusCode != 502 {
			t.Fatalf("dead upstream: status %d", resp.StatusCode)
		}
		release := make(chan struct{})
		defer close(release)
		e.up.Handle(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/slow") {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
		})
		defer e.up.Handle(nil)
		if resp, _ := h.Get(t, e.gw.URL+"/slow"); resp.StatusCode != 504 {
			t.Fatalf("slow upstream: status %d", resp.StatusCode)
		}
	})

	t.Run("access log has one line per request and never the token", func(t *testing.T) {
		// The access log is flushed every 100ms.
		h.Eventually(t, 5*time.Second, "access log lines with route and subject", func() bool {
			return strings.Contains(e.gw.Logs(), `"route":"orders"`) && strings.Contains(e.gw.Logs(), `"subject":"alice"`)
		})
		if strings.Contains(e.gw.Logs(), good) {
			t.Fatal("a token appears in the logs")
		}
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}
