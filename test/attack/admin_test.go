package attack

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
)

// TestAdminAPI: the admin API answers 401 without the admin token or with a
// wrong one, does nothing on such a request, is not served on the main
// listener, and the admin token never appears in logs or metrics.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	adminAddr := strings.TrimPrefix(e.gw.AdminURL, "http://")
	victimID, victim := e.newSession(t, `{"subject":"victim","roles":["user"]}`)
	tok := e.token(t, mint.Dev{JTI: "keep-me"})

	type adminCase struct {
		name   string
		method string
		path   string
		body   string
		auth   []string // Authorization header values
		status int
	}
	endpoints := []struct{ method, path, body string }{
		{"POST", "/v1/sessions", `{"subject":"mallory","roles":["admin"]}`},
		{"GET", "/v1/sessions?subject=victim", ""},
		{"PATCH", "/v1/sessions/" + victim, `{"roles":["admin"]}`},
		{"DELETE", "/v1/sessions/" + victim, ""},
		{"POST", "/v1/revocations", fmt.Sprintf(`{"jti":"keep-me","issuer":%q,"expires_at":%d}`, issuer, time.Now().Add(time.Hour).Unix())},
		{"GET", "/v1/revocations/keep-me", ""},
		{"POST", "/v1/subjects/victim/revoke", ""},
		{"GET", "/v1/nothing-here", ""},
		{"GET", "/debug/pprof/", ""},
		{"GET", "/debug/pprof/cmdline", ""},
		{"GET", "/debug/pprof/goroutine?debug=2", ""},
		{"GET", "/debug/vars", ""},
	}
	var cases []adminCase
	for _, ep := range endpoints {
		cases = append(cases,
			adminCase{name: "no token " + ep.method + " " + ep.path, method: ep.method, path: ep.path, body: ep.body, status: 401},
			adminCase{name: "wrong token " + ep.method + " " + ep.path, method: ep.method, path: ep.path, body: ep.body, auth: []string{"Bearer wrong-token"}, status: 401},
		)
	}
	list := "/v1/sessions?subject=victim"
	for _, c := range []struct {
		name string
		auth []string
	}{
		{"token under the Basic scheme", []string{"Basic " + adminToken}},
		{"token without a scheme", []string{adminToken}},
		{"token with a suffix", []string{"Bearer " + adminToken + "x"}},
		{"token missing its last byte", []string{"Bearer " + adminToken[:len(adminToken)-1]}},
		{"token in upper case", []string{"Bearer " + strings.ToUpper(adminToken)}},
		{"token as a prefix of a longer value", []string{"Bearer " + adminToken + " " + adminToken}},
		{"empty bearer", []string{"Bearer "}},
		{"two Authorization headers, one right", []string{"Bearer wrong", "Bearer " + adminToken}},
		{"two Authorization headers, both right", []string{"Bearer " + adminToken, "Bearer " + adminToken}},
		{"a user's JWT", []string{"Bearer " + tok}},
	} {
		cases = append(cases, adminCase{name: c.name, method: "GET", path: list, auth: c.auth, status: 401})
	}
	cases = append(cases,
		adminCase{name: "token in the query string", method: "GET", path: list + "&access_token=" + adminToken, status: 401},
		adminCase{name: "control: the right token", method: "GET", path: list, auth: []string{"Bearer " + adminToken}, status: 200},
		adminCase{name: "control: lower-case scheme", method: "GET", path: list, auth: []string{"bearer " + adminToken}, status: 200},
		adminCase{name: "control: pprof with the token", method: "GET", path: "/debug/pprof/", auth: []string{"Bearer " + adminToken}, status: 200},
		adminCase{name: "no expvar even with the token", method: "GET", path: "/debug/vars", auth: []string{"Bearer " + adminToken}, status: 404},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", tc.method, tc.path, adminAddr)
			for _, a := range tc.auth {
				b.WriteString("Authorization: " + a + "\r\n")
			}
			if tc.body != "" {
				fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(tc.body))
			}
			b.WriteString("\r\n" + tc.body)
			a := send(t, adminAddr, b.String())
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a)
			}
			if tc.status == 401 {
				if wa := a.header.Get("WWW-Authenticate"); wa != `Bearer realm="portcullis-admin"` {
					t.Errorf("WWW-Authenticate %q", wa)
				}
				if !strings.Contains(string(a.body), `"error":"unauthorized"`) {
					t.Errorf("body %q", a.body)
				}
				if strings.Contains(string(a.body), "victim") || strings.Contains(string(a.body), "goroutine") {
					t.Errorf("a refused admin request leaked data: %q", a.body)
				}
			}
		})
	}

	t.Run("refused admin requests had no effect", func(t *testing.T) {
		code, body := e.gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=mallory", "")
		if code != 200 || strings.TrimSpace(string(body)) != "[]" {
			t.Errorf("a session was created without the token: %d %s", code, body)
		}
		code, body = e.gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=victim", "")
		if code != 200 || !strings.Contains(string(body), victim) || !strings.Contains(string(body), `"roles":["user"]`) {
			t.Errorf("the victim's session was changed or deleted without the token: %d %s", code, body)
		}
		if code, _ := e.gw.Admin(t, adminToken, "GET", "/v1/revocations/keep-me", ""); code != 404 {
			t.Errorf("a revocation was made without the token: %d", code)
		}
		if a := send(t, e.gw.Addr, get("/api/x", bearer(tok))); a.status != 200 {
			t.Errorf("the token was revoked without the admin token: %d", a.status)
		}
		if a := send(t, e.gw.Addr, get("/app/x", cookie(victimID))); a.status != 200 {
			t.Errorf("the victim's session stopped working: %d", a.status)
		}
	})

	// The main listener serves no admin API, debug or metrics endpoint:
	// none of these paths has a route, so they are 404 and never forwarded.
	var main []rawCase
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/v1/sessions", `{"subject":"mallory","roles":["admin"]}`},
		{"GET", "/v1/sessions?subject=victim", ""},
		{"DELETE", "/v1/sessions/" + victim, ""},
		{"POST", "/v1/revocations", `{"jti":"keep-me"}`},
		{"POST", "/v1/subjects/victim/revoke", ""},
		{"GET", "/debug/pprof/", ""},
		{"GET", "/debug/pprof/cmdline", ""},
		{"GET", "/debug/vars", ""},
		{"GET", "/metrics", ""},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
	} {
		headers := []string{"Authorization: Bearer " + adminToken}
		if p.body != "" {
			headers = append(headers, fmt.Sprintf("Content-Length: %d", len(p.body)))
		}
		main = append(main, rawCase{name: "main listener " + p.method + " " + p.path, req: request(p.method, p.path, headers...) + p.body,
			status: 404, code: "not_found"})
	}
	main = append(main, rawCase{name: "main listener /.portcullis/unknown", req: get("/.portcullis/unknown"), status: 404, code: "not_found"})
	e.run(t, main)
	t.Run("the main listener created no session", func(t *testing.T) {
		if code, body := e.gw.Admin(t, adminToken, "GET", "/v1/sessions?subject=mallory", ""); code != 200 || strings.TrimSpace(string(body)) != "[]" {
			t.Errorf("%d %s", code, body)
		}
	})

	t.Run("the admin token appears in no log line or metric", func(t *testing.T) {
		resp, err := http.Get(e.gw.AdminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for what, text := range map[string]string{"logs": e.gw.Logs(), "metrics": string(metrics)} {
			for _, secret := range []string{adminToken, strings.ToUpper(adminToken), adminToken[:len(adminToken)-1], victimID, tok} {
				if strings.Contains(text, secret) {
					t.Errorf("a secret appears in the %s", what)
				}
			}
		}
	})
}
