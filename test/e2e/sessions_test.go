package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const adminToken = "admin-secret-token"

const sessionConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
{{.Store}}
jwt:
  issuers:
    - issuer: "https://idp.test/"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
sessions:
  idle_timeout: {{.Idle}}
  absolute_timeout: {{.Absolute}}
revocation:
  resync_interval: 2s
routes:
  - name: account
    path: /acct
    upstream: "{{.Up}}"
    auth: session
  - name: admin-area
    path: /admin-area
    upstream: "{{.Up}}"
    auth: any
    roles: [admin]
  - name: jwtonly
    path: /jwt
    upstream: "{{.Up}}"
    auth: jwt
  - name: login
    path: /login
    upstream: "{{.Up}}"
    auth: none
    issue_session: true
  - name: mfa
    path: /mfa
    upstream: "{{.Up}}"
    auth: session
    issue_session: true
  - name: pay
    path: /pay
    upstream: "{{.Up}}"
    auth: session
    step_up: {acr: [mfa], max_age: 5m}
`

const cookieName = "__Host-portcullis"

type sessEnv struct {
	gw   *h.Gateway
	up   *h.Upstream
	keys h.Keys
}

func memoryStore() string { return "  type: memory" }

func redisStore(addr string) string {
	return fmt.Sprintf("  type: redis\n  redis:\n    addrs: [%q]\n    timeout: 500ms", addr)
}

func startSessions(t *testing.T, store, idle, absolute string) *sessEnv {
	t.Helper()
	dir := t.TempDir()
	up := h.NewUpstream(t)
	keys := h.NewES256(t, dir, "idp")
	cfg := h.Config(t, sessionConfig, map[string]any{"Key": keys.Public, "Up": up.URL, "Store": store, "Idle": idle, "Absolute": absolute})
	gw := h.Start(t, dir, cfg)
	gw.WaitReady(t)
	return &sessEnv{gw: gw, up: up, keys: keys}
}

func createSession(t *testing.T, gw *h.Gateway, body string) h.Session {
	t.Helper()
	return gw.CreateSession(t, adminToken, body)
}

func withCookie(id string) []string { return []string{"Cookie", cookieName + "=" + id} }

func TestSessionsMemory(t *testing.T) {
	t.Parallel()
	testSessions(t, startSessions(t, memoryStore(), "30m", "12h"))
}

func TestSessionsRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	testSessions(t, startSessions(t, redisStore(rs.Addr()), "30m", "12h"))
}

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func testSessions(t *testing.T, e *sessEnv) {
	gw, up := e.gw, e.up
	c := createSession(t, gw, `{"subject":"alice","roles":["user"],"scopes":["read"],"acr":"pwd","amr":["pwd"],"ttl":"1h","attributes":{"tenant":"t1"}}`)
	if !sessionIDPattern.MatchString(c.SessionID) || c.Handle == "" || c.ExpiresAt < time.Now().Add(59*time.Minute).Unix() {
		t.Fatalf("created %+v", c)
	}

	t.Run("cookie: identity forwarded, session cookie removed, other cookies kept", func(t *testing.T) {
		up.Reset()
		resp, _ := h.Get(t, gw.URL+"/acct/x", "Cookie", "theme=dark; "+cookieName+"="+c.SessionID+"; lang=en")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := up.Last(t)
		for k, v := range map[string]string{"X-Auth-Subject": "alice", "X-Auth-Method": "session", "X-Auth-Session": c.Handle,
			"X-Auth-Roles": "user", "X-Auth-Scopes": "read", "X-Auth-Acr": "pwd", "Cookie": "theme=dark; lang=en"} {
			if got.Header.Get(k) != v {
				t.Errorf("upstream %s = %q, want %q", k, got.Header.Get(k), v)
			}
		}
		if strings.Contains(fmt.Sprint(got.Header), c.SessionID) {
			t.Error("the session ID reached the upstream")
		}
	})

	t.Run("bearer", func(t *testing.T) {
		if resp, _ := h.Get(t, gw.URL+"/acct", "Authorization", "Bearer "+c.SessionID); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("cookie and bearer disagreeing is 400", func(t *testing.T) {
		other := createSession(t, gw, `{"subject":"bob"}`)
		resp, _ := h.Get(t, gw.URL+"/acct", append(withCookie(c.SessionID), "Authorization", "Bearer "+other.SessionID)...)
		if resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		resp, _ = h.Get(t, gw.URL+"/acct", "Cookie", cookieName+"="+c.SessionID+"; "+cookieName+"="+other.SessionID)
		if resp.StatusCode != 400 {
			t.Fatalf("two differing session cookies: status %d", resp.StatusCode)
		}
	})

	t.Run("unknown session is 401 invalid_token", func(t *testing.T) {
		resp, _ := h.Get(t, gw.URL+"/acct", withCookie(strings.Repeat("A", 43))...)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("PATCH roles takes effect on the next request", func(t *testing.T) {
		if resp, _ := h.Get(t, gw.URL+"/admin-area", withCookie(c.SessionID)...); resp.StatusCode != 403 {
			t.Fatalf("before: status %d", resp.StatusCode)
		}
		code, body := gw.Admin(t, adminToken, "PATCH", "/v1/sessions/"+c.Handle, `{"roles":["user","admin"]}`)
		if code != 200 {
			t.Fatalf("PATCH: %d %s", code, body)
		}
		if resp, _ := h.Get(t, gw.URL+"/admin-area", withCookie(c.SessionID)...); resp.StatusCode != 200 {
			t.Fatalf("after: status %d", resp.StatusCode)
		}
	})

	t.Run("list by subject", func(t *testing.T) {
		code, body := gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=alice", "")
		var list []map[string]any
		if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 {
			t.Fatalf("%d %s", code, body)
		}
		for _, k := range []string{"handle", "subject", "roles", "acr", "created_at", "last_seen_at", "expires_at"} {
			if _, ok := list[0][k]; !ok {
				t.Errorf("list entry lacks %q: %s", k, body)
			}
		}
		if strings.Contains(string(body), c.SessionID) {
			t.Error("the list shows the session secret")
		}
	})

	t.Run("CSRF on cookie-authenticated unsafe methods", func(t *testing.T) {
		post := func(headers ...string) int {
			req, _ := http.NewRequest("POST", gw.URL+"/acct", strings.NewReader("x"))
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			resp, body := h.Do(t, req)
			if resp.StatusCode == 403 && !strings.Contains(string(body), `"error":"csrf"`) {
				t.Errorf("403 body %s lacks error csrf", body)
			}
			return resp.StatusCode
		}
		self := gw.URL
		cookie := cookieName + "=" + c.SessionID
		for _, tc := range []struct {
			name    string
			headers []string
			want    int
		}{
			{"cross-origin Origin", []string{"Cookie", cookie, "Origin", "https://evil.example"}, 403},
			{"same Origin", []string{"Cookie", cookie, "Origin", self}, 200},
			{"no Origin, cross Referer", []string{"Cookie", cookie, "Referer", "https://evil.example/x"}, 403},
			{"no Origin, same Referer", []string{"Cookie", cookie, "Referer", self + "/page"}, 200},
			{"Sec-Fetch-Site cross-site", []string{"Cookie", cookie, "Sec-Fetch-Site", "cross-site"}, 403},
			{"nothing to tell", []string{"Cookie", cookie}, 403},
			{"bearer is not subject to CSRF", []string{"Authorization", "Bearer " + c.SessionID, "Origin", "https://evil.example"}, 200},
		} {
			up.Reset()
			if got := post(tc.headers...); got != tc.want {
				t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
			}
			if tc.want == 403 && up.Count() != 0 {
				t.Errorf("%s: a CSRF refusal reached the upstream", tc.name)
			}
		}
	})

	t.Run("a login service creates a session with the exact cookie attributes", func(t *testing.T) {
		up.Handle(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/login":
				w.Header().Set("Portcullis-Session", `{"subject":"carol","roles":["user"],"acr":"pwd","amr":["pwd"],"ttl":"1h"}`)
			case "/acct/leak":
				w.Header().Set("Portcullis-Session", `{"subject":"root","roles":["admin"]}`)
			case "/mfa":
				w.Header().Set("Portcullis-Session-Update", `{"acr":"mfa","amr":["pwd","otp"]}`)
			}
		})
		defer up.Handle(nil)
		resp, _ := h.Get(t, gw.URL+"/login")
		if resp.StatusCode != 200 || resp.Header.Get("Portcullis-Session") != "" {
			t.Fatalf("status %d, Portcullis-Session leaked: %q", resp.StatusCode, resp.Header.Get("Portcullis-Session"))
		}
		sc := resp.Header.Get("Set-Cookie")
		m := regexp.MustCompile(`^__Host-portcullis=([A-Za-z0-9_-]{43}); Path=/; HttpOnly; Secure; SameSite=Lax$`).FindStringSubmatch(sc)
		if m == nil {
			t.Fatalf("Set-Cookie %q", sc)
		}
		id := m[1]
		if resp, _ := h.Get(t, gw.URL+"/acct", withCookie(id)...); resp.StatusCode != 200 || up.Last(t).Header.Get("X-Auth-Subject") != "carol" {
			t.Fatalf("the issued session does not work: %d", resp.StatusCode)
		}

		// On a route without issue_session the header is removed and ignored.
		resp, _ = h.Get(t, gw.URL+"/acct/leak", withCookie(id)...)
		if resp.Header.Get("Portcullis-Session") != "" || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("a non-issuing route passed the session header or set a cookie: %v", resp.Header)
		}
		if code, body := gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=root", ""); code != 200 || string(body) != "[]\n" {
			t.Fatalf("a session was created from a non-issuing route: %d %s", code, body)
		}

		// Step-up: refused, then elevated by the MFA service's update header.
		resp, _ = h.Get(t, gw.URL+"/pay", withCookie(id)...)
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
			t.Fatalf("before MFA: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		resp, _ = h.Get(t, gw.URL+"/mfa", withCookie(id)...)
		if resp.StatusCode != 200 || resp.Header.Get("Portcullis-Session-Update") != "" {
			t.Fatalf("MFA call: %d, update header leaked %q", resp.StatusCode, resp.Header.Get("Portcullis-Session-Update"))
		}
		if resp, _ := h.Get(t, gw.URL+"/pay", withCookie(id)...); resp.StatusCode != 200 {
			t.Fatalf("after MFA: %d", resp.StatusCode)
		}
		if got := up.Last(t).Header.Get("X-Auth-Amr"); got != "pwd,otp" {
			t.Fatalf("X-Auth-Amr %q after the update", got)
		}
	})

	t.Run("logout deletes the session and clears the cookie", func(t *testing.T) {
		s := createSession(t, gw, `{"subject":"dave"}`)
		req, _ := http.NewRequest("POST", gw.URL+"/.portcullis/logout", nil)
		req.Header.Set("Cookie", cookieName+"="+s.SessionID)
		req.Header.Set("Origin", gw.URL)
		resp, _ := h.Do(t, req)
		if resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Set-Cookie"), cookieName+"=;") || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("logout: %d %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
		}
		if resp, _ := h.Get(t, gw.URL+"/acct", withCookie(s.SessionID)...); resp.StatusCode != 401 {
			t.Fatalf("after logout: %d", resp.StatusCode)
		}
	})

	t.Run("DELETE kills the session on the next request", func(t *testing.T) {
		if code, body := gw.Admin(t, adminToken, "DELETE", "/v1/sessions/"+c.Handle, ""); code != 204 {
			t.Fatalf("DELETE: %d %s", code, body)
		}
		if resp, _ := h.Get(t, gw.URL+"/acct", withCookie(c.SessionID)...); resp.StatusCode != 401 {
			t.Fatalf("after DELETE: %d", resp.StatusCode)
		}
		if code, _ := gw.Admin(t, adminToken, "DELETE", "/v1/sessions/"+c.Handle, ""); code != 404 {
			t.Fatalf("second DELETE: %d, want 404", code)
		}
	})

	t.Run("admin API: token required, bad bodies name the field", func(t *testing.T) {
		if code, _ := gw.Admin(t, "", "GET", "/v1/sessions?subject=a", ""); code != 401 {
			t.Errorf("no token: %d", code)
		}
		if code, _ := gw.Admin(t, "wrong", "GET", "/v1/sessions?subject=a", ""); code != 401 {
			t.Errorf("wrong token: %d", code)
		}
		for body, field := range map[string]string{
			`{"subject":1}`:                "subject",
			`{"roles":["a"]}`:              "subject",
			`{"subject":"a","ttl":"soon"}`: "ttl",
			`{"subject":"a","colour":"x"}`: "colour",
			`{"subject":"a","roles":"x"}`:  "roles",
			`{"subject":"a","mode":"x"}`:   "mode",
		} {
			code, data := gw.Admin(t, adminToken, "POST", "/v1/sessions", body)
			if code != 400 || !strings.Contains(string(data), field) {
				t.Errorf("POST %s: %d %s, want 400 naming %q", body, code, data, field)
			}
		}
		if code, data := gw.Admin(t, adminToken, "PATCH", "/v1/sessions/x", `{"acr":5}`); code != 400 || !strings.Contains(string(data), "acr") {
			t.Errorf("PATCH bad acr: %d %s", code, data)
		}
	})
}

// TestSessionsAcrossNodesOnRedis: two gateways share one real redis-server.
func TestSessionsAcrossNodesOnRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t, "--appendonly", "yes")
	a := startSessions(t, redisStore(rs.Addr()), "30m", "12h")
	b := startSessions(t, redisStore(rs.Addr()), "30m", "12h")

	s1 := createSession(t, a.gw, `{"subject":"erin","roles":["user"]}`)
	s2 := createSession(t, a.gw, `{"subject":"erin","roles":["user"]}`)
	other := createSession(t, a.gw, `{"subject":"frank"}`)
	tok := a.keys.Token(t, mint.Dev{Issuer: "https://idp.test/", Audience: []string{"api"}, Subject: "erin"})
	_ = tok
	for _, id := range []string{s1.SessionID, s2.SessionID} {
		if resp, _ := h.Get(t, b.gw.URL+"/acct", withCookie(id)...); resp.StatusCode != 200 {
			t.Fatalf("node B does not accept node A's session: %d", resp.StatusCode)
		}
	}

	t.Run("PATCH on A, effective on B", func(t *testing.T) {
		if code, _ := a.gw.Admin(t, adminToken, "PATCH", "/v1/sessions/"+s1.Handle, `{"roles":["admin"]}`); code != 200 {
			t.Fatal(code)
		}
		if resp, _ := h.Get(t, b.gw.URL+"/admin-area", withCookie(s1.SessionID)...); resp.StatusCode != 200 {
			t.Fatalf("B after PATCH on A: %d", resp.StatusCode)
		}
	})

	t.Run("no raw session ID anywhere in Redis", func(t *testing.T) {
		rc := rs.Client(t)
		ctx := context.Background()
		var dump strings.Builder
		iter := rc.Scan(ctx, 0, "*", 1000).Iterator()
		n := 0
		for iter.Next(ctx) {
			k := iter.Val()
			n++
			dump.WriteString(k)
			v, err := rc.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			dump.WriteString(v)
		}
		if n == 0 {
			t.Fatal("Redis is empty: the sessions are not stored there")
		}
		for _, id := range []string{s1.SessionID, s2.SessionID, other.SessionID} {
			if strings.Contains(dump.String(), id) {
				t.Fatal("a raw session ID is stored in Redis")
			}
		}
	})

	t.Run("log out everywhere on A rejects on B", func(t *testing.T) {
		code, body := a.gw.Admin(t, adminToken, "POST", "/v1/subjects/erin/revoke", "")
		if code != 200 || !strings.Contains(string(body), `"sessions_revoked":2`) {
			t.Fatalf("subject revoke: %d %s", code, body)
		}
		for _, id := range []string{s1.SessionID, s2.SessionID} {
			if resp, _ := h.Get(t, b.gw.URL+"/acct", withCookie(id)...); resp.StatusCode != 401 {
				t.Fatalf("B still accepts a revoked subject's session: %d", resp.StatusCode)
			}
		}
		if resp, _ := h.Get(t, b.gw.URL+"/acct", withCookie(other.SessionID)...); resp.StatusCode != 200 {
			t.Fatalf("another subject's session died too: %d", resp.StatusCode)
		}
		h.Eventually(t, 5*time.Second, "B rejects erin's JWT issued before the revoke", func() bool {
			resp, _ := h.Get(t, b.gw.URL+"/jwt", "Authorization", "Bearer "+tok)
			return resp.StatusCode == 401
		})
	})

	t.Run("Redis down: session routes 503, JWT routes serve; recovery by itself", func(t *testing.T) {
		fresh := b.keys.Token(t, mint.Dev{Issuer: "https://idp.test/", Audience: []string{"api"}, Subject: "gina"})
		rs.Stop(t)
		resp, _ := h.Get(t, b.gw.URL+"/acct", withCookie(other.SessionID)...)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("session route with Redis down: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp, _ := h.Get(t, b.gw.URL+"/jwt", "Authorization", "Bearer "+fresh); resp.StatusCode != 200 {
			t.Fatalf("JWT route with Redis down: %d", resp.StatusCode)
		}
		if resp, _ := h.Get(t, b.gw.AdminURL+"/readyz"); resp.StatusCode != 503 {
			t.Fatalf("readyz with Redis down: %d", resp.StatusCode)
		}
		rs.Restart(t)
		h.Eventually(t, 15*time.Second, "session route serving again after Redis restarts", func() bool {
			resp, _ := h.Get(t, b.gw.URL+"/acct", withCookie(other.SessionID)...)
			return resp.StatusCode == 200
		})
		b.gw.WaitReady(t)
	})
}

// TestSessionExpiry uses short timeouts: sliding idle expiry and the
// absolute end.
func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	e := startSessions(t, redisStore(rs.Addr()), "1500ms", "4s")

	t.Run("used more often than idle_timeout, a session lives until its absolute end", func(t *testing.T) {
		s := createSession(t, e.gw, `{"subject":"ivan"}`)
		start := time.Now()
		for {
			resp, _ := h.Get(t, e.gw.URL+"/acct", withCookie(s.SessionID)...)
			if resp.StatusCode == 401 {
				break
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if time.Since(start) > 15*time.Second {
				t.Fatal("the session outlived its absolute timeout by far")
			}
			time.Sleep(200 * time.Millisecond) // the client's pace: well inside idle_timeout
		}
		if lived := time.Since(start); lived < 2500*time.Millisecond {
			t.Fatalf("the session died after %s although used every 200ms (idle 1.5s, absolute 4s)", lived)
		}
	})

	t.Run("unused, a session expires after idle_timeout", func(t *testing.T) {
		s := createSession(t, e.gw, `{"subject":"judy"}`)
		if resp, _ := h.Get(t, e.gw.URL+"/acct", withCookie(s.SessionID)...); resp.StatusCode != 200 {
			t.Fatalf("fresh session: %d", resp.StatusCode)
		}
		h.Eventually(t, 10*time.Second, "the idle session to vanish from the store", func() bool {
			code, body := e.gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=judy", "")
			return code == 200 && string(body) == "[]\n"
		})
		if resp, _ := h.Get(t, e.gw.URL+"/acct", withCookie(s.SessionID)...); resp.StatusCode != 401 {
			t.Fatalf("idle session still accepted: %d", resp.StatusCode)
		}
	})
}
