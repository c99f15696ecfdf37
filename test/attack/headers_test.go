package attack

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// identityWant is what the upstream must see under the X-Auth- prefix for
// the token of TestHeaderSpoofing, and nothing else.
var identityWant = map[string]string{
	"x-auth-subject":  "alice",
	"x-auth-method":   "jwt",
	"x-auth-roles":    "user",
	"x-auth-issuer":   issuer,
	"x-auth-token-id": "spoof-jti",
}

// noSpoof checks the identity headers the upstream received: every header
// whose name, read case-insensitively with "_" as "-", starts with the
// strip prefix is one the gateway set, with exactly the gateway's value.
func noSpoof(want map[string]string) func(t *testing.T, _ answer, got h.Recorded) {
	return func(t *testing.T, _ answer, got h.Recorded) {
		t.Helper()
		seen := map[string]bool{}
		for k, vs := range got.Header {
			norm := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			if !strings.HasPrefix(norm, "x-auth-") {
				continue
			}
			w, ok := want[norm]
			if !ok {
				t.Errorf("spoofed header %s: %q reached the upstream", k, vs)
				continue
			}
			if len(vs) != 1 || vs[0] != w || k != canonical(norm) {
				t.Errorf("upstream %s = %q, want exactly %s: %q", k, vs, canonical(norm), w)
			}
			seen[norm] = true
		}
		for k := range want {
			if !seen[k] {
				t.Errorf("the gateway's %s is missing upstream", k)
			}
		}
		if vs := got.Header.Values("X-Forwarded-For"); !slices.Equal(vs, []string{"127.0.0.1"}) {
			t.Errorf("X-Forwarded-For %q, want the connection's address only", vs)
		}
		if got.Header.Get("Portcullis-Session") != "" || got.Header.Get("Portcullis-Session-Update") != "" {
			t.Error("a Portcullis-Session request header reached the upstream")
		}
	}
}

func canonical(lower string) string {
	parts := strings.Split(lower, "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}

// TestHeaderSpoofing: a client can neither add identity headers (in any
// case, with underscores, duplicated, folded) nor remove the gateway's by
// naming them in Connection.
func TestHeaderSpoofing(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	tok := e.token(t, mint.Dev{Roles: []string{"user"}, JTI: "spoof-jti"})
	auth := bearer(tok)
	api := func(name string, headers ...string) rawCase {
		return rawCase{name: name, req: get("/api/x", append([]string{auth}, headers...)...), status: 200, uri: "/api/x", check: noSpoof(identityWant)}
	}
	public := func(name string, headers ...string) rawCase {
		return rawCase{name: "auth none: " + name, req: get("/public/x", headers...), status: 200, uri: "/public/x", check: noSpoof(nil)}
	}
	bad := func(name, req string) rawCase {
		// Go's server refuses malformed header lines itself (400).
		return rawCase{name: name, req: req, status: 400, by: byNetHTTP}
	}
	withObsFold := func(target string, lines ...string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
	}

	cases := []rawCase{
		api("X-Auth-Subject", "X-Auth-Subject: mallory"),
		api("lower case", "x-auth-subject: mallory"),
		api("upper case", "X-AUTH-SUBJECT: mallory"),
		api("mixed case roles", "x-AuTh-RoLeS: admin"),
		api("underscores X_Auth_Subject", "X_Auth_Subject: mallory"),
		api("underscores lower x_auth_roles", "x_auth_roles: admin"),
		api("mixed separators X-Auth_Subject", "X-Auth_Subject: mallory"),
		api("mixed separators X_AUTH-ROLES", "X_AUTH-ROLES: admin"),
		api("duplicate X-Auth-Subject", "X-Auth-Subject: mallory", "X-Auth-Subject: eve"),
		api("duplicate in different cases", "X-Auth-Subject: mallory", "x-auth-subject: eve", "X_AUTH_SUBJECT: trudy"),
		api("X-Auth-Roles list", "X-Auth-Roles: admin, root"),
		api("X-Auth-Method", "X-Auth-Method: session"),
		api("X-Auth-Session on a JWT route", "X-Auth-Session: h-victim"),
		api("X-Auth-Token-Id", "X-Auth-Token-Id: other-jti"),
		api("X-Auth-Issuer", "X-Auth-Issuer: https://evil.test/"),
		api("X-Auth-Acr", "X-Auth-Acr: mfa"),
		api("X-Auth-Amr", "X-Auth-Amr: hwk"),
		api("X-Auth-Time", "X-Auth-Time: 99999999999"),
		api("X-Auth-Scopes", "X-Auth-Scopes: admin:all"),
		api("X-Auth-Email (mapped claim the token lacks)", "X-Auth-Email: ceo@example.com"),
		api("unknown header under the prefix", "X-Auth-Tenant: other"),
		api("empty value", "X-Auth-Subject:"),
		api("no space after the colon", "X-Auth-Subject:mallory"),
		api("prefix only", "X-Auth-: x"),
		api("Connection names X-Auth-Subject", "Connection: X-Auth-Subject"),
		api("Connection names every identity header", "Connection: keep-alive, X-Auth-Subject, X-Auth-Method, X-Auth-Roles, X-Auth-Issuer, X-Auth-Token-Id"),
		api("Connection names them in lower case", "Connection: x-auth-subject, x-auth-roles"),
		api("Connection names X-Forwarded-For and X-Request-Id", "Connection: X-Forwarded-For, X-Request-Id"),
		api("two Connection headers", "Connection: keep-alive", "Connection: X-Auth-Subject"),
		api("Connection names a spoofed header it also sends", "X-Auth-Subject: mallory", "Connection: X-Auth-Subject"),
		api("X-Forwarded-For from an untrusted client", "X-Forwarded-For: 10.0.0.1"),
		api("two X-Forwarded-For", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2"),
		api("Portcullis-Session request header", `Portcullis-Session: {"subject":"root","roles":["admin"]}`),
		api("Portcullis-Session-Update request header", `Portcullis-Session-Update: {"roles":["admin"]}`),
		public("X-Auth-Subject", "X-Auth-Subject: mallory"),
		public("underscores", "X_Auth_Subject: mallory", "x_auth_roles: admin"),
		public("upper case", "X-AUTH-METHOD: session"),
		public("Connection naming X-Forwarded-For", "X-Forwarded-For: 10.0.0.1", "Connection: X-Forwarded-For"),
		// obs-fold: Go's server unfolds continuation lines into the previous
		// value (RFC 9112 §5.2 allows replacing them with a space), so a
		// folded line never becomes a header of its own.
		{name: "obs-fold continuation holding an identity header", req: withObsFold("/api/x", auth, "X-Note: a", " X-Auth-Subject: mallory"),
			status: 200, uri: "/api/x", check: func(t *testing.T, a answer, got h.Recorded) {
				noSpoof(identityWant)(t, a, got)
				if v := got.Header.Get("X-Note"); v != "a X-Auth-Subject: mallory" {
					t.Errorf("X-Note %q: the fold was not read as a continuation", v)
				}
			}},
		{name: "obs-fold continuation with a tab", req: withObsFold("/api/x", auth, "X-Note: a", "\tX-Auth-Roles: admin"),
			status: 200, uri: "/api/x", check: noSpoof(identityWant)},
		{name: "obs-fold of an identity header", req: withObsFold("/api/x", auth, "X-Auth-Subject: mallory", " eve"),
			status: 200, uri: "/api/x", check: noSpoof(identityWant)},
		{name: "obs-fold of Connection", req: withObsFold("/api/x", auth, "Connection: keep-alive,", " X-Auth-Subject"),
			status: 200, uri: "/api/x", check: noSpoof(identityWant)},
		bad("obs-fold as the first header line", "GET /api/x HTTP/1.1\r\n X-Auth-Subject: mallory\r\nHost: gw.test\r\n"+auth+"\r\n\r\n"),
		bad("space before the colon", withObsFold("/api/x", auth, "X-Auth-Subject : mallory")),
		bad("tab before the colon", withObsFold("/api/x", auth, "X-Auth-Subject\t: mallory")),
		bad("header line without a colon", withObsFold("/api/x", auth, "X-Auth-Subject mallory")),
		bad("NUL in a header name", withObsFold("/api/x", auth, "X-Auth-Subject\x00: mallory")),
		bad("NUL in a header value", withObsFold("/api/x", auth, "X-Note: a\x00b")),
		bad("bare CR in a header value", withObsFold("/api/x", auth, "X-Note: a\rX-Auth-Subject: mallory")),
		bad("non-ASCII look-alike hyphen in the name", withObsFold("/api/x", auth, "X\u2010Auth-Subject: mallory")),
		bad("bare LF line end smuggling an identity header in a value", "GET /api/x HTTP/1.1\r\nHost: gw.test\r\n"+auth+"\r\nX-Note: a\nX-Auth-Subject : mallory\r\n\r\n"),
		{name: "bare LF line ends", req: "GET /api/x HTTP/1.1\nHost: gw.test\n" + auth + "\nX-Auth-Subject: mallory\n\n",
			status: 200, uri: "/api/x", check: noSpoof(identityWant)},
	}
	e.run(t, cases)

	// Trailer fields are not headers: an identity name announced in
	// Trailer and sent after the last chunk never reaches the upstream
	// with a value.
	t.Run("identity names in chunked trailers", func(t *testing.T) {
		trailers := make(chan http.Header, 1)
		e.up.Handle(func(w http.ResponseWriter, r *http.Request) {
			trailers <- r.Trailer.Clone()
		})
		defer e.up.Handle(upstreamHandler)
		e.up.Reset()
		a := send(t, e.gw.Addr, "POST /api/x HTTP/1.1\r\nHost: gw.test\r\n"+auth+"\r\nTrailer: X-Auth-Subject, X-Auth-Roles\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"3\r\nabc\r\n0\r\nX-Auth-Subject: root\r\nX-Auth-Roles: admin\r\nX_Auth_Method: session\r\n\r\n")
		if a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
		got := e.up.Last(t)
		noSpoof(identityWant)(t, a, got)
		if string(got.Body) != "abc" {
			t.Errorf("upstream body %q", got.Body)
		}
		for k, vs := range <-trailers {
			if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-auth-") && strings.Join(vs, "") != "" {
				t.Errorf("upstream trailer %s: %q", k, vs)
			}
		}
	})
}
