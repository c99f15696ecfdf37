package attack

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// TestRequestHygiene covers SPEC "Request hygiene" on the main gateway:
// ambiguous credentials, h2c upgrades, CSRF, request ids and forwarding
// headers from an untrusted client.
func TestRequestHygiene(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	tok := e.token(t, mint.Dev{Roles: []string{"user"}})
	other := e.token(t, mint.Dev{Subject: "bob"})
	s1, _ := e.newSession(t, `{"subject":"ivy","roles":["user"]}`)
	s2, _ := e.newSession(t, `{"subject":"jack","roles":["user"]}`)
	const self = "http://gw.test"

	dup := func(name, req string) rawCase {
		return rawCase{name: name, req: req, status: 400, code: "invalid_request"}
	}
	noUpgrade := func(t *testing.T, _ answer, got h.Recorded) {
		t.Helper()
		for _, k := range []string{"Upgrade", "Http2-Settings"} {
			if v := got.Header.Values(k); len(v) != 0 {
				t.Errorf("upstream received %s: %q", k, v)
			}
		}
		for _, v := range got.Header.Values("Connection") {
			if strings.Contains(strings.ToLower(v), "upgrade") || strings.Contains(strings.ToLower(v), "http2-settings") {
				t.Errorf("upstream received Connection: %q", v)
			}
		}
	}
	h2c := []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}
	csrf := func(name, method string, headers ...string) rawCase {
		return rawCase{name: name, req: request(method, "/app/x", append(headers, "Content-Length: 0")...), status: 403, code: "csrf"}
	}
	csrfOK := func(name, method string, headers ...string) rawCase {
		return rawCase{name: name, req: request(method, "/app/x", append(headers, "Content-Length: 0")...), status: 200, uri: "/app/x"}
	}
	cases := []rawCase{
		// Two Authorization headers: 400 on every route, before routing.
		dup("two Authorization headers", get("/api/x", bearer(tok), bearer(other))),
		dup("two identical Authorization headers", get("/api/x", bearer(tok), bearer(tok))),
		dup("two Authorization headers differing in case", get("/api/x", bearer(tok), "authorization: Bearer "+tok)),
		dup("two Authorization headers on an auth none route", get("/public/x", bearer(tok), bearer(other))),
		dup("two Authorization headers on no route", get("/nowhere", bearer(tok), bearer(other))),
		dup("Bearer and Basic", get("/api/x", bearer(tok), "Authorization: Basic YTpi")),
		// Two session cookies with different values: 400.
		dup("two session cookies in one line", get("/app/x", "Cookie: "+cookieName+"="+s1+"; "+cookieName+"="+s2)),
		dup("two session cookies in two lines", get("/app/x", cookie(s1), cookie(s2))),
		dup("two session cookies, one quoted", get("/app/x", "Cookie: "+cookieName+"=\""+s2+"\"; "+cookieName+"="+s1)),
		dup("two session cookies on an auth none route", get("/public/x", cookie(s1), cookie(s2))),
		dup("session cookie and a different bearer", get("/app/x", cookie(s1), "Authorization: Bearer "+s2)),
		dup("session cookie and a JWT bearer", get("/app/x", cookie(s1), bearer(tok))),
		{name: "the same session cookie twice is one credential", req: get("/app/x", "Cookie: "+cookieName+"="+s1+"; "+cookieName+"="+s1),
			status: 200, uri: "/app/x", check: func(t *testing.T, _ answer, got h.Recorded) {
				if got.Header.Get("X-Auth-Subject") != "ivy" || strings.Contains(got.Header.Get("Cookie"), s1) {
					t.Errorf("subject %q, Cookie %q", got.Header.Get("X-Auth-Subject"), got.Header.Get("Cookie"))
				}
			}},
		// h2c never reaches an upstream.
		{name: "h2c upgrade on an auth none route", req: get("/public/x", h2c...), status: 200, uri: "/public/x", check: noUpgrade},
		{name: "h2c upgrade on an authenticated route", req: get("/api/x", append(h2c, bearer(tok))...), status: 200, uri: "/api/x", check: noUpgrade},
		{name: "h2c upgrade without a credential", req: get("/api/x", h2c...), status: 401, code: "unauthorized"},
		{name: "H2C in upper case", req: get("/public/x", "Connection: Upgrade, HTTP2-Settings", "Upgrade: H2C", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
			status: 200, uri: "/public/x", check: noUpgrade},
		{name: "h2c listed with another protocol", req: get("/public/x", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c, foo/1", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
			status: 200, uri: "/public/x", check: noUpgrade},
		{name: "h2c listed after another protocol", req: get("/public/x", "Connection: Upgrade", "Upgrade: foo/1, h2c"),
			status: 200, uri: "/public/x", check: noUpgrade},
		{name: "HTTP2-Settings not named in Connection", req: get("/public/x", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
			status: 200, uri: "/public/x", check: noUpgrade},
		{name: "Upgrade h2c not named in Connection", req: get("/public/x", "Upgrade: h2c"), status: 200, uri: "/public/x", check: noUpgrade},
		{name: "HTTP/2 prior-knowledge preface on the HTTP/1 listener", req: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 400, code: "invalid_request"},
		// CSRF: cookie-authenticated unsafe methods need a same-origin signal.
		csrf("POST, cross Origin", "POST", cookie(s1), "Origin: https://evil.example"),
		csrf("PUT, cross Origin", "PUT", cookie(s1), "Origin: https://evil.example"),
		csrf("PATCH, cross Origin", "PATCH", cookie(s1), "Origin: https://evil.example"),
		csrf("DELETE, cross Origin", "DELETE", cookie(s1), "Origin: https://evil.example"),
		csrf("POST, Origin null", "POST", cookie(s1), "Origin: null"),
		csrf("POST, Origin with another scheme", "POST", cookie(s1), "Origin: https://gw.test"),
		csrf("POST, Origin with another port", "POST", cookie(s1), "Origin: http://gw.test:8443"),
		csrf("POST, Origin extending the host", "POST", cookie(s1), "Origin: http://gw.test.evil.example"),
		csrf("POST, Origin of a subdomain", "POST", cookie(s1), "Origin: http://a.gw.test"),
		csrf("POST, cross Referer, no Origin", "POST", cookie(s1), "Referer: https://evil.example/page"),
		csrf("POST, Referer extending the host", "POST", cookie(s1), "Referer: http://gw.test.evil.example/page"),
		csrf("POST, Referer with userinfo", "POST", cookie(s1), "Referer: http://gw.test@evil.example/page"),
		csrf("POST, Sec-Fetch-Site cross-site", "POST", cookie(s1), "Sec-Fetch-Site: cross-site"),
		csrf("POST, Sec-Fetch-Site same-site", "POST", cookie(s1), "Sec-Fetch-Site: same-site"),
		csrf("POST, cross Origin, same Referer", "POST", cookie(s1), "Origin: https://evil.example", "Referer: "+self+"/page"),
		csrf("POST, no Origin, Referer or Sec-Fetch-Site", "POST", cookie(s1)),
		csrf("unknown method, cross Origin", "PURGE", cookie(s1), "Origin: https://evil.example"),
		csrfOK("POST, same Origin", "POST", cookie(s1), "Origin: "+self),
		csrfOK("POST, same Referer", "POST", cookie(s1), "Referer: "+self+"/page"),
		csrfOK("POST, Sec-Fetch-Site same-origin", "POST", cookie(s1), "Sec-Fetch-Site: same-origin"),
		csrfOK("GET, cross Origin (safe method)", "GET", cookie(s1), "Origin: https://evil.example"),
		csrfOK("HEAD, cross Origin (safe method)", "HEAD", cookie(s1), "Origin: https://evil.example"),
		csrfOK("OPTIONS, cross Origin (safe method)", "OPTIONS", cookie(s1), "Origin: https://evil.example"),
		csrfOK("POST with an opaque bearer, cross Origin", "POST", "Authorization: Bearer "+s1, "Origin: https://evil.example"),
		// The gateway's own logout endpoint follows the same rule.
		{name: "logout, cross Origin", req: request("POST", "/.portcullis/logout", cookie(s1), "Origin: https://evil.example", "Content-Length: 0"), status: 403, code: "csrf"},
		{name: "logout, no Origin", req: request("POST", "/.portcullis/logout", cookie(s1), "Content-Length: 0"), status: 403, code: "csrf"},
		{name: "logout through /%2Eportcullis, cross Origin", req: request("POST", "/%2Eportcullis/logout", cookie(s1), "Origin: https://evil.example", "Content-Length: 0"), status: 403, code: "csrf"},
		{name: "the session survived the refused logouts", req: get("/app/x", cookie(s1)), status: 200, uri: "/app/x"},
		// The session cookie never reaches an upstream, whatever the route.
		{name: "session cookie on an auth none route", req: get("/public/x", "Cookie: a=1; "+cookieName+"="+s1+"; b=2"), status: 200, uri: "/public/x",
			check: func(t *testing.T, _ answer, got h.Recorded) {
				if c := got.Header.Values("Cookie"); !slices.Equal(c, []string{"a=1; b=2"}) {
					t.Errorf("upstream Cookie %q", c)
				}
			}},
		// Request ids and forwarding headers from an untrusted client.
		{name: "X-Request-Id from an untrusted client is replaced", req: get("/public/x", "X-Request-Id: client-chosen-id"),
			status: 200, uri: "/public/x", check: generatedID("client-chosen-id")},
		{name: "X-Forwarded-* and Forwarded from an untrusted client are replaced", req: get("/public/x",
			"X-Forwarded-For: 10.9.8.7", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https", "Forwarded: for=10.9.8.7;host=evil.example;proto=https"),
			status: 200, uri: "/public/x", check: forwarded("127.0.0.1", "gw.test", "http", nil)},
	}
	e.run(t, cases)

	// net/http cancels a request when its client closes its sending side.
	// The gateway then gives up on the upstream and ends the request as a
	// 499; the connection must be aborted, not completed with an empty 200
	// the half-closed client would read as success.
	t.Run("a half-closed client gets no false 200", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", e.gw.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.WriteString(c, get("/slow/half-closed")); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		if rest, _ := io.ReadAll(c); len(rest) != 0 {
			t.Errorf("answer %q, want the connection aborted", firstLine(string(rest)))
		}
		h.Eventually(t, 10*time.Second, "the 499 access log line", func() bool {
			return logLine(e.gw.Logs(), `"path":"/slow/half-closed"`, `"status":499`, `"reason":"client-closed"`)
		})
	})

	t.Run("no credential appears in the logs or metrics", func(t *testing.T) {
		resp, err := http.Get(e.gw.AdminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for what, text := range map[string]string{"logs": e.gw.Logs(), "metrics": string(metrics)} {
			for _, secret := range []string{tok, other, s1, s2} {
				if strings.Contains(text, secret) {
					t.Errorf("a token or session ID appears in the %s", what)
				}
			}
		}
	})
}

var generatedIDPattern = regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-z]+$`)

// generatedID checks that the gateway made the request id: not the
// client's, the same upstream and in the answer.
func generatedID(client string) func(t *testing.T, a answer, got h.Recorded) {
	return func(t *testing.T, a answer, got h.Recorded) {
		t.Helper()
		id := got.Header.Values("X-Request-Id")
		if len(id) != 1 || id[0] == client || !generatedIDPattern.MatchString(id[0]) {
			t.Errorf("upstream X-Request-Id %q: want one the gateway generated", id)
			return
		}
		if a.header.Get("X-Request-Id") != id[0] {
			t.Errorf("answer X-Request-Id %q differs from the upstream's %q", a.header.Get("X-Request-Id"), id[0])
		}
	}
}

// keptID checks that the client's request id was kept.
func keptID(want string) func(t *testing.T, a answer, got h.Recorded) {
	return func(t *testing.T, a answer, got h.Recorded) {
		t.Helper()
		if id := got.Header.Values("X-Request-Id"); len(id) != 1 || id[0] != want || a.header.Get("X-Request-Id") != want {
			t.Errorf("upstream X-Request-Id %q, answer %q; want %q kept", id, a.header.Get("X-Request-Id"), want)
		}
	}
}

// forwarded checks X-Forwarded-For/-Host/-Proto and Forwarded upstream.
func forwarded(xff, host, proto string, fwd []string) func(t *testing.T, _ answer, got h.Recorded) {
	return func(t *testing.T, _ answer, got h.Recorded) {
		t.Helper()
		for k, want := range map[string][]string{"X-Forwarded-For": {xff}, "X-Forwarded-Host": {host}, "X-Forwarded-Proto": {proto}, "Forwarded": fwd} {
			if v := got.Header.Values(k); !slices.Equal(v, want) {
				t.Errorf("upstream %s = %q, want %q", k, v, want)
			}
		}
	}
}

// TestTrustedProxy: a second gateway with server.trusted_proxies covering
// the test's address keeps a well-formed X-Request-Id and extends
// X-Forwarded-For; a malformed request id is still replaced.
func TestTrustedProxy(t *testing.T) {
	t.Parallel()
	e := start(t, options{server: `  trusted_proxies: ["127.0.0.1/32"]`})
	id128 := strings.Repeat("a1._-", 25) + "xyz"
	cases := []rawCase{
		{name: "a valid X-Request-Id is kept", req: get("/public/x", "X-Request-Id: Abc-123_x.Y"), status: 200, uri: "/public/x", check: keptID("Abc-123_x.Y")},
		{name: "128 characters are kept", req: get("/public/x", "X-Request-Id: "+id128), status: 200, uri: "/public/x", check: keptID(id128)},
		{name: "129 characters are replaced", req: get("/public/x", "X-Request-Id: "+id128+"z"), status: 200, uri: "/public/x", check: generatedID(id128 + "z")},
		{name: "a slash is replaced", req: get("/public/x", "X-Request-Id: a/b"), status: 200, uri: "/public/x", check: generatedID("a/b")},
		{name: "a space is replaced", req: get("/public/x", "X-Request-Id: a b"), status: 200, uri: "/public/x", check: generatedID("a b")},
		{name: "a quote is replaced", req: get("/public/x", `X-Request-Id: a"b`), status: 200, uri: "/public/x", check: generatedID(`a"b`)},
		{name: "a percent sign is replaced", req: get("/public/x", "X-Request-Id: a%0Ab"), status: 200, uri: "/public/x", check: generatedID("a%0Ab")},
		{name: "non-ASCII is replaced", req: get("/public/x", "X-Request-Id: caf\u00e9"), status: 200, uri: "/public/x", check: generatedID("caf\u00e9")},
		{name: "an empty id is replaced", req: get("/public/x", "X-Request-Id:"), status: 200, uri: "/public/x", check: generatedID("")},
		{name: "no id: one is generated", req: get("/public/x"), status: 200, uri: "/public/x", check: generatedID("")},
		{name: "the id of a refusal is kept too", req: get("/api/x", "X-Request-Id: trace-401"), status: 401, code: "unauthorized"},
		{name: "X-Forwarded-For is extended", req: get("/public/x", "X-Forwarded-For: 203.0.113.7"), status: 200, uri: "/public/x",
			check: forwarded("203.0.113.7, 127.0.0.1", "gw.test", "http", nil)},
		{name: "two X-Forwarded-For lines are joined and extended", req: get("/public/x", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 10.0.0.2"),
			status: 200, uri: "/public/x", check: forwarded("203.0.113.7, 10.0.0.2, 127.0.0.1", "gw.test", "http", nil)},
		{name: "X-Forwarded-Host, -Proto and Forwarded are kept", req: get("/public/x", "X-Forwarded-Host: shop.example", "X-Forwarded-Proto: https", "Forwarded: for=203.0.113.7"),
			status: 200, uri: "/public/x", check: forwarded("127.0.0.1", "shop.example", "https", []string{"for=203.0.113.7"})},
		{name: "identity headers are stripped even from a trusted proxy", req: get("/public/x", "X-Auth-Subject: root", "X_Auth_Roles: admin"),
			status: 200, uri: "/public/x", check: noSpoof(nil)},
	}
	e.run(t, cases)
	t.Run("the refusal's answer carries the kept id", func(t *testing.T) {
		if a := send(t, e.gw.Addr, get("/api/x", "X-Request-Id: trace-401")); a.header.Get("X-Request-Id") != "trace-401" || !strings.Contains(string(a.body), `"request_id":"trace-401"`) {
			t.Errorf("answer %s", a)
		}
	})
}

// TestWebSocket: a WebSocket upgrade passes on a route whose
// authentication succeeded (101, and the tunnel carries data both ways)
// and is refused without a valid credential.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	tok := e.token(t, mint.Dev{Roles: []string{"user"}})
	upgrade := func(headers ...string) string {
		return get("/ws/chat", append([]string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, headers...)...)
	}

	t.Run("authenticated upgrade: 101 and an open tunnel", func(t *testing.T) {
		e.up.Reset()
		c, err := net.DialTimeout("tcp", e.gw.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.WriteString(c, upgrade(bearer(tok), "X-Auth-Subject: mallory")); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
			t.Fatalf("answer %d Upgrade %q, want 101 websocket", resp.StatusCode, resp.Header.Get("Upgrade"))
		}
		got := e.up.Last(t)
		if !strings.EqualFold(got.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(got.Header.Get("Connection"), "Upgrade") {
			t.Errorf("upstream Upgrade %q Connection %q", got.Header.Get("Upgrade"), got.Header.Get("Connection"))
		}
		if got.Header.Get("X-Auth-Subject") != "alice" || got.RequestURI != "/ws/chat" {
			t.Errorf("upstream subject %q path %q", got.Header.Get("X-Auth-Subject"), got.RequestURI)
		}
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "echo: ping\n" {
			t.Fatalf("through the tunnel: %q %v", line, err)
		}
		if e.up.Count() != 1 {
			t.Errorf("the upstream received %d requests", e.up.Count())
		}
	})

	e.run(t, []rawCase{
		{name: "upgrade without a credential", req: upgrade(), status: 401, code: "unauthorized", www: `Bearer realm="portcullis"`},
		invalidToken("upgrade with an expired token", upgrade(bearer(e.token(t, mint.Dev{TTL: -time.Minute})))),
		invalidToken("upgrade with a forged token", upgrade(bearer(sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": e.es.Signer.KeyID()}, claims(nil))))),
		{name: "upgrade with a session cookie on a jwt route", req: upgrade(cookie("x")), status: 401, code: "unauthorized"},
		{name: "upgrade with a path trick", req: strings.Replace(upgrade(bearer(tok)), "/ws/chat", "/ws/../admin", 1), status: 400, code: "invalid_request"},
	})
}
