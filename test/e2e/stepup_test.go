package e2e

import (
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const stepUpConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
  type: memory
jwt:
  issuers:
    - issuer: "https://idp.test/"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
identity:
  assertion:
    header: X-Auth-Assertion
    key: "{{.AssertKey}}"
    ttl: 60s
    audience: upstreams
routes:
  - name: pay
    path: /pay
    upstream: "{{.Up}}"
    auth: any
    step_up: {acr: [mfa, hwk], max_age: 5m, url: "https://login.test/stepup"}
  - name: recent
    path: /recent
    upstream: "{{.Up}}"
    auth: jwt
    step_up: {max_age: 5m}
  - name: strong
    path: /strong
    upstream: "{{.Up}}"
    auth: jwt
    step_up: {acr: [mfa]}
  - name: pay-admin
    path: /pay-admin
    upstream: "{{.Up}}"
    auth: jwt
    roles: [admin]
    step_up: {acr: [mfa], max_age: 5m}
`

// challengeParams parses an RFC 6750 / RFC 9470 challenge into its
// parameters, failing on anything that is not `Bearer k="v", k="v"`.
func challengeParams(t *testing.T, v string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(v, "Bearer ")
	if !ok {
		t.Fatalf("challenge %q does not start with Bearer", v)
	}
	re := regexp.MustCompile(`^([a-z_]+)="((?:[^"\\]|\\.)*)"(?:, |$)`)
	out := map[string]string{}
	for rest != "" {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("malformed challenge %q at %q", v, rest)
		}
		out[m[1]] = m[2]
		rest = rest[len(m[0]):]
	}
	return out
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestStepUpAndAssertion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := h.NewUpstream(t)
	idp := h.NewES256(t, dir, "idp")
	assertKey := h.NewES256(t, dir, "assert")
	gw := h.Start(t, dir, h.Config(t, stepUpConfig, map[string]any{"Key": idp.Public, "AssertKey": assertKey.Private, "Up": up.URL}))
	now := time.Now()
	tok := func(d mint.Dev) string {
		d.Issuer, d.Audience = "https://idp.test/", []string{"api"}
		if d.Subject == "" {
			d.Subject = "alice"
		}
		return idp.Token(t, d)
	}

	cases := []struct {
		name, path string
		token      string
		status     int
		params     map[string]string // expected challenge parameters besides error_description
	}{
		{"password login on an mfa route", "/pay", tok(mint.Dev{ACR: "pwd", AuthTime: now.Unix()}), 401,
			map[string]string{"error": "insufficient_user_authentication", "acr_values": "mfa hwk", "max_age": "300"}},
		{"stale mfa", "/pay", tok(mint.Dev{ACR: "mfa", AuthTime: now.Add(-10 * time.Minute).Unix()}), 401,
			map[string]string{"error": "insufficient_user_authentication", "acr_values": "mfa hwk", "max_age": "300"}},
		{"fresh mfa", "/pay", tok(mint.Dev{ACR: "mfa", AuthTime: now.Add(-time.Minute).Unix()}), 200, nil},
		{"fresh hwk", "/pay", tok(mint.Dev{ACR: "hwk", AuthTime: now.Unix()}), 200, nil},
		{"mfa without auth_time: iat is not an authentication time", "/pay", tok(mint.Dev{ACR: "mfa"}), 401,
			map[string]string{"error": "insufficient_user_authentication", "acr_values": "mfa hwk", "max_age": "300"}},
		{"max_age only: stale", "/recent", tok(mint.Dev{ACR: "pwd", AuthTime: now.Add(-time.Hour).Unix()}), 401,
			map[string]string{"error": "insufficient_user_authentication", "max_age": "300"}},
		{"max_age only: any acr when recent", "/recent", tok(mint.Dev{AuthTime: now.Unix()}), 200, nil},
		{"acr only: wrong acr", "/strong", tok(mint.Dev{ACR: "pwd"}), 401,
			map[string]string{"error": "insufficient_user_authentication", "acr_values": "mfa"}},
		{"acr only: no auth_time needed", "/strong", tok(mint.Dev{ACR: "mfa"}), 200, nil},
		{"roles are checked before step-up", "/pay-admin", tok(mint.Dev{ACR: "pwd", Roles: []string{"user"}}), 403,
			map[string]string{"error": "insufficient_scope"}},
		{"an invalid token is 401 invalid_token before anything else", "/pay-admin", tok(mint.Dev{ACR: "mfa", TTL: -time.Hour}), 401,
			map[string]string{"error": "invalid_token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up.Reset()
			resp, body := h.Get(t, gw.URL+tc.path, "Authorization", "Bearer "+tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				if up.Count() != 1 {
					t.Fatal("not forwarded")
				}
				return
			}
			if up.Count() != 0 {
				t.Fatal("a refused request reached the upstream")
			}
			got := challengeParams(t, resp.Header.Get("WWW-Authenticate"))
			desc := got["error_description"]
			delete(got, "error_description")
			if strings.Join(keysOf(got), ",") != strings.Join(keysOf(tc.params), ",") {
				t.Fatalf("challenge parameters %v, want exactly %v (+error_description)", got, tc.params)
			}
			for k, v := range tc.params {
				if got[k] != v {
					t.Errorf("%s=%q, want %q", k, got[k], v)
				}
			}
			if desc == "" {
				t.Error("no error_description")
			}
			if !strings.Contains(string(body), `"error":"`+tc.params["error"]+`"`) {
				t.Errorf("JSON body %s", body)
			}
		})
	}

	t.Run("browsers are redirected to step_up.url with return_to from the canonical path", func(t *testing.T) {
		resp, _ := h.Get(t, gw.URL+"/pay/checkout?cart=7", "Authorization", "Bearer "+tok(mint.Dev{ACR: "pwd", AuthTime: now.Unix()}),
			"Accept", "text/html,application/xhtml+xml")
		if resp.StatusCode != 302 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Scheme != "https" || loc.Host != "login.test" || loc.Path != "/stepup" {
			t.Fatalf("Location %q", resp.Header.Get("Location"))
		}
		q := loc.Query()
		if q.Get("return_to") != "/pay/checkout?cart=7" || q.Get("acr_values") != "mfa hwk" || q.Get("max_age") != "300" {
			t.Fatalf("query %v", q)
		}
	})

	t.Run("a signed assertion reaches the upstream and verifies with the served JWKS", func(t *testing.T) {
		up.Reset()
		good := tok(mint.Dev{ACR: "mfa", AMR: []string{"pwd", "otp"}, AuthTime: now.Unix(), Roles: []string{"buyer"}, JTI: "tok-1"})
		for i := 0; i < 2; i++ {
			resp, _ := h.Get(t, gw.URL+"/pay", "Authorization", "Bearer "+good, "X-Auth-Assertion", "forged")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		rs := up.Requests()
		a1, a2 := rs[0].Header.Values("X-Auth-Assertion"), rs[1].Header.Values("X-Auth-Assertion")
		if len(a1) != 1 || a1[0] == "forged" {
			t.Fatalf("assertion header %q", a1)
		}
		if len(a2) != 1 || a2[0] != a1[0] {
			t.Error("the assertion was signed again for the same identity: not cached")
		}
		for _, src := range []string{gw.AdminURL + "/.well-known/jwks.json", gw.URL + "/.portcullis/jwks.json"} {
			resp, body := h.Get(t, src)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", src, resp.StatusCode)
			}
			set, err := keys.ParseJWKSet(body)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			claims := jwt.MapClaims{}
			_, err = jwt.ParseWithClaims(a1[0], claims, func(tk *jwt.Token) (any, error) {
				for _, k := range set {
					if k.ID == tk.Header["kid"] {
						return k.Public, nil
					}
				}
				return nil, jwt.ErrTokenUnverifiable
			}, jwt.WithValidMethods([]string{"ES256", "EdDSA"}), jwt.WithAudience("upstreams"), jwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("the assertion does not verify with %s: %v", src, err)
			}
			if claims["sub"] != "alice" || claims["acr"] != "mfa" || claims["route"] != "pay" {
				t.Fatalf("claims %v", claims)
			}
			exp, _ := claims.GetExpirationTime()
			if d := time.Until(exp.Time); d <= 0 || d > 61*time.Second {
				t.Fatalf("assertion lifetime %s, want <= 60s", d)
			}
		}
	})

	t.Run("sessions: elevated by PATCH, and asserted to the upstream as a JWT", func(t *testing.T) {
		c := createSession(t, gw, `{"subject":"bob","acr":"pwd","amr":["pwd"]}`)
		if resp, _ := h.Get(t, gw.URL+"/pay", withCookie(c.SessionID)...); resp.StatusCode != 401 {
			t.Fatalf("before PATCH: %d", resp.StatusCode)
		}
		body := `{"acr":"mfa","amr":["pwd","otp"],"auth_time":` + strconv.FormatInt(time.Now().Unix(), 10) + `}`
		if code, data := gw.Admin(t, adminToken, "PATCH", "/v1/sessions/"+c.Handle, body); code != 200 {
			t.Fatalf("PATCH %d %s", code, data)
		}
		up.Reset()
		if resp, _ := h.Get(t, gw.URL+"/pay", withCookie(c.SessionID)...); resp.StatusCode != 200 {
			t.Fatalf("after PATCH: %d", resp.StatusCode)
		}
		a := up.Last(t).Header.Get("X-Auth-Assertion")
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(a, claims); err != nil {
			t.Fatalf("assertion %q: %v", a, err)
		}
		if claims["sub"] != "bob" || claims["sid"] != c.Handle || claims["method"] != "session" {
			t.Fatalf("session assertion claims %v", claims)
		}
	})
}
