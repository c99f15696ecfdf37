package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// okRoute is a valid route the error tests start from.
func okRoute() RouteConfig {
	return RouteConfig{Path: "/api", Upstream: "http://127.0.0.1:9001", Auth: AuthJWT}
}

func boolPtr(b bool) *bool { return &b }

func TestCompileRouteErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*RouteConfig)
		want   []string // exact messages, in order; nil: valid
	}{
		{"valid", func(*RouteConfig) {}, nil},

		// auth
		{"auth missing", func(r *RouteConfig) { r.Auth = "" },
			[]string{"routes[0].auth: is required (one of none, jwt, session, any)"}},
		{"auth unknown", func(r *RouteConfig) { r.Auth = "basic" },
			[]string{"routes[0].auth: must be one of none, jwt, session, any"}},
		{"auth upper case", func(r *RouteConfig) { r.Auth = "JWT" },
			[]string{"routes[0].auth: must be one of none, jwt, session, any"}},
		{"auth none", func(r *RouteConfig) { r.Auth = AuthNone }, nil},
		{"auth session", func(r *RouteConfig) { r.Auth = AuthSession }, nil},
		{"auth any", func(r *RouteConfig) { r.Auth = AuthAny }, nil},
		{"auth none with rules", func(r *RouteConfig) {
			r.Auth = AuthNone
			r.Roles = []string{"admin"}
			r.Scopes = []string{"read"}
			r.StepUp = StepUpConfig{ACR: []string{"mfa"}, MaxAge: time.Minute, URL: "/mfa"}
			r.LoginURL = "/login"
		}, []string{
			"routes[0].roles: not allowed with auth none",
			"routes[0].scopes: not allowed with auth none",
			"routes[0].step_up.acr: not allowed with auth none",
			"routes[0].step_up.max_age: not allowed with auth none",
			"routes[0].step_up.url: not allowed with auth none",
			"routes[0].login_url: not allowed with auth none",
		}},

		// upstream
		{"upstream missing", func(r *RouteConfig) { r.Upstream = "" },
			[]string{"routes[0].upstream: is required"}},
		{"upstream ftp", func(r *RouteConfig) { r.Upstream = "ftp://files.internal" },
			[]string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream without scheme", func(r *RouteConfig) { r.Upstream = "127.0.0.1:9001" },
			[]string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream relative", func(r *RouteConfig) { r.Upstream = "/backend" },
			[]string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream without host", func(r *RouteConfig) { r.Upstream = "http://" },
			[]string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream opaque", func(r *RouteConfig) { r.Upstream = "http:backend" },
			[]string{"routes[0].upstream: must be an absolute http or https URL"}},
		{"upstream query", func(r *RouteConfig) { r.Upstream = "http://b.internal/?x=1" },
			[]string{"routes[0].upstream: must not have a query or fragment"}},
		{"upstream fragment", func(r *RouteConfig) { r.Upstream = "http://b.internal/#x" },
			[]string{"routes[0].upstream: must not have a query or fragment"}},
		{"upstream user info is not echoed", func(r *RouteConfig) { r.Upstream = "http://user:s3cret@b.internal" },
			[]string{"routes[0].upstream: must not contain user info"}},
		{"upstream dot path", func(r *RouteConfig) { r.Upstream = "http://b.internal/a/../b" },
			[]string{"routes[0].upstream: must have a canonical path"}},
		{"upstream with path", func(r *RouteConfig) { r.Upstream = "https://b.internal:8443/base" }, nil},
		{"upstream upper-case scheme", func(r *RouteConfig) { r.Upstream = "HTTPS://b.internal" }, nil},

		// path
		{"path missing", func(r *RouteConfig) { r.Path = "" },
			[]string{"routes[0].path: is required"}},
		{"path relative", func(r *RouteConfig) { r.Path = "api" },
			[]string{`routes[0].path: must start with "/", got "api"`}},
		{"path traversal", func(r *RouteConfig) { r.Path = "/a/../b" },
			[]string{`routes[0].path: must be canonical (dot-segment), got "/a/../b"`}},
		{"path double slash", func(r *RouteConfig) { r.Path = "/a//b" },
			[]string{`routes[0].path: must be canonical (empty-segment), got "/a//b"`}},
		{"path two trailing slashes", func(r *RouteConfig) { r.Path = "/a//" },
			[]string{`routes[0].path: must be canonical (empty-segment), got "/a//"`}},
		{"path raw space", func(r *RouteConfig) { r.Path = "/a b" },
			[]string{`routes[0].path: must be canonical (invalid-character), got "/a b"`}},
		{"path params", func(r *RouteConfig) { r.Path = "/a;v=1" },
			[]string{`routes[0].path: must not contain ";" parameters, got "/a;v=1"`}},
		{"path encoded semicolon", func(r *RouteConfig) { r.Path = "/a%3bv" },
			[]string{`routes[0].path: must not contain ";" parameters, got "/a%3bv"`}},
		{"path encoded slash", func(r *RouteConfig) { r.Path = "/a%2Fb" },
			[]string{"routes[0].path: must not contain an encoded slash (%2F) unless allow_encoded_slash is true"}},
		{"path encoded slash allowed", func(r *RouteConfig) { r.Path = "/a%2Fb"; r.AllowEncodedSlash = true }, nil},
		{"path root", func(r *RouteConfig) { r.Path = "/" }, nil},
		{"path double slash root", func(r *RouteConfig) { r.Path = "//" },
			[]string{`routes[0].path: must be canonical (empty-segment), got "//"`}},
		{"path trailing slash", func(r *RouteConfig) { r.Path = "/api/" }, nil},

		// host
		{"host exact", func(r *RouteConfig) { r.Host = "API.Example.com." }, nil},
		{"host wildcard", func(r *RouteConfig) { r.Host = "*.example.com" }, nil},
		{"host IPv4", func(r *RouteConfig) { r.Host = "10.0.0.1" }, nil},
		{"host IPv6", func(r *RouteConfig) { r.Host = "[::1]" }, nil},
		{"host bare IPv6", func(r *RouteConfig) { r.Host = "::1" }, nil},
		{"host port", func(r *RouteConfig) { r.Host = "example.com:8080" },
			[]string{"routes[0].host: must not contain a port"}},
		{"host IPv6 port", func(r *RouteConfig) { r.Host = "[::1]:8080" },
			[]string{"routes[0].host: must not contain a port"}},
		{"host star", func(r *RouteConfig) { r.Host = "*" },
			[]string{`routes[0].host: must be a host name or "*.domain", got "*"`}},
		{"host star dot", func(r *RouteConfig) { r.Host = "*." },
			[]string{`routes[0].host: must be a host name or "*.domain", got "*."`}},
		{"host inner star", func(r *RouteConfig) { r.Host = "a.*.example.com" },
			[]string{`routes[0].host: must be a host name or "*.domain", got "a.*.example.com"`}},
		{"host space", func(r *RouteConfig) { r.Host = "exa mple.com" },
			[]string{`routes[0].host: must be a host name or "*.domain", got "exa mple.com"`}},
		{"host empty label", func(r *RouteConfig) { r.Host = "a..com" },
			[]string{`routes[0].host: must be a host name or "*.domain", got "a..com"`}},
		{"host URL", func(r *RouteConfig) { r.Host = "https://example.com" },
			[]string{`routes[0].host: must be a host name or "*.domain", got "https://example.com"`}},

		// methods
		{"methods valid", func(r *RouteConfig) { r.Methods = []string{"get", "POST", "PROPFIND"} }, nil},
		{"methods bad", func(r *RouteConfig) { r.Methods = []string{"GET", "G ET", ""} }, []string{
			`routes[0].methods[1]: must be an HTTP method token, got "G ET"`,
			`routes[0].methods[2]: must be an HTTP method token, got ""`,
		}},

		// roles, scopes
		{"empty role", func(r *RouteConfig) { r.Roles = []string{"admin", ""} },
			[]string{"routes[0].roles[1]: must not be empty"}},
		{"scope with space", func(r *RouteConfig) { r.Scopes = []string{"orders:read orders:write"} },
			[]string{`routes[0].scopes[0]: must be a non-empty scope without spaces, got "orders:read orders:write"`}},

		// step_up
		{"step_up negative max_age", func(r *RouteConfig) { r.StepUp.MaxAge = -time.Second },
			[]string{`routes[0].step_up.max_age: must be >= 0, got "-1s"`}},
		{"step_up empty acr", func(r *RouteConfig) { r.StepUp.ACR = []string{""} },
			[]string{"routes[0].step_up.acr[0]: must not be empty"}},
		{"step_up url alone", func(r *RouteConfig) { r.StepUp.URL = "/mfa" },
			[]string{"routes[0].step_up.url: has no effect without step_up.acr or step_up.max_age"}},
		{"step_up full", func(r *RouteConfig) {
			r.StepUp = StepUpConfig{ACR: []string{"mfa"}, MaxAge: 5 * time.Minute, URL: "https://idp.example/mfa?prompt=1"}
		}, nil},
		{"step_up url javascript", func(r *RouteConfig) { r.StepUp = StepUpConfig{ACR: []string{"mfa"}, URL: "javascript:alert(1)"} },
			[]string{"routes[0].step_up.url: must be an absolute http or https URL or an absolute path"}},
		{"step_up url protocol-relative", func(r *RouteConfig) { r.StepUp = StepUpConfig{ACR: []string{"mfa"}, URL: "//evil.example/mfa"} },
			[]string{"routes[0].step_up.url: must be an absolute http or https URL or an absolute path"}},

		// login_url
		{"login_url path", func(r *RouteConfig) { r.LoginURL = "/login" }, nil},
		{"login_url absolute with query", func(r *RouteConfig) { r.LoginURL = "https://idp.example/login?client=gw" }, nil},
		{"login_url relative", func(r *RouteConfig) { r.LoginURL = "login" },
			[]string{"routes[0].login_url: must be an absolute http or https URL or an absolute path"}},
		{"login_url backslash", func(r *RouteConfig) { r.LoginURL = `/\evil.example` },
			[]string{"routes[0].login_url: must be an absolute http or https URL or an absolute path"}},
		{"login_url host-less", func(r *RouteConfig) { r.LoginURL = "https:///login" },
			[]string{"routes[0].login_url: must be an absolute http or https URL or an absolute path"}},
		{"login_url fragment", func(r *RouteConfig) { r.LoginURL = "/login#top" },
			[]string{"routes[0].login_url: must not have a fragment"}},
		{"login_url return_to", func(r *RouteConfig) { r.LoginURL = "/login?return_to=https://evil.example" },
			[]string{"routes[0].login_url: must not set return_to (the gateway adds it)"}},

		// timeout, max_concurrent, name
		{"timeout negative", func(r *RouteConfig) { r.Timeout = -1500 * time.Millisecond },
			[]string{`routes[0].timeout: must be >= 0, got "-1.5s"`}},
		{"max_concurrent negative", func(r *RouteConfig) { r.MaxConcurrent = -1 },
			[]string{"routes[0].max_concurrent: must be >= 0, got -1"}},
		{"name control character", func(r *RouteConfig) { r.Name = "a\nb" },
			[]string{"routes[0].name: must not contain control characters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := okRoute()
			tc.mutate(&rc)
			tbl, err := Compile([]RouteConfig{rc})
			got := errorLines(err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Compile errors:\n got %q\nwant %q", got, tc.want)
			}
			if (tbl == nil) != (err != nil) {
				t.Fatalf("Compile returned table %v with error %v", tbl, err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error echoes a credential: %v", err)
			}
		})
	}
}

// errorLines returns the messages of the joined *FieldError values.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			return []string{"not a *FieldError: " + e.Error()}
		}
		out = append(out, fe.Error())
	}
	return out
}

func TestCompileCrossRouteErrors(t *testing.T) {
	t.Parallel()
	route := func(name, host, path string, methods ...string) RouteConfig {
		rc := okRoute()
		rc.Name, rc.Host, rc.Path, rc.Methods = name, host, path, methods
		return rc
	}
	tests := []struct {
		name   string
		routes []RouteConfig
		want   []string
	}{
		{"duplicate name", []RouteConfig{route("a", "", "/a"), route("a", "", "/b")},
			[]string{`routes[1].name: duplicates routes[0].name "a"`}},
		{"explicit name equal to a default", []RouteConfig{route("", "", "/a"), route("route-0", "", "/b")},
			[]string{`routes[1].name: duplicates routes[0].name "route-0"`}},
		{"same path, no methods", []RouteConfig{route("a", "", "/api"), route("b", "", "/api")},
			[]string{`routes[1].path: overlaps routes[0] ("a") on the same host and path for all methods`}},
		{"same path after defaults", []RouteConfig{route("a", "", "/api/"), route("b", "", "/%61pi")},
			[]string{`routes[1].path: overlaps routes[0] ("a") on the same host and path for all methods`}},
		{"same host after normalising", []RouteConfig{route("a", "Shop.Example.com.", "/"), route("b", "shop.example.com", "/")},
			[]string{`routes[1].path: overlaps routes[0] ("a") on the same host and path for all methods`}},
		{"common methods", []RouteConfig{route("a", "", "/api", "GET", "POST"), route("b", "", "/api", "post", "get", "PUT")},
			[]string{`routes[1].path: overlaps routes[0] ("a") on the same host and path for methods GET, POST`}},
		{"overlaps two routes", []RouteConfig{route("a", "", "/api", "GET"), route("b", "", "/api", "PUT"), route("c", "", "/api", "GET", "PUT")},
			[]string{
				`routes[2].path: overlaps routes[0] ("a") on the same host and path for methods GET`,
				`routes[2].path: overlaps routes[1] ("b") on the same host and path for methods PUT`,
			}},
		{"disjoint methods and a catch-all", []RouteConfig{route("a", "", "/api", "GET"), route("b", "", "/api", "POST"), route("c", "", "/api")}, nil},
		{"different hosts", []RouteConfig{route("a", "a.example", "/api"), route("b", "b.example", "/api"), route("c", "*.example", "/api"), route("d", "", "/api")}, nil},
		{"different paths", []RouteConfig{route("a", "", "/api"), route("b", "", "/api/orders"), route("c", "", "/")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(tc.routes)
			if got := errorLines(err); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Compile errors:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCompileReportsEveryErrorAtOnce(t *testing.T) {
	t.Parallel()
	routes := []RouteConfig{
		{Name: "a", Path: "/a", Upstream: "http://a.internal", Auth: AuthJWT},
		{Name: "b", Path: "/b", Upstream: "ftp://b.internal"},
		{Name: "a", Path: "b", Upstream: "http://c.internal", Auth: "oauth", Timeout: -time.Second},
		{Path: "/d", Upstream: "http://d.internal", Auth: AuthJWT, StepUp: StepUpConfig{MaxAge: -time.Second}},
	}
	_, err := Compile(routes)
	want := strings.Join([]string{
		"routes[1].upstream: must be an absolute http or https URL",
		"routes[1].auth: is required (one of none, jwt, session, any)",
		`routes[2].path: must start with "/", got "b"`,
		"routes[2].auth: must be one of none, jwt, session, any",
		`routes[2].timeout: must be >= 0, got "-1s"`,
		`routes[2].name: duplicates routes[0].name "a"`,
		`routes[3].step_up.max_age: must be >= 0, got "-1s"`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Compile error:\n%v\nwant:\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path() != "routes[1].upstream" || fe.Index != 1 || fe.Key != "upstream" {
		t.Fatalf("first FieldError = %+v, want routes[1].upstream", fe)
	}
}

func TestCompileDefaults(t *testing.T) {
	t.Parallel()
	in := []RouteConfig{
		{Path: "/api/", Host: "API.Example.COM.", Methods: []string{"get", "Post", "GET"}, Upstream: "http://a.internal/base", Auth: AuthJWT},
		{Name: "off", Path: "/", Upstream: "https://b.internal", Auth: AuthNone, ForwardAuthorization: boolPtr(false), Timeout: 2 * time.Second},
		{Name: "v6", Host: "::1", Path: "/", Upstream: "http://c.internal", Auth: AuthNone},
	}
	before := []string{in[0].Path, in[0].Host, in[0].Methods[0]}
	tbl, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if after := []string{in[0].Path, in[0].Host, in[0].Methods[0]}; !reflect.DeepEqual(before, after) || in[0].ForwardAuthorization != nil {
		t.Fatalf("Compile modified its input: %+v", in[0])
	}
	rs := tbl.Routes()
	if len(rs) != 3 {
		t.Fatalf("Routes() has %d routes, want 3", len(rs))
	}
	r0, r1, r2 := rs[0].Config, rs[1].Config, rs[2].Config
	checks := []struct {
		what      string
		got, want any
	}{
		{"default name", r0.Name, "route-0"},
		{"path trailing slash removed", r0.Path, "/api"},
		{"host lower-cased without dot", r0.Host, "api.example.com"},
		{"methods upper-cased, deduplicated", r0.Methods, []string{"GET", "POST"}},
		{"forward_authorization default", *r0.ForwardAuthorization, true},
		{"timeout default", r0.Timeout, 30 * time.Second},
		{"upstream parsed", rs[0].Upstream.String(), "http://a.internal/base"},
		{"index", rs[1].Index, 1},
		{"explicit name", r1.Name, "off"},
		{"forward_authorization false kept", *r1.ForwardAuthorization, false},
		{"explicit timeout", r1.Timeout, 2 * time.Second},
		{"root path kept", r1.Path, "/"},
		{"bare IPv6 host bracketed", r2.Host, "[::1]"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	// Routes returns a copy: changing it does not change the table.
	rs[0] = nil
	if tbl.Routes()[0] == nil {
		t.Fatal("Routes() exposes the table's slice")
	}
}

func TestCompileEmpty(t *testing.T) {
	t.Parallel()
	tbl, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Canonicalize("/")
	if _, err := tbl.Match("example.com", "GET", p); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("Match on an empty table = %v, want ErrNoRoute", err)
	}
}
