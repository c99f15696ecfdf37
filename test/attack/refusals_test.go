package attack

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// newSession creates a session through the admin API and returns its ID
// and handle.
func (e *env) newSession(t *testing.T, body string) (id, handle string) {
	t.Helper()
	code, data := e.gw.Admin(t, adminToken, "POST", "/v1/sessions", body)
	if code != 201 {
		t.Fatalf("POST /v1/sessions: %d %s", code, data)
	}
	var c struct {
		SessionID string `json:"session_id"`
		Handle    string `json:"handle"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c.SessionID, c.Handle
}

func cookie(id string) string { return "Cookie: " + cookieName + "=" + id }

// TestRefusalTable walks SPEC's "Requests the gateway refuses" table row by
// row: each answer has the row's status, challenge and JSON error, and the
// upstream receives nothing.
func TestRefusalTable(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	now := time.Now()
	user := e.token(t, mint.Dev{Roles: []string{"user"}})

	// Row 3 needs revoked and expired credentials.
	revokedJTI := e.token(t, mint.Dev{Roles: []string{"user"}, JTI: "revoke-me"})
	if code, body := e.gw.Admin(t, adminToken, "POST", "/v1/revocations",
		fmt.Sprintf(`{"jti":"revoke-me","issuer":%q,"expires_at":%d}`, issuer, now.Add(time.Hour).Unix())); code != 201 {
		t.Fatalf("revoke by jti: %d %s", code, body)
	}
	revokedTok := e.token(t, mint.Dev{Roles: []string{"user"}})
	if code, body := e.gw.Admin(t, adminToken, "POST", "/v1/revocations", fmt.Sprintf(`{"token":%q}`, revokedTok)); code != 201 {
		t.Fatalf("revoke by token: %d %s", code, body)
	}
	deleted, handle := e.newSession(t, `{"subject":"dora"}`)
	if code, _ := e.gw.Admin(t, adminToken, "DELETE", "/v1/sessions/"+handle, ""); code != 204 {
		t.Fatalf("DELETE session: %d", code)
	}
	shortLived, _ := e.newSession(t, `{"subject":"eve","ttl":"1s"}`)
	h.Eventually(t, 10*time.Second, "the 1s session to expire", func() bool {
		a := send(t, e.gw.Addr, get("/app/x", "Authorization: Bearer "+shortLived))
		return a.status == 401
	})
	outSubject := e.token(t, mint.Dev{Subject: "frank", Now: now.Add(-time.Minute)})
	if code, body := e.gw.Admin(t, adminToken, "POST", "/v1/subjects/frank/revoke", ""); code != 200 {
		t.Fatalf("subject revoke: %d %s", code, body)
	}
	session, _ := e.newSession(t, `{"subject":"gina","roles":["user"]}`)

	const realm = `Bearer realm="portcullis"`
	const stepUp = `Bearer error="insufficient_user_authentication", error_description="`

	cases := []rawCase{
		// Row 1: no credential.
		{name: "no credential, jwt route", req: get("/api/x"), status: 401, code: "unauthorized", www: realm},
		{name: "no credential, any route", req: get("/app/x"), status: 401, code: "unauthorized", www: realm},
		{name: "no credential, host route", req: "GET /x HTTP/1.1\r\nHost: admin.example.com\r\n\r\n", status: 401, code: "unauthorized", www: realm},
		{name: "empty Authorization", req: get("/api/x", "Authorization:"), status: 401, code: "unauthorized", www: realm},
		{name: "empty session cookie", req: get("/app/x", "Cookie: "+cookieName+"="), status: 401, code: "unauthorized", www: realm},
		{name: "browser with login_url: 302 with return_to", req: get("/app/x?q=1", "Accept: text/html,application/xhtml+xml"), status: 302},
		{name: "browser on a route without login_url: 401", req: get("/api/x", "Accept: text/html"), status: 401, code: "unauthorized", www: realm},
		// Row 2: invalid tokens.
		invalidToken("bad signature", get("/api/x", bearer(func() string {
			p := strings.Split(user, ".")
			return p[0] + "." + p[1] + "." + strings.Split(e.token(t, mint.Dev{Subject: "bob"}), ".")[2]
		}()))),
		invalidToken("alg not allowed (HS256)", get("/api/x", bearer(sign(t, jwt.SigningMethodHS256, []byte("secret"), nil, claims(nil))))),
		invalidToken("expired", get("/api/x", bearer(e.token(t, mint.Dev{TTL: -time.Minute})))),
		invalidToken("not yet valid", get("/api/x", bearer(e.signES(t, nil, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))))),
		invalidToken("wrong iss", get("/api/x", bearer(e.token(t, mint.Dev{Issuer: "https://evil.test/"})))),
		invalidToken("wrong aud", get("/api/x", bearer(e.token(t, mint.Dev{Audience: []string{"billing"}})))),
		invalidToken("unknown kid", get("/api/x", bearer(e.signES(t, map[string]any{"kid": "no-such-kid"}, claims(nil))))),
		invalidToken("malformed", get("/api/x", bearer("not.a.jwt"))),
		invalidToken("unknown session", get("/app/x", cookie(strings.Repeat("A", 43)))),
		// Row 3: revoked and expired.
		invalidToken("revoked token (by jti)", get("/api/x", bearer(revokedJTI))),
		invalidToken("revoked token (by token)", get("/api/x", bearer(revokedTok))),
		invalidToken("deleted session (cookie)", get("/app/x", cookie(deleted))),
		invalidToken("deleted session (bearer)", get("/app/x", "Authorization: Bearer "+deleted)),
		invalidToken("expired session", get("/app/x", cookie(shortLived))),
		invalidToken("token of a subject logged out everywhere", get("/api/x", bearer(outSubject))),
		// Row 4: roles and scopes.
		{name: "missing role", req: get("/admin", bearer(user)), status: 403, code: "insufficient_scope", www: `Bearer error="insufficient_scope"`},
		{name: "session cookie on a jwt-only route is no credential", req: get("/admin", cookie(session)), status: 401, code: "unauthorized", www: realm},
		{name: "missing one scope", req: get("/scoped", bearer(e.token(t, mint.Dev{Scope: "read"}))), status: 403, code: "insufficient_scope", www: `Bearer error="insufficient_scope"`},
		{name: "missing role on the host route", req: "GET /x HTTP/1.1\r\nHost: admin.example.com\r\n" + bearer(user) + "\r\n\r\n", status: 403, code: "insufficient_scope", www: `Bearer error="insufficient_scope"`},
		// Row 5: step-up.
		{name: "step-up: no acr", req: get("/pay", bearer(user)), status: 401, code: "insufficient_user_authentication",
			www: stepUp},
		{name: "step-up: acr mfa but auth_time too old", req: get("/pay", bearer(e.token(t, mint.Dev{ACR: "mfa", AuthTime: now.Add(-time.Hour).Unix()}))),
			status: 401, code: "insufficient_user_authentication", www: `max_age="300"`},
		{name: "step-up: weak acr", req: get("/pay", bearer(e.token(t, mint.Dev{ACR: "pwd", AuthTime: now.Unix()}))),
			status: 401, code: "insufficient_user_authentication", www: `acr_values="mfa"`},
		{name: "step-up: browser is redirected", req: get("/pay/checkout", bearer(user), "Accept: text/html"), status: 302},
		{name: "step-up satisfied (control)", req: get("/pay", bearer(e.token(t, mint.Dev{ACR: "mfa", AuthTime: now.Unix()}))), status: 200, uri: "/pay"},
		// Row 6: CSRF.
		{name: "CSRF: cookie, POST, cross Origin", req: request("POST", "/app/x", cookie(session), "Origin: https://evil.example", "Content-Length: 0"),
			status: 403, code: "csrf"},
		// Row 7: non-canonical paths.
		{name: "dot segment", req: get("/api/../admin", bearer(user)), status: 400, code: "invalid_request"},
		{name: "encoded dot segment", req: get("/api/%2E%2E/admin", bearer(user)), status: 400, code: "invalid_request"},
		{name: "empty segment", req: get("/api//x", bearer(user)), status: 400, code: "invalid_request"},
		{name: "encoded slash", req: get("/api/a%2Fb", bearer(user)), status: 400, code: "invalid_request"},
		{name: "backslash", req: get(`/api\x`, bearer(user)), status: 400, code: "invalid_request"},
		{name: "NUL", req: get("/api/%00", bearer(user)), status: 400, code: "invalid_request"},
		{name: "control character", req: get("/api/%0a", bearer(user)), status: 400, code: "invalid_request"},
		{name: "bad percent-encoding (refused by net/http)", req: get("/api/%g0", bearer(user)), status: 400, by: byNetHTTP},
		// Row 8: header block over max_header_bytes (32768 here).
		{name: "header block just over max_header_bytes (gateway)", req: get("/public/x", "X-Big: "+strings.Repeat("a", 32800)), status: 431},
		{name: "header block far over max_header_bytes (net/http)", req: get("/public/x", "X-Big: "+strings.Repeat("a", 70000)), status: 431, by: byNetHTTP},
		{name: "header block under max_header_bytes (control)", req: get("/public/x", "X-Big: "+strings.Repeat("a", 32000)), status: 200, uri: "/public/x"},
		// Row 10: upstream unreachable / timed out.
		{name: "upstream unreachable", req: get("/dead/x"), status: 502, code: "bad_gateway"},
		{name: "upstream timed out", req: get("/slow/x"), status: 504, code: "gateway_timeout", uri: "/slow/x"},
		// Routing refusals.
		{name: "no route", req: get("/nowhere"), status: 404, code: "not_found"},
		{name: "method not allowed", req: request("DELETE", "/ro/x"), status: 405, code: "method_not_allowed"},
	}
	e.run(t, cases)

	t.Run("redirect and Allow headers", func(t *testing.T) {
		a := send(t, e.gw.Addr, get("/app/x?q=1", "Accept: text/html,application/xhtml+xml"))
		if a.status != 302 || a.header.Get("Location") != "https://login.example.com/start?return_to=%2Fapp%2Fx%3Fq%3D1" {
			t.Errorf("login redirect: %d Location %q", a.status, a.header.Get("Location"))
		}
		a = send(t, e.gw.Addr, get("/pay/checkout", bearer(user), "Accept: text/html"))
		if loc := a.header.Get("Location"); a.status != 302 || !strings.HasPrefix(loc, "https://login.example.com/mfa?") || !strings.Contains(loc, "return_to=%2Fpay%2Fcheckout") {
			t.Errorf("step-up redirect: %d Location %q", a.status, loc)
		}
		a = send(t, e.gw.Addr, get("/pay", bearer(user)))
		if wa := a.header.Get("WWW-Authenticate"); !strings.Contains(wa, `acr_values="mfa"`) || !strings.Contains(wa, `max_age="300"`) {
			t.Errorf("step-up challenge %q lacks acr_values or max_age", wa)
		}
		a = send(t, e.gw.Addr, get("/admin", bearer(user)))
		var eb struct{ Error string }
		if json.Unmarshal(a.body, &eb) != nil || eb.Error != "insufficient_scope" {
			t.Errorf("403 body %q lacks error insufficient_scope", a.body)
		}
		a = send(t, e.gw.Addr, request("DELETE", "/ro/x"))
		if a.header.Get("Allow") != "GET" {
			t.Errorf("405 Allow %q", a.header.Get("Allow"))
		}
	})
}

func randomSessionID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// TestStoreDown: with Redis stopped, a decision that needs the store is
// 503 with Retry-After and is never forwarded; a revoked token stays
// refused; JWTs that need no store keep working.
func TestStoreDown(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	e := start(t, options{store: fmt.Sprintf("  type: redis\n  redis:\n    addrs: [%q]\n    timeout: 300ms", rs.Addr())})
	session, _ := e.newSession(t, `{"subject":"hank","roles":["user"]}`)
	revoked := e.token(t, mint.Dev{JTI: "down-revoked"})
	if code, body := e.gw.Admin(t, adminToken, "POST", "/v1/revocations",
		fmt.Sprintf(`{"jti":"down-revoked","issuer":%q,"expires_at":%d}`, issuer, time.Now().Add(time.Hour).Unix())); code != 201 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	fresh := e.token(t, mint.Dev{})
	// Controls while Redis is up.
	e.run(t, []rawCase{
		{name: "up: session", req: get("/app/x", cookie(session)), status: 200, uri: "/app/x"},
		invalidToken("up: revoked token", get("/api/x", bearer(revoked))),
	})
	rs.Stop(t)
	down := func(name, req string) rawCase {
		return rawCase{name: name, req: req, status: 503, code: "temporarily_unavailable"}
	}
	e.run(t, []rawCase{
		down("down: session cookie", get("/app/x", cookie(session))),
		down("down: session bearer", get("/app/x", "Authorization: Bearer "+session)),
		down("down: unknown session", get("/app/x", cookie(randomSessionID(t)))),
		// The node holds the revocation itself (it made it): still refused.
		invalidToken("down: revoked token stays refused", get("/api/x", bearer(revoked))),
		{name: "down: a JWT that is not revoked needs no store", req: get("/api/x", bearer(fresh)), status: 200, uri: "/api/x"},
	})
	t.Run("Retry-After", func(t *testing.T) {
		for _, req := range []string{get("/app/x", cookie(session)), get("/app/x", "Authorization: Bearer "+session)} {
			if a := send(t, e.gw.Addr, req); a.status != 503 || a.header.Get("Retry-After") == "" {
				t.Errorf("%s: %d Retry-After %q", firstLine(req), a.status, a.header.Get("Retry-After"))
			}
		}
	})
}
