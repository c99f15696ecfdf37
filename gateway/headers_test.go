package gateway

import (
	"net/http"
	"strings"
	"testing"
)

func TestManagedHeaders(t *testing.T) {
	ih := newIdentityHeaders(IdentityConfig{StripPrefix: "X-Auth-"})
	for name, want := range map[string]bool{
		"X-Auth-Subject": true, "x-auth-subject": true, "X_Auth_Subject": true, "X-AUTH_ROLES": true,
		"X-Auth-": true, "X-Authz": false, "X-Auth": false, "Authorization": false, "X-Forwarded-For": false,
	} {
		if got := ih.managed(name); got != want {
			t.Errorf("managed(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRemoveCookies(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"a=1; sess=x; b=2"}, []string{"a=1; b=2"}},
		{[]string{"sess=x"}, nil},
		{[]string{"a=1", "sess=y"}, []string{"a=1"}},
		{[]string{"xsess=1; sessx=2"}, []string{"xsess=1; sessx=2"}},
		{[]string{"a=1;sess=x;rt=z"}, []string{"a=1"}},
	}
	for _, tc := range tests {
		h := http.Header{"Cookie": tc.in}
		removeCookies(h, "sess", "rt")
		if strings.Join(h["Cookie"], "|") != strings.Join(tc.want, "|") {
			t.Errorf("removeCookies(%q) = %q, want %q", tc.in, h["Cookie"], tc.want)
		}
	}
}

func TestRequestPath(t *testing.T) {
	for uri, want := range map[string]string{
		"/a/b?x=1":                "/a/b",
		"http://other/admin?x=1":  "/admin",
		"http://other":            "/",
		"https://h:8443/%2e%2e/x": "/%2e%2e/x",
		"*":                       "",
		"other:443":               "",
	} {
		got, ok := requestPath(&http.Request{RequestURI: uri})
		if got != want || ok != (want != "") {
			t.Errorf("requestPath(%q) = %q, %v; want %q", uri, got, ok, want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123_x.y": true, strings.Repeat("a", 128): true, strings.Repeat("a", 129): false,
		"": false, "a b": false, "a\nb": false, "ä": false, "a/b": false,
	} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v", id, got)
		}
	}
}

func TestBearerChallengeQuoting(t *testing.T) {
	got := bearerChallenge("error", "invalid_token", "error_description", `say "hi" \ bye`+"\n")
	want := `Bearer error="invalid_token", error_description="say \"hi\" \\ bye"`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestSameOrigin(t *testing.T) {
	mk := func(kv ...string) *http.Request {
		r := &http.Request{Host: "app.example", Header: http.Header{}}
		for i := 0; i+1 < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		r    *http.Request
		want bool
	}{
		{mk("Origin", "http://app.example"), true},
		{mk("Origin", "http://APP.example"), true},
		{mk("Origin", "http://app.example.evil"), false},
		{mk("Origin", "null"), false},
		{mk("Sec-Fetch-Site", "same-origin"), true},
		{mk("Sec-Fetch-Site", "same-site"), false},
		{mk("Referer", "http://app.example/x"), true},
		{mk("Referer", "http://app.example.evil/x"), false},
		{mk("Referer", "http://app.example@evil/x"), false},
		{mk(), false},
	} {
		if got := sameOrigin(tc.r, false); got != tc.want {
			t.Errorf("sameOrigin(%v) = %v", tc.r.Header, got)
		}
	}
}

func TestSameOriginBehindTrustedProxy(t *testing.T) {
	r := &http.Request{Host: "10.0.0.5:8080", Header: http.Header{
		"Origin": {"https://app.example"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.example"}}}
	if !sameOrigin(r, true) {
		t.Error("a TLS-terminating trusted proxy's request was refused")
	}
	if sameOrigin(r, false) {
		t.Error("forwarded headers from an untrusted peer were believed")
	}
}
