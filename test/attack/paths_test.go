package attack

import (
	"testing"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// TestPathTricks: dot segments in every encoding, "//", ";" parameters,
// fragments, backslashes, control characters, absolute-form targets and
// Host games. A path is canonicalised before routing and authentication, so
// no spelling of /admin escapes the admin route's policy, and what is
// forwarded is exactly the canonical path that was matched.
func TestPathTricks(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	user := bearer(e.token(t, mint.Dev{Roles: []string{"user"}}))
	admin := bearer(e.token(t, mint.Dev{Roles: []string{"admin"}}))

	// refused: the canonicaliser's 400.
	refused := func(target string, headers ...string) rawCase {
		return rawCase{name: "400 " + target, req: get(target, headers...), status: 400, code: "invalid_request"}
	}
	// std: Go's server refuses the request line itself.
	std := func(name, req string) rawCase {
		return rawCase{name: name, req: req, status: 400, by: byNetHTTP}
	}
	ok := func(target, uri string, headers ...string) rawCase {
		return rawCase{name: "200 " + target, req: get(target, headers...), status: 200, uri: uri}
	}
	noCred := func(name, req string) rawCase {
		return rawCase{name: name, req: req, status: 401, code: "unauthorized", www: `Bearer realm="portcullis"`}
	}
	forbidden := func(name, req string) rawCase {
		return rawCase{name: name, req: req, status: 403, code: "insufficient_scope", www: `error="insufficient_scope"`}
	}
	hostIs := func(want string) func(t *testing.T, _ answer, got h.Recorded) {
		return func(t *testing.T, _ answer, got h.Recorded) {
			if v := got.Header.Get("X-Forwarded-Host"); v != want {
				t.Errorf("X-Forwarded-Host %q, want %q", v, want)
			}
		}
	}

	cases := []rawCase{
		// Dot segments, plain and encoded in every case and mix.
		refused("/public/../admin"),
		refused("/public/./admin"),
		refused("/public/.."),
		refused("/public/."),
		refused("/public/%2e%2e/admin"),
		refused("/public/%2E%2E/admin"),
		refused("/public/%2e%2E/admin"),
		refused("/public/.%2e/admin"),
		refused("/public/%2e./admin"),
		refused("/public/%2E./admin"),
		refused("/public/%2e/admin"),
		refused("/public/..%2fadmin"),
		refused("/public/..%2Fadmin"),
		refused("/public/%2e%2e%2fadmin"),
		refused("/public%2f..%2fadmin"),
		refused("/public/%252e%252e/admin"),
		refused("/public/%25%32%65%25%32%65/admin"),
		refused("/public/%252E%252E%252Fadmin"),
		refused("/public/x/../../admin"),
		// Dot segments carrying ";" parameters.
		refused("/..;/admin"),
		refused("/public/..;/admin"),
		refused("/public/..;x=1/admin"),
		refused("/public/.;/admin"),
		refused("/public/%2e%2e;/admin"),
		refused("/public/..%3b/admin"),
		// Empty segments.
		refused("//admin"),
		refused("//public/x"),
		refused("/public//x"),
		refused("/public/x//"),
		refused("/;x/admin"),
		refused("/public/;x=1/y"),
		// Backslash, NUL, control characters, bad encodings, raw bytes.
		refused(`/public\..\admin`),
		refused(`/public/..\admin`),
		refused("/public/%5c..%5cadmin"),
		refused("/public/%5C"),
		refused("/public/%255c"),
		refused("/public/%00"),
		refused("/public/x%00.html"),
		refused("/public/%0d%0aX-Auth-Subject:%20root"),
		refused("/public/%09"),
		refused("/public/%7f"),
		refused("/public/%1b"),
		refused("/public/caf\xc3\xa9"),
		// Fragments: a raw "#" in a request target is refused.
		refused("/public#frag"),
		refused("/admin#x"),
		refused("/public/x#/../../admin"),
		ok("/public/%23frag", "/public/%23frag"),
		// Go's server refuses these request lines itself (url.ParseRequestURI
		// or the request-line parser), before the gateway's handler.
		std("bad percent-encoding %zz", "GET /public/%zz HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("truncated percent-encoding %2", "GET /public/%2 HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("lone %", "GET /public/% HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("IIS %u encoding of dots", "GET /public/%u002e%u002e/admin HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("raw DEL in the target", "GET /public/\x7f HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("raw space in the target", "GET /public/a b HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("raw tab in the target", "GET /public/a\tb HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("relative target", "GET public/x HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("control character in the target", "GET /public/\x01 HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		std("missing Host in HTTP/1.1", "GET /public/x HTTP/1.1\r\n\r\n"),
		std("two Host headers", "GET /public/x HTTP/1.1\r\nHost: open.example.com\r\nHost: admin.example.com\r\n\r\n"),
		{name: "505 unknown HTTP version", req: "GET /admin HTTP/2.7\r\nHost: gw.test\r\n\r\n", status: 505, by: byNetHTTP},
		std("HTTP/0.9 request line", "GET /admin\r\n\r\n"),
		// ";" parameters route by the segment name (design decision: /admin;x=1
		// is /admin for routing and is forwarded as sent).
		noCred("/admin;x=1 without a token is the admin route", get("/admin;x=1")),
		forbidden("/admin;x=1 with a user token keeps the admin role rule", get("/admin;x=1", user)),
		ok("/admin;x=1", "/admin;x=1", admin),
		noCred("/admin;x=1/users without a token", get("/admin;x=1/users")),
		noCred("/admin%3Bx=1 (encoded ; starts parameters)", get("/admin%3Bx=1")),
		noCred("/admin%3bx=1 lower-case", get("/admin%3bx=1")),
		ok("/admin%3Bx=1", "/admin%3Bx=1", admin),
		ok("/public;jsessionid=abc/x", "/public;jsessionid=abc/x"),
		// Encoded unreserved characters route like their decoded form.
		noCred("/%61dmin is /admin", get("/%61dmin")),
		noCred("/adm%69n is /admin", get("/adm%69n")),
		noCred("/%61%64%6d%69%6e is /admin", get("/%61%64%6d%69%6e")),
		forbidden("/%61dmin with a user token", get("/%61dmin", user)),
		ok("/%61dmin", "/%61dmin", admin),
		{name: "404 /ADMIN (paths are case-sensitive; nothing forwarded)", req: get("/ADMIN"), status: 404, code: "not_found"},
		{name: "404 /adminx (segment prefix only)", req: get("/adminx"), status: 404, code: "not_found"},
		{name: "404 /admin. (a trailing dot is part of the segment)", req: get("/admin."), status: 404, code: "not_found"},
		noCred("/admin/ trailing slash", get("/admin/")),
		// Encoded slash on ordinary routes: 400.
		refused("/admin%2Fusers"),
		refused("/public/a%2Fb"),
		refused("/public/a%2fb"),
		refused("/public%2Fx"),
		refused("/%2F%2Fevil.example"),
		refused("/api/a%2Fb", user),
		// Absolute-form targets: the target's host is the host.
		noCred("absolute-form http://other/admin", "GET http://other/admin HTTP/1.1\r\nHost: gw.test\r\n\r\n"),
		noCred("absolute-form to the admin host, Host says the open host",
			"GET http://admin.example.com/x HTTP/1.1\r\nHost: open.example.com\r\n\r\n"),
		noCred("absolute-form https to the admin host", "GET https://admin.example.com/x HTTP/1.1\r\nHost: open.example.com\r\n\r\n"),
		noCred("absolute-form with userinfo", "GET http://user@admin.example.com/x HTTP/1.1\r\nHost: open.example.com\r\n\r\n"),
		noCred("absolute-form with a port and trailing dot", "GET http://ADMIN.example.com.:8443/x HTTP/1.1\r\nHost: open.example.com\r\n\r\n"),
		{name: "absolute-form to the open host, Host says the admin host",
			req:    "GET http://open.example.com/x HTTP/1.1\r\nHost: admin.example.com\r\n\r\n",
			status: 200, uri: "/x", check: hostIs("open.example.com")},
		{name: "absolute-form without a path", req: "GET http://open.example.com HTTP/1.1\r\nHost: open.example.com\r\n\r\n",
			status: 200, uri: "/"},
		{name: "absolute-form with only a query", req: "GET http://open.example.com?a=1 HTTP/1.1\r\nHost: open.example.com\r\n\r\n",
			status: 200, uri: "/?a=1"},
		{name: "400 absolute-form with dot segments", req: "GET http://open.example.com/public/../admin HTTP/1.1\r\nHost: open.example.com\r\n\r\n",
			status: 400, code: "invalid_request"},
		{name: "400 absolute-form with an encoded dot segment", req: "GET http://gw.test/public/%2e%2e/admin HTTP/1.1\r\nHost: gw.test\r\n\r\n",
			status: 400, code: "invalid_request"},
		{name: "400 absolute-form with //", req: "GET http://gw.test//admin HTTP/1.1\r\nHost: gw.test\r\n\r\n",
			status: 400, code: "invalid_request"},
		// Host games on origin-form targets.
		noCred("Host in upper case with a trailing dot", "GET /x HTTP/1.1\r\nHost: ADMIN.EXAMPLE.COM.\r\n\r\n"),
		noCred("Host with a port", "GET /x HTTP/1.1\r\nHost: admin.example.com:443\r\n\r\n"),
		{name: "404 Host with two trailing dots (no route)", req: "GET /x HTTP/1.1\r\nHost: admin.example.com..\r\n\r\n", status: 404, code: "not_found"},
		// Other request-target forms.
		// "OPTIONS *" is answered by net/http's general OPTIONS handler (200,
		// empty) and never reaches the gateway's handler or an upstream.
		{name: "OPTIONS * answered by net/http", req: "OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n", status: 200, by: byNetHTTP},
		{name: "400 CONNECT authority-form", req: "CONNECT admin.example.com:443 HTTP/1.1\r\nHost: admin.example.com:443\r\n\r\n", status: 400, code: "invalid_request"},
		// strip_path: the forwarded path is below the prefix, canonical.
		{name: "strip_path /svc/x", req: get("/svc/x?q=1", user), status: 200, uri: "/base/x?q=1"},
		{name: "strip_path keeps encodings", req: get("/svc/caf%C3%A9;v=1", user), status: 200, uri: "/base/caf%C3%A9;v=1"},
		{name: "strip_path /svc;x=1/y", req: get("/svc;x=1/y", user), status: 200, uri: "/base/y"},
		refused("/svc/../admin", user),
		refused("/svc/%2e%2e/admin", user),
		refused("/svc/a%2Fb", user),
		{name: "404 /svcx", req: get("/svcx", user), status: 404, code: "not_found"},
	}
	e.run(t, cases)
}

// TestEncodedSlash: on a route with allow_encoded_slash, %2F is part of its
// segment and forwarded byte for byte; every other rule still applies.
func TestEncodedSlash(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	user := bearer(e.token(t, mint.Dev{Roles: []string{"user"}}))
	ok := func(target string) rawCase {
		return rawCase{name: "200 " + target, req: get(target, user), status: 200, uri: target,
			check: func(t *testing.T, _ answer, got h.Recorded) {
				if got.Header.Get("X-Auth-Subject") != "alice" {
					t.Errorf("X-Auth-Subject %q", got.Header.Get("X-Auth-Subject"))
				}
			}}
	}
	refused := func(target string) rawCase {
		return rawCase{name: "400 " + target, req: get(target, user), status: 400, code: "invalid_request"}
	}
	cases := []rawCase{
		ok("/files/a%2Fb"),
		ok("/files/a%2fb"),
		ok("/files/group%2Fsub%2Fproject/raw/main%2Fdir%2Ffile.txt?ref=x%2Fy"),
		ok("/files/a%2Fb;v=1/c"),
		ok("/files/a%2Fb/caf%C3%A9/%7Euser"),
		{name: "no credential on the route is still 401", req: get("/files/a%2Fb"), status: 401, code: "unauthorized", www: `Bearer realm="portcullis"`},
		refused("/files/a%2F..%2Fb"),
		refused("/files/..%2Fadmin"),
		refused("/files/%2e%2e%2Fadmin"),
		refused("/files/a%2F.%2Fb"),
		refused("/files/a%2F%2e"),
		refused("/files/a%2F..;x/b"),
		refused("/files/a%252Fb"),
		refused("/files/a%2F%5Cb"),
		refused("/files/a%2F%00"),
		refused("/files//a%2Fb"),
		refused("/files/a%2Fb//c"),
		refused("/files/a%2Fb/../c"),
		refused("/files/a%2F#b"),
		// The route's own prefix cannot be reached through an encoded slash.
		refused("/files%2Fa"),
		// Consecutive encoded slashes stay legal here: Argo CD, one of the
		// upstreams SPEC names, puts cluster URLs such as https%3A%2F%2Fhost
		// in one segment. They are forwarded byte for byte.
		ok("/files/https%3A%2F%2Fkubernetes.default.svc"),
		ok("/files/%2F%2Fb"),
	}
	e.run(t, cases)
}
