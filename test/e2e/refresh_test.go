package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/keys"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// Access tokens and refresh-token rotation end to end (issue #9, SPEC
// "Access tokens and refresh-token rotation"): real gateways on one real
// redis-server mint access JWTs from refresh families and rotate the
// refresh tokens.

const (
	rtIssuer = "https://gw.test/"
	rtCookie = "__Secure-portcullis-refresh"
)

const rtConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
  type: redis
  redis:
    addrs: ["{{.Redis}}"]
    timeout: 500ms
revocation:
  resync_interval: {{.Resync}}
tokens:
  issuer: "` + rtIssuer + `"
  audiences: [api, billing]
  signing_key: "{{.SigningKey}}"
  access_ttl: 1m
  refresh_ttl: 24h
  refresh_idle: 1h
  reuse_grace: {{.Grace}}
  refresh_cookie: "` + rtCookie + `"
routes:
  - name: login
    path: /login
    upstream: "{{.Up}}"
    auth: none
    issue_session: true
  - name: api
    path: /api
    upstream: "{{.Up}}"
    auth: jwt
  - name: roles
    path: /admin-api
    upstream: "{{.Up}}"
    auth: jwt
    roles: [admin]
  - name: account
    path: /acct
    upstream: "{{.Up}}"
    auth: session
`

// rtLoginSession is what the login service behind /login answers.
const rtLoginSession = `{"subject":"lena","roles":["user"],"scopes":["read"],"acr":"pwd","amr":["pwd"],"mode":"tokens"}`

// rtEnv is a signing key, an upstream (which is also the login service)
// and the refresh tokens seen by the test, to look for in Redis.
type rtEnv struct {
	dir  string
	key  h.Keys
	up   *h.Upstream
	mu   sync.Mutex
	seen []string
}

func newRTEnv(t *testing.T) *rtEnv {
	t.Helper()
	dir := t.TempDir()
	e := &rtEnv{dir: dir, key: h.NewES256(t, dir, "gateway-signing"), up: h.NewUpstream(t)}
	e.up.Handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Set("Portcullis-Session", rtLoginSession)
		}
		_, _ = w.Write([]byte("ok"))
	})
	return e
}

// node starts one gateway on the Redis at redisAddr and waits until it is
// ready and subscribed to revocations.
func (e *rtEnv) node(t *testing.T, redisAddr, grace, resync string) *h.Gateway {
	t.Helper()
	cfg := h.Config(t, rtConfig, map[string]any{"Redis": redisAddr, "SigningKey": e.key.Private, "Up": e.up.URL, "Grace": grace, "Resync": resync})
	gw := h.Start(t, e.dir, cfg)
	gw.WaitReady(t)
	h.Eventually(t, 10*time.Second, "subscribed to revocations", func() bool {
		return revMetric(t, gw, "portcullis_revocation_subscribed") == 1
	})
	return gw
}

func (e *rtEnv) saw(tok string) {
	e.mu.Lock()
	e.seen = append(e.seen, tok)
	e.mu.Unlock()
}

// family creates a refresh family with POST /v1/sessions; body is the JSON
// without "mode".
func (e *rtEnv) family(t *testing.T, gw *h.Gateway, body string) h.Session {
	t.Helper()
	body = strings.TrimSuffix(strings.TrimSpace(body), "}") + `,"mode":"tokens"}`
	f := gw.CreateSession(t, adminToken, body)
	if f.RefreshToken == "" || f.Handle == "" || f.SessionID != "" {
		t.Fatalf("POST /v1/sessions mode tokens: refresh_token set %v, handle %q, session_id set %v",
			f.RefreshToken != "", f.Handle, f.SessionID != "")
	}
	e.saw(f.RefreshToken)
	return f
}

type rtAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// rtPost sends POST /.portcullis/token with a form body and optional
// header pairs. Safe from any goroutine (errors are returned).
func rtPost(c *http.Client, gw *h.Gateway, form url.Values, headers ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, gw.URL+"/.portcullis/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp, b.Bytes(), err
}

func rtGrant(refresh string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
}

// rtCheckAnswer checks a successful token answer; inBody says whether the
// new refresh token must be in the body (form mode) or absent (cookie mode).
func rtCheckAnswer(resp *http.Response, body []byte, inBody bool) (rtAnswer, error) {
	var a rtAnswer
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("status %d (%s)", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		return a, fmt.Errorf("Cache-Control %q, want no-store", cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return a, fmt.Errorf("Content-Type %q", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || json.Unmarshal(body, &a) != nil {
		return a, fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	if a.TokenType != "Bearer" || a.ExpiresIn != 60 || strings.Count(a.AccessToken, ".") != 2 {
		return a, fmt.Errorf("token_type %q expires_in %d, access_token a JWT: %v", a.TokenType, a.ExpiresIn, strings.Count(a.AccessToken, ".") == 2)
	}
	if _, has := raw["refresh_token"]; has != inBody {
		return a, fmt.Errorf("refresh_token in the body: %v, want %v", has, inBody)
	}
	if inBody && a.RefreshToken == "" {
		return a, errors.New("empty refresh_token")
	}
	return a, nil
}

// refresh rotates in form-body mode and checks the answer.
func (e *rtEnv) refresh(t *testing.T, gw *h.Gateway, refresh string) rtAnswer {
	t.Helper()
	resp, body, err := rtPost(h.Client(), gw, rtGrant(refresh))
	if err != nil {
		t.Fatal(err)
	}
	a, err := rtCheckAnswer(resp, body, true)
	if err != nil {
		t.Fatalf("refresh (body mode): %v", err)
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Fatal("a body-mode refresh set a cookie")
	}
	if a.RefreshToken == refresh {
		t.Fatal("the refresh token was not rotated")
	}
	e.saw(a.RefreshToken)
	return a
}

var rtCookiePattern = regexp.MustCompile(`^` + rtCookie + `=([A-Za-z0-9_-]{20,}); Path=/\.portcullis/token; HttpOnly; Secure; SameSite=Strict$`)

// refreshCookie rotates in cookie mode (same Origin) and returns the answer
// and the new refresh cookie.
func (e *rtEnv) refreshCookie(t *testing.T, gw *h.Gateway, refresh string) (rtAnswer, string) {
	t.Helper()
	resp, body, err := rtPost(h.Client(), gw, url.Values{"grant_type": {"refresh_token"}}, "Cookie", rtCookie+"="+refresh, "Origin", gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	a, err := rtCheckAnswer(resp, body, false)
	if err != nil {
		t.Fatalf("refresh (cookie mode): %v", err)
	}
	m := rtCookiePattern.FindStringSubmatch(resp.Header.Get("Set-Cookie"))
	if m == nil || len(resp.Header.Values("Set-Cookie")) != 1 {
		t.Fatalf("cookie-mode refresh: Set-Cookie lacks the exact refresh cookie (%d Set-Cookie headers)", len(resp.Header.Values("Set-Cookie")))
	}
	if m[1] == refresh {
		t.Fatal("the refresh cookie was not rotated")
	}
	e.saw(m[1])
	return a, m[1]
}

// rtWantOAuthError checks an RFC 6749 §5.2 error answer.
func rtWantOAuthError(t *testing.T, resp *http.Response, body []byte, code, what string) {
	t.Helper()
	var eb struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &eb) != nil || eb.Error != code {
		t.Fatalf("%s: %d %s, want 400 {\"error\":%q}", what, resp.StatusCode, body, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
}

// rtParts decodes a JWT's header and claims without verifying it.
func rtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func rtInt(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s is %T, want a number", name, claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rtStrings(claims map[string]any, name string) []string {
	var out []string
	vs, _ := claims[name].([]any)
	for _, v := range vs {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// TestRefreshTokens: two gateway nodes on one Redis, reuse_grace 2s.
func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	e := newRTEnv(t)
	a, b := e.node(t, rs.Addr(), "2s", "1m"), e.node(t, rs.Addr(), "2s", "1m")
	nodes := []*h.Gateway{a, b}
	other := func(i int) *h.Gateway { return nodes[(i+1)%2] }
	pc := h.PollClient()

	t.Run("a login with mode tokens sets the refresh cookie; a cookie-mode chain of 100 refreshes", func(t *testing.T) {
		resp, _ := h.Get(t, a.URL+"/login")
		if resp.StatusCode != 200 || resp.Header.Get("Portcullis-Session") != "" {
			t.Fatalf("login: %d, Portcullis-Session passed to the client: %v", resp.StatusCode, resp.Header.Get("Portcullis-Session") != "")
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("login answer Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
		}
		m := rtCookiePattern.FindStringSubmatch(resp.Header.Get("Set-Cookie"))
		if m == nil || len(resp.Header.Values("Set-Cookie")) != 1 {
			t.Fatalf("login: no exact refresh cookie (%s; Secure; HttpOnly; SameSite=Strict; Path=/.portcullis/token) among %d Set-Cookie", rtCookie, len(resp.Header.Values("Set-Cookie")))
		}
		refresh := m[1]
		e.saw(refresh)
		// A refresh token is not a session credential.
		if resp, _ := h.Get(t, a.URL+"/acct", "Authorization", bearer(refresh)); resp.StatusCode != 401 {
			t.Fatalf("the refresh token as a session bearer: %d, want 401", resp.StatusCode)
		}
		if resp, _ := h.Get(t, a.URL+"/acct", "Cookie", cookieName+"="+refresh); resp.StatusCode != 401 {
			t.Fatalf("the refresh token as a session cookie: %d, want 401", resp.StatusCode)
		}
		// Cookie mode follows the CSRF rule; a refused request does not
		// consume the token.
		resp, body, err := rtPost(h.Client(), a, url.Values{"grant_type": {"refresh_token"}}, "Cookie", rtCookie+"="+refresh, "Origin", "https://evil.example")
		if err != nil || resp.StatusCode != 403 || !strings.Contains(string(body), `"error":"csrf"`) {
			t.Fatalf("cross-origin cookie refresh: %v %d %s, want 403 csrf", err, resp.StatusCode, body)
		}

		for i := range 100 {
			gw := nodes[i%2]
			ans, next := e.refreshCookie(t, gw, refresh)
			refresh = next
			if code, err := h.StatusOf(pc, other(i).URL+"/api", ans.AccessToken); err != nil || code != 200 {
				t.Fatalf("refresh %d: the access token on the other node: %d %v", i, code, err)
			}
		}
		got := e.up.Last(t)
		for k, v := range map[string]string{"X-Auth-Subject": "lena", "X-Auth-Method": "jwt", "X-Auth-Issuer": rtIssuer, "X-Auth-Roles": "user", "X-Auth-Scopes": "read", "X-Auth-Acr": "pwd"} {
			if got.Header.Get(k) != v {
				t.Errorf("upstream %s = %q, want %q", k, got.Header.Get(k), v)
			}
		}
	})

	t.Run("POST /v1/sessions mode tokens; a body-mode chain of 100 refreshes", func(t *testing.T) {
		f := e.family(t, a, `{"subject":"mia","roles":["user"]}`)
		if f.ExpiresAt < time.Now().Add(23*time.Hour).Unix() {
			t.Fatalf("expires_at %d is not refresh_ttl (24h) away", f.ExpiresAt)
		}
		refresh := f.RefreshToken
		for i := range 100 {
			ans := e.refresh(t, nodes[i%2], refresh)
			refresh = ans.RefreshToken
			if code, err := h.StatusOf(pc, other(i).URL+"/api", ans.AccessToken); err != nil || code != 200 {
				t.Fatalf("refresh %d: the access token on the other node: %d %v", i, code, err)
			}
		}
		if got := e.up.Last(t).Header.Get("X-Auth-Subject"); got != "mia" {
			t.Fatalf("upstream X-Auth-Subject %q", got)
		}
	})

	t.Run("the claims of a minted access token, verified with the served JWKS", func(t *testing.T) {
		authTime := time.Now().Add(-100 * time.Second).Unix()
		f := e.family(t, a, fmt.Sprintf(`{"subject":"nina","roles":["user","ops"],"scopes":["read","write"],"acr":"mfa","amr":["pwd","otp"],"auth_time":%d}`, authTime))
		before := time.Now().Unix()
		ans := e.refresh(t, b, f.RefreshToken)
		ans2 := e.refresh(t, a, ans.RefreshToken)
		hdr, c := rtParts(t, ans.AccessToken)
		if hdr["alg"] != "ES256" || hdr["typ"] != "at+jwt" || hdr["kid"] == nil {
			t.Errorf("header alg %v typ %v kid %v", hdr["alg"], hdr["typ"], hdr["kid"])
		}
		want := []string{"acr", "amr", "aud", "auth_time", "exp", "iat", "iss", "jti", "roles", "scope", "sid", "sub"}
		got := make([]string, 0, len(c))
		for k := range c {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("claims %v, want exactly %v", got, want)
		}
		iat, exp := rtInt(t, c, "iat"), rtInt(t, c, "exp")
		if c["iss"] != rtIssuer || c["sub"] != "nina" || c["sid"] != f.Handle || c["scope"] != "read write" || c["acr"] != "mfa" {
			t.Errorf("iss %v sub %v sid==handle %v scope %v acr %v", c["iss"], c["sub"], c["sid"] == f.Handle, c["scope"], c["acr"])
		}
		if aud := rtStrings(c, "aud"); !slices.Equal(aud, []string{"api", "billing"}) {
			t.Errorf("aud %v", aud)
		}
		if r := rtStrings(c, "roles"); !slices.Equal(r, []string{"user", "ops"}) {
			t.Errorf("roles %v", r)
		}
		if r := rtStrings(c, "amr"); !slices.Equal(r, []string{"pwd", "otp"}) {
			t.Errorf("amr %v", r)
		}
		if at := rtInt(t, c, "auth_time"); at != authTime {
			t.Errorf("auth_time %d, want %d", at, authTime)
		}
		if exp-iat != 60 || iat < before-1 || iat > time.Now().Unix()+1 {
			t.Errorf("iat %d exp %d: want exp-iat = access_ttl (60s), iat now", iat, exp)
		}
		if jti, _ := c["jti"].(string); len(jti) < 16 {
			t.Errorf("jti %q", jti)
		}
		if _, c2 := rtParts(t, ans2.AccessToken); c2["jti"] == c["jti"] || c2["sid"] != c["sid"] {
			t.Error("two access tokens of one family: the same jti, or different sid")
		}

		pub, err := keys.ParsePublicKeys([]byte(mustRead(t, e.key.Public)))
		if err != nil || len(pub) != 1 {
			t.Fatalf("own public key: %v", err)
		}
		for _, src := range []struct{ name, url string }{
			{"main /.portcullis/jwks.json", a.URL + "/.portcullis/jwks.json"},
			{"admin /.well-known/jwks.json (no token)", b.AdminURL + "/.well-known/jwks.json"},
		} {
			resp, body := h.Get(t, src.url)
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
				t.Fatalf("%s: %d %q", src.name, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if bytes.Contains(body, []byte(`"d"`)) {
				t.Fatalf("%s serves a private key member", src.name)
			}
			set, err := keys.ParseJWKSet(body)
			if err != nil {
				t.Fatalf("%s: %v", src.name, err)
			}
			if !slices.ContainsFunc(set, func(k keys.Key) bool { return k.ID == pub[0].ID }) || hdr["kid"] != pub[0].ID {
				t.Fatalf("%s: the signing key (kid = its RFC 7638 thumbprint) is not served under the token's kid", src.name)
			}
			for _, tok := range []string{ans.AccessToken, ans2.AccessToken} {
				parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
					for _, k := range set {
						if k.ID == tk.Header["kid"] {
							return k.Public, nil
						}
					}
					return nil, errors.New("kid not in the served JWKS")
				}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(rtIssuer), jwt.WithAudience("billing"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
				if err != nil || !parsed.Valid {
					t.Fatalf("%s: the access token does not verify: %v", src.name, err)
				}
			}
		}
	})

	t.Run("10 concurrent refreshes with one token within grace all succeed and the family survives", func(t *testing.T) {
		f := e.family(t, a, `{"subject":"otto"}`)
		reuseBefore := revMetric(t, a, "portcullis_refresh_reuse_total") + revMetric(t, b, "portcullis_refresh_reuse_total")
		var (
			wg      sync.WaitGroup
			ready   = make(chan struct{})
			answers = make([]rtAnswer, 10)
			errs    = make([]error, 10)
		)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-ready
				resp, body, err := rtPost(pc, nodes[i%2], rtGrant(f.RefreshToken))
				if err == nil {
					answers[i], err = rtCheckAnswer(resp, body, true)
				}
				errs[i] = err
			}()
		}
		close(ready)
		wg.Wait()
		distinct := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent refresh %d: %v", i, err)
			}
			e.saw(answers[i].RefreshToken)
			distinct[answers[i].RefreshToken] = true
		}
		if len(distinct) != len(answers) {
			t.Fatalf("%d distinct refresh tokens in %d answers: each must get a fresh pair", len(distinct), len(answers))
		}
		for i, ans := range answers {
			for _, g := range nodes {
				if code, err := h.StatusOf(pc, g.URL+"/api", ans.AccessToken); err != nil || code != 200 {
					t.Fatalf("access token %d: %d %v", i, code, err)
				}
			}
		}
		next := e.refresh(t, b, answers[9].RefreshToken)
		if code, err := h.StatusOf(pc, a.URL+"/api", next.AccessToken); err != nil || code != 200 {
			t.Fatalf("the family after the concurrent refreshes: %d %v", code, err)
		}
		if code, body := a.Admin(t, adminToken, "GET", "/v1/sessions?subject=otto", ""); code != 200 || !strings.Contains(string(body), f.Handle) {
			t.Fatalf("the family is gone: %d %s", code, body)
		}
		if got := revMetric(t, a, "portcullis_refresh_reuse_total") + revMetric(t, b, "portcullis_refresh_reuse_total"); got != reuseBefore {
			t.Fatalf("portcullis_refresh_reuse_total moved from %v to %v", reuseBefore, got)
		}
	})

	t.Run("a refresh retried within grace gets a fresh pair; both branches work until one rotates", func(t *testing.T) {
		f := e.family(t, a, `{"subject":"quinn"}`)
		const issued = `portcullis_tokens_issued_total{kind="refresh"}`
		first := e.refresh(t, a, f.RefreshToken)
		// Absent before b issues its first refresh token: 0.
		before := scrape(t, b)[issued]
		retry := e.refresh(t, b, f.RefreshToken) // the first answer was "lost"
		if retry.RefreshToken == first.RefreshToken || retry.AccessToken == first.AccessToken {
			t.Fatal("the retry got the first answer's refresh or access token, not a fresh pair")
		}
		if got := scrape(t, b)[issued] - before; got != 1 {
			t.Fatalf("%s moved by %v for the retry, want 1", issued, got)
		}
		for _, ans := range []rtAnswer{first, retry} {
			for _, g := range nodes {
				if code, err := h.StatusOf(pc, g.URL+"/api", ans.AccessToken); err != nil || code != 200 {
					t.Fatalf("access token: %d %v", code, err)
				}
			}
		}
		// The retry's branch rotates; the first branch's token, replaced by
		// that rotation just now, is still within the grace.
		e.refresh(t, a, retry.RefreshToken)
		e.refresh(t, b, first.RefreshToken)
		if code, body := a.Admin(t, adminToken, "GET", "/v1/sessions?subject=quinn", ""); code != 200 || !strings.Contains(string(body), f.Handle) {
			t.Fatalf("the family is gone: %d %s", code, body)
		}
	})

	t.Run("a PATCH of roles fails the old access token; the refreshed one carries the new roles", func(t *testing.T) {
		f := e.family(t, a, `{"subject":"pia","roles":["user"]}`)
		old := e.refresh(t, a, f.RefreshToken)
		for _, g := range nodes {
			if code, _ := h.StatusOf(pc, g.URL+"/admin-api", old.AccessToken); code != 403 {
				t.Fatalf("before the PATCH, /admin-api: %d, want 403", code)
			}
		}
		start := time.Now()
		if code, body := a.Admin(t, adminToken, "PATCH", "/v1/sessions/"+f.Handle, `{"roles":["user","admin"]}`); code != 200 {
			t.Fatalf("PATCH: %d %s", code, body)
		}
		revRejectsWithin(t, pc, nodes, []string{old.AccessToken}, start, time.Second, "the access token minted before the PATCH")
		fresh := e.refresh(t, b, old.RefreshToken)
		if _, c := rtParts(t, fresh.AccessToken); !slices.Equal(rtStrings(c, "roles"), []string{"user", "admin"}) {
			t.Fatalf("refreshed roles %v", rtStrings(c, "roles"))
		}
		for _, g := range nodes {
			e.up.Reset()
			if code, err := h.StatusOf(pc, g.URL+"/admin-api", fresh.AccessToken); err != nil || code != 200 {
				t.Fatalf("the refreshed token on /admin-api: %d %v", code, err)
			}
			if got := e.up.Last(t).Header.Get("X-Auth-Roles"); got != "user,admin" {
				t.Fatalf("upstream X-Auth-Roles %q", got)
			}
		}
	})

	t.Run("DELETE of the family kills its access tokens on both nodes", func(t *testing.T) {
		f := e.family(t, b, `{"subject":"quentin"}`)
		r1 := e.refresh(t, a, f.RefreshToken)
		r2 := e.refresh(t, b, r1.RefreshToken)
		start := time.Now()
		if code, body := a.Admin(t, adminToken, "DELETE", "/v1/sessions/"+f.Handle, ""); code != 204 {
			t.Fatalf("DELETE: %d %s", code, body)
		}
		revRejectsWithin(t, pc, nodes, []string{r1.AccessToken, r2.AccessToken}, start, time.Second, "access tokens of a deleted family")
		resp, body, err := rtPost(h.Client(), b, rtGrant(r2.RefreshToken))
		if err != nil {
			t.Fatal(err)
		}
		rtWantOAuthError(t, resp, body, "invalid_grant", "the live refresh token of a deleted family")
	})

	t.Run("log out everywhere kills the subject's families and access tokens on both nodes", func(t *testing.T) {
		f1 := e.family(t, a, `{"subject":"rita"}`)
		f2 := e.family(t, b, `{"subject":"rita"}`)
		keep := e.family(t, a, `{"subject":"sven"}`)
		t1, t2, tk := e.refresh(t, a, f1.RefreshToken), e.refresh(t, b, f2.RefreshToken), e.refresh(t, a, keep.RefreshToken)
		start := time.Now()
		code, body := b.Admin(t, adminToken, "POST", "/v1/subjects/rita/revoke", "")
		if code != 200 || !strings.Contains(string(body), `"sessions_revoked":2`) {
			t.Fatalf("POST /v1/subjects/rita/revoke: %d %s", code, body)
		}
		revRejectsWithin(t, pc, nodes, []string{t1.AccessToken, t2.AccessToken}, start, time.Second, "the subject's access tokens")
		for _, r := range []string{t1.RefreshToken, t2.RefreshToken} {
			resp, body, err := rtPost(h.Client(), a, rtGrant(r))
			if err != nil {
				t.Fatal(err)
			}
			rtWantOAuthError(t, resp, body, "invalid_grant", "a refresh token of a logged-out subject")
		}
		for _, g := range nodes {
			if code, err := h.StatusOf(pc, g.URL+"/api", tk.AccessToken); err != nil || code != 200 {
				t.Fatalf("another subject's access token: %d %v", code, err)
			}
		}
		e.refresh(t, b, tk.RefreshToken)
	})

	t.Run("RFC 6749 errors", func(t *testing.T) {
		sess := createSession(t, a, `{"subject":"tom"}`)
		short := e.family(t, a, `{"subject":"ulla","ttl":"1s"}`)
		form := func(kv ...string) url.Values {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			return v
		}
		post := func(t *testing.T, contentType, body string) (*http.Response, []byte) {
			req, _ := http.NewRequest(http.MethodPost, a.URL+"/.portcullis/token", strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			return h.Do(t, req)
		}
		const formType = "application/x-www-form-urlencoded"
		for _, c := range []struct{ name, contentType, body, want string }{
			{"no refresh token", formType, form("grant_type", "refresh_token").Encode(), "invalid_request"},
			{"no grant_type", formType, form("refresh_token", "x").Encode(), "invalid_request"},
			{"a JSON body", "application/json", `{"grant_type":"refresh_token","refresh_token":"x"}`, "invalid_request"},
			{"no content type", "", form("grant_type", "refresh_token", "refresh_token", "x").Encode(), "invalid_request"},
			{"grant_type password", formType, form("grant_type", "password", "username", "u", "password", "p").Encode(), "unsupported_grant_type"},
			{"grant_type client_credentials", formType, form("grant_type", "client_credentials").Encode(), "unsupported_grant_type"},
			{"an unknown refresh token", formType, rtGrant(strings.Repeat("A", 43)).Encode(), "invalid_grant"},
			{"a session ID is not a refresh token", formType, rtGrant(sess.SessionID).Encode(), "invalid_grant"},
		} {
			resp, body := post(t, c.contentType, c.body)
			rtWantOAuthError(t, resp, body, c.want, c.name)
		}
		h.Eventually(t, 15*time.Second, "the 1s family to expire", func() bool {
			code, body := a.Admin(t, adminToken, "GET", "/v1/sessions?subject=ulla", "")
			return code == 200 && string(body) == "[]\n"
		})
		resp, body, err := rtPost(h.Client(), a, rtGrant(short.RefreshToken))
		if err != nil {
			t.Fatal(err)
		}
		rtWantOAuthError(t, resp, body, "invalid_grant", "an expired refresh token")
		if resp, _ := h.Get(t, a.URL+"/.portcullis/token"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("GET /.portcullis/token: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("the raw refresh tokens never appear in Redis", func(t *testing.T) {
		dump := rtDumpRedis(t, rs)
		e.mu.Lock()
		seen := slices.Clone(e.seen)
		e.mu.Unlock()
		if len(seen) < 200 {
			t.Fatalf("only %d refresh tokens seen", len(seen))
		}
		for _, tok := range seen {
			if bytes.Contains(dump, []byte(tok)) {
				t.Fatal("a raw refresh token is stored in Redis")
			}
			if raw, err := base64.RawURLEncoding.DecodeString(tok); err == nil && bytes.Contains(dump, raw) {
				t.Fatal("a refresh token's raw bytes are stored in Redis")
			}
		}
		t.Logf("checked %d refresh tokens against %d bytes of Redis keys and values", len(seen), len(dump))
	})
}

// rtDumpRedis concatenates every key and every value (read by type, so
// nothing is compressed as in DUMP) of the server.
func rtDumpRedis(t *testing.T, rs *redistest.Server) []byte {
	t.Helper()
	rc := rs.Client(t)
	ctx := context.Background()
	var dump bytes.Buffer
	keysSeen := 0
	iter := rc.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keysSeen++
		dump.WriteString(k + "\n")
		typ, err := rc.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, err := rc.Get(ctx, k).Result()
			if err == nil {
				vals = []string{v}
			}
		case "hash":
			m, _ := rc.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "zset":
			vals, _ = rc.ZRange(ctx, k, 0, -1).Result()
		case "set":
			vals, _ = rc.SMembers(ctx, k).Result()
		case "list":
			vals, _ = rc.LRange(ctx, k, 0, -1).Result()
		case "none": // expired meanwhile
		default:
			t.Fatalf("key of unexpected type %s", typ)
		}
		for _, v := range vals {
			dump.WriteString(v + "\n")
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if keysSeen == 0 {
		t.Fatal("Redis is empty: the families are not stored there")
	}
	return dump.Bytes()
}

// TestRefreshReuseKillsTheFamilyEverywhere: a refresh token presented after
// its grace (200ms here, to keep the test short) revokes the whole family;
// both nodes then reject every access token minted from it. 100 trials;
// the clock starts when the reusing request is sent.
// Not parallel: the figure is taken without the other tests of this
// package competing for the CPU.
func TestRefreshReuseKillsTheFamilyEverywhere(t *testing.T) {
	const grace = 200 * time.Millisecond
	rs := redistest.Start(t)
	e := newRTEnv(t)
	a, b := e.node(t, rs.Addr(), grace.String(), "1m"), e.node(t, rs.Addr(), grace.String(), "1m")
	nodes := []*h.Gateway{a, b}
	pc := h.PollClient()

	type trial struct {
		handle, r0, r2 string
		at             []string
	}
	const n = 100
	trials := make([]trial, n)
	var lastRotation time.Time
	for i := range trials {
		f := e.family(t, nodes[i%2], fmt.Sprintf(`{"subject":"reuse-%d"}`, i))
		r1 := e.refresh(t, a, f.RefreshToken) // replaces r0
		lastRotation = time.Now()
		r2 := e.refresh(t, b, r1.RefreshToken)
		trials[i] = trial{handle: f.Handle, r0: f.RefreshToken, r2: r2.RefreshToken, at: []string{r1.AccessToken, r2.AccessToken}}
		for _, g := range nodes {
			for _, at := range trials[i].at {
				if code, err := h.StatusOf(pc, g.URL+"/api", at); err != nil || code != 200 {
					t.Fatalf("trial %d: a fresh access token: %d %v", i, code, err)
				}
			}
		}
	}
	reuseBefore := revMetric(t, a, "portcullis_refresh_reuse_total") + revMetric(t, b, "portcullis_refresh_reuse_total")
	// Every r0 was replaced at or before lastRotation: once the grace has
	// passed on the clock, presenting it is a reuse. (This waits for time
	// itself, not for an asynchronous effect.)
	time.Sleep(time.Until(lastRotation.Add(grace + 100*time.Millisecond)))

	lat := make([]time.Duration, 0, n)
	for i, tr := range trials {
		start := time.Now()
		resp, body, err := rtPost(pc, nodes[i%2], rtGrant(tr.r0))
		if err != nil {
			t.Fatal(err)
		}
		rtWantOAuthError(t, resp, body, "invalid_grant", fmt.Sprintf("trial %d: the reused refresh token", i))
		lat = append(lat, revRejectsWithin(t, pc, nodes, tr.at, start, time.Second, fmt.Sprintf("trial %d: the family's access tokens", i)))
		resp, body, err = rtPost(pc, nodes[(i+1)%2], rtGrant(tr.r2))
		if err != nil {
			t.Fatal(err)
		}
		rtWantOAuthError(t, resp, body, "invalid_grant", fmt.Sprintf("trial %d: the family's live refresh token after the reuse", i))
	}
	t.Logf("FIGURE refresh reuse -> family rejected on both nodes (from reusing POST sent until both nodes answer 401 for both access tokens; reuse_grace=%s; poll every 2ms): p50=%s p99=%s max=%s n=%d",
		grace, h.Percentile(lat, 50).Round(10*time.Microsecond), h.Percentile(lat, 99).Round(10*time.Microsecond),
		h.Percentile(lat, 100).Round(10*time.Microsecond), len(lat))

	if got := revMetric(t, a, "portcullis_refresh_reuse_total") + revMetric(t, b, "portcullis_refresh_reuse_total") - reuseBefore; got != n {
		t.Errorf("portcullis_refresh_reuse_total rose by %v over both nodes, want %d", got, n)
	}
	if code, body := a.Admin(t, adminToken, "GET", "/v1/sessions?subject=reuse-0", ""); code != 200 || string(body) != "[]\n" {
		t.Errorf("a reuse-killed family is still listed: %d %s", code, body)
	}
}

// TestRefreshRedisCost: one node reaching Redis through a counting proxy.
// A refresh costs one round trip; a request on a JWT route carrying a
// minted access token costs none.
func TestRefreshRedisCost(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	proxy := h.NewTCPProxy(t, rs.Addr())
	e := newRTEnv(t)
	gw := e.node(t, proxy.Addr(), "2s", "10m")
	pc := h.PollClient()

	f := e.family(t, gw, `{"subject":"vera","roles":["user"]}`)
	refresh := f.RefreshToken
	for range 5 { // warm-up: the script is loaded, connections are open
		refresh = e.refresh(t, gw, refresh).RefreshToken
	}

	const n = 100
	wireBefore, statsBefore := proxy.Commands(), h.RedisCommandStats(t, rs.Addr())
	access := make([]string, 0, n)
	for range n {
		ans := e.refresh(t, gw, refresh)
		refresh = ans.RefreshToken
		access = append(access, ans.AccessToken)
	}
	wire := h.CountDelta(wireBefore, proxy.Commands(), revHousekeeping)
	stats := h.CountDelta(statsBefore, h.RedisCommandStats(t, rs.Addr()), revHousekeeping)
	t.Logf("FIGURE redis round trips per refresh: %.2f (n=%d; commands sent by the gateway: %s; INFO commandstats deltas, script-internal commands included: %s)",
		float64(h.Sum(wire))/n, n, h.FormatCounts(wire), h.FormatCounts(stats))
	if h.Sum(wire) != n {
		t.Errorf("%d refreshes sent %d Redis commands (%s), want one each", n, h.Sum(wire), h.FormatCounts(wire))
	}

	for _, at := range access[:20] { // warm-up
		if code, err := h.StatusOf(pc, gw.URL+"/api", at); err != nil || code != 200 {
			t.Fatalf("minted access token: %d %v", code, err)
		}
	}
	const rounds = 25
	wireBefore, statsBefore = proxy.Commands(), h.RedisCommandStats(t, rs.Addr())
	for range rounds {
		for _, at := range access[:20] {
			if code, err := h.StatusOf(pc, gw.URL+"/api", at); err != nil || code != 200 {
				t.Fatalf("minted access token: %d %v", code, err)
			}
		}
	}
	wire = h.CountDelta(wireBefore, proxy.Commands(), revHousekeeping)
	stats = h.CountDelta(statsBefore, h.RedisCommandStats(t, rs.Addr()), revHousekeeping)
	t.Logf("FIGURE redis commands per JWT-route request with a minted access token (steady state): %.3f (n=%d; sent: %s; commandstats: %s)",
		float64(h.Sum(stats))/(rounds*20), rounds*20, h.FormatCounts(wire), h.FormatCounts(stats))
	if len(wire) != 0 || len(stats) != 0 {
		t.Errorf("requests with minted access tokens cost Redis commands: sent %s, commandstats %s", h.FormatCounts(wire), h.FormatCounts(stats))
	}
}

// TestTokenEndpointThroughput reports refreshes per second with 8
// concurrent clients, each rotating its own family for about 3 s. A figure,
// not a limit: nothing is asserted about the rate.
// Not parallel: the figure is taken without the other tests of this
// package competing for the CPU.
func TestTokenEndpointThroughput(t *testing.T) {
	rs := redistest.Start(t)
	e := newRTEnv(t)
	gw := e.node(t, rs.Addr(), "10s", "1m")
	pc := h.PollClient()
	const clients = 8
	refresh := make([]string, clients)
	for i := range refresh {
		refresh[i] = e.family(t, gw, fmt.Sprintf(`{"subject":"load-%d"}`, i)).RefreshToken
	}
	var (
		ok, failed atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(3 * time.Second)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := refresh[i]
			for time.Now().Before(end) {
				resp, body, err := rtPost(pc, gw, rtGrant(tok))
				var a rtAnswer
				if err == nil {
					a, err = rtCheckAnswer(resp, body, true)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				tok = a.RefreshToken
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("FIGURE token endpoint throughput: %.0f refreshes/s (%d clients, %s, n=%d, failed=%d)",
		float64(ok.Load())/elapsed.Seconds(), clients, elapsed.Round(time.Millisecond), ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d refresh chains broke: %v", failed.Load(), firstErr.Load())
	}
}
