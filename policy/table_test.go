package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testRoutes exercises every precedence rule. Route names say what they are.
func testRoutes() []RouteConfig {
	r := func(name, host, path string, methods ...string) RouteConfig {
		return RouteConfig{Name: name, Host: host, Path: path, Methods: methods, Upstream: "http://127.0.0.1:9001", Auth: AuthJWT}
	}
	files := r("files", "", "/files")
	files.AllowEncodedSlash, files.StripPath = true, true
	strip := r("strip", "", "/svc/v1")
	strip.StripPath = true
	rootStrip := r("root-strip", "strip.example", "/")
	rootStrip.StripPath = true
	repo := r("repo", "", "/repos/a%2Fb")
	repo.AllowEncodedSlash = true
	return []RouteConfig{
		r("root", "", "/"),
		r("api", "", "/api"),
		r("orders-read", "", "/api/orders", "GET", "HEAD"),
		r("orders-write", "", "/api/orders", "POST"),
		r("admin", "", "/admin"),
		r("ro", "", "/ro", "GET"),
		r("mixed-get", "", "/mixed", "GET"),
		r("mixed-any", "", "/mixed"),
		r("shop", "shop.example.com", "/"),
		r("shop-api", "shop.example.com", "/api"),
		r("wild", "*.example.com", "/"),
		r("wild-eu", "*.eu.example.com", "/"),
		r("wild-svc-x", "*.svc.example.com", "/x"),
		r("v6", "[::1]", "/"),
		r("v4", "10.0.0.1", "/"),
		files,
		strip,
		rootStrip,
		repo,
	}
}

func mustCompile(tb testing.TB, routes []RouteConfig) *Table {
	tb.Helper()
	tbl, err := Compile(routes)
	if err != nil {
		tb.Fatal(err)
	}
	return tbl
}

func mustPath(tb testing.TB, raw string) Path {
	tb.Helper()
	p, err := Canonicalize(raw)
	if err != nil {
		tb.Fatalf("Canonicalize(%q): %v", raw, err)
	}
	return p
}

// matchCases: want is a route name, or "405 <Allow>", "404", "400 <reason>".
var matchCases = []struct {
	name, host, method, path, want string
}{
	{"root", "gw.test", "GET", "/", "root"},
	{"root matches everything", "gw.test", "GET", "/anything/deep/below", "root"},
	{"empty host", "", "GET", "/api", "api"},
	{"exact path", "gw.test", "GET", "/api", "api"},
	{"trailing slash", "gw.test", "GET", "/api/", "api"},
	{"below", "gw.test", "DELETE", "/api/x/y", "api"},
	{"segment prefix only", "gw.test", "GET", "/apix", "root"},
	{"longest path", "gw.test", "GET", "/api/orders", "orders-read"},
	{"longest path below", "gw.test", "HEAD", "/api/orders/42", "orders-read"},
	{"method picks route", "gw.test", "POST", "/api/orders/", "orders-write"},
	{"405 with Allow union", "gw.test", "DELETE", "/api/orders/42", "405 GET, HEAD, POST"},
	{"405 does not fall back to a shorter path", "gw.test", "PUT", "/api/orders", "405 GET, HEAD, POST"},
	{"not a segment of orders", "gw.test", "DELETE", "/api/ordersX", "api"},
	{"GET does not imply HEAD", "gw.test", "HEAD", "/ro", "405 GET"},
	{"methods are case-sensitive", "gw.test", "get", "/ro", "405 GET"},
	{"listed method wins over catch-all", "gw.test", "GET", "/mixed/1", "mixed-get"},
	{"catch-all on same path", "gw.test", "POST", "/mixed/1", "mixed-any"},
	{"path case-sensitive", "gw.test", "GET", "/ADMIN", "root"},

	{"params removed for routing", "gw.test", "GET", "/admin;x=1", "admin"},
	{"params removed in deeper segment", "gw.test", "GET", "/api;v=2/orders;jsessionid=9/1", "orders-read"},
	{"encoded name decoded for routing", "gw.test", "GET", "/%61dmin", "admin"},
	{"encoded upper-case name", "gw.test", "GET", "/%41%44MIN", "root"},
	{"encoded semicolon", "gw.test", "GET", "/admin%3Bfoo", "admin"},

	{"exact host", "shop.example.com", "GET", "/api/x", "shop-api"},
	{"exact host decides even with root", "shop.example.com", "GET", "/admin", "shop"},
	{"host case and port", "SHOP.Example.COM:8443", "GET", "/api", "shop-api"},
	{"host trailing dot", "shop.example.com.", "GET", "/api", "shop-api"},
	{"host trailing dot and port", "shop.example.com.:80", "GET", "/api", "shop-api"},
	{"only one trailing dot", "shop.example.com..", "GET", "/api", "api"},
	{"wildcard", "x.example.com", "GET", "/admin", "wild"},
	{"wildcard any depth", "a.b.c.example.com", "GET", "/", "wild"},
	{"wildcard upper case", "X.EXAMPLE.COM:443", "GET", "/", "wild"},
	{"wildcard not the apex", "example.com", "GET", "/admin", "admin"},
	{"wildcard not a suffix match", "badexample.com", "GET", "/admin", "admin"},
	{"longest wildcard suffix", "x.eu.example.com", "GET", "/", "wild-eu"},
	{"wildcard apex falls to shorter suffix", "eu.example.com", "GET", "/", "wild"},
	{"wildcard tier with path match", "a.svc.example.com", "GET", "/x/1", "wild-svc-x"},
	{"wildcard tier without path match falls through", "a.svc.example.com", "GET", "/y", "wild"},
	{"IPv6 with port", "[::1]:8080", "GET", "/", "v6"},
	{"IPv6 non-canonical text", "[0:0::1]", "GET", "/", "v6"},
	{"IPv6 other address", "[::2]:8080", "GET", "/api", "api"},
	{"IPv4 with port", "10.0.0.1:80", "GET", "/api", "v4"},
	{"unknown host", "evil.example", "GET", "/admin", "admin"},

	{"encoded slash allowed", "gw.test", "GET", "/files/a%2Fb/c", "files"},
	{"encoded slash refused", "gw.test", "GET", "/api/a%2Fb", "400 encoded-slash"},
	{"encoded slash refused at root", "gw.test", "GET", "/%2F%2Fevil", "400 encoded-slash"},
	{"encoded slash in route path", "gw.test", "GET", "/repos/a%2fb/tree", "repo"},
	{"encoded slash is not a separator", "gw.test", "GET", "/api%2Forders", "400 encoded-slash"},
}

func TestMatch(t *testing.T) {
	t.Parallel()
	tbl := mustCompile(t, testRoutes())
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustPath(t, tc.path)
			r, err := tbl.Match(tc.host, tc.method, p)
			if got := describeMatch(r, err); got != tc.want {
				t.Fatalf("Match(%q, %q, %q) = %s, want %s", tc.host, tc.method, tc.path, got, tc.want)
			}
		})
	}
}

func describeMatch(r *Route, err error) string {
	var mna *MethodNotAllowedError
	var pe *PathError
	switch {
	case err == nil:
		return r.Config.Name
	case errors.As(err, &mna):
		return "405 " + mna.Allow
	case errors.Is(err, ErrNoRoute):
		return "404"
	case errors.As(err, &pe) && errors.Is(err, ErrBadPath):
		return "400 " + pe.Reason
	}
	return "unexpected error " + err.Error()
}

func TestMatchWithoutRootRoute(t *testing.T) {
	t.Parallel()
	tbl := mustCompile(t, []RouteConfig{
		{Name: "api", Path: "/api", Upstream: "http://a.internal", Auth: AuthJWT},
		{Name: "shop", Host: "shop.example", Path: "/shop", Upstream: "http://a.internal", Auth: AuthJWT},
	})
	tests := []struct{ host, path, want string }{
		{"gw.test", "/", "404"},
		{"gw.test", "/apiary", "404"},
		{"gw.test", "/api/x", "api"},
		{"shop.example", "/api/x", "api"}, // the host tier has no path match
		{"shop.example", "/shop", "shop"},
		{"other.example", "/shop", "404"},
	}
	for _, tc := range tests {
		r, err := tbl.Match(tc.host, "GET", mustPath(t, tc.path))
		if got := describeMatch(r, err); got != tc.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tc.host, tc.path, got, tc.want)
		}
	}
	if _, err := tbl.Match("gw.test", "GET", Path{}); !errors.Is(err, ErrBadPath) {
		t.Errorf("Match(zero Path) = %v, want ErrBadPath", err)
	}
}

func TestForwardPath(t *testing.T) {
	t.Parallel()
	tbl := mustCompile(t, testRoutes())
	tests := []struct{ host, path, route, want string }{
		{"gw.test", "/api/x%41;v=1", "api", "/api/x%41;v=1"},
		{"gw.test", "/%61dmin", "admin", "/%61dmin"},
		{"gw.test", "/svc/v1", "strip", "/"},
		{"gw.test", "/svc/v1/", "strip", "/"},
		{"gw.test", "/svc/v1/a/b", "strip", "/a/b"},
		{"gw.test", "/svc/v1/a/b/", "strip", "/a/b/"},
		{"gw.test", "/svc;x=1/v1/a%41%2e", "strip", "/a%41%2e"},
		{"gw.test", "/%73vc/v%31/x;p=1/y", "strip", "/x;p=1/y"},
		{"gw.test", "/files/group%2Fproject/raw%2fmain", "files", "/group%2Fproject/raw%2fmain"},
		{"gw.test", "/files", "files", "/"},
		{"gw.test", "/repos/a%2Fb/tree", "repo", "/repos/a%2Fb/tree"},
		{"strip.example", "/a/%7Eb", "root-strip", "/a/%7Eb"},
	}
	for _, tc := range tests {
		p := mustPath(t, tc.path)
		r, err := tbl.Match(tc.host, "GET", p)
		if err != nil || r.Config.Name != tc.route {
			t.Fatalf("Match(%q) = %v, %v; want route %s", tc.path, r, err, tc.route)
		}
		got := r.ForwardPath(p)
		if got != tc.want {
			t.Errorf("%s.ForwardPath(%q) = %q, want %q", tc.route, tc.path, got, tc.want)
		}
		if _, err := Canonicalize(got); err != nil {
			t.Errorf("ForwardPath(%q) = %q is not canonical: %v", tc.path, got, err)
		}
	}
	for _, r := range tbl.Routes() {
		if got := r.ForwardPath(Path{}); got != "/" {
			t.Errorf("%s.ForwardPath(zero Path) = %q, want /", r.Config.Name, got)
		}
	}
}

func TestRoutesInConfigOrder(t *testing.T) {
	t.Parallel()
	cfg := testRoutes()
	rs := mustCompile(t, cfg).Routes()
	for i, r := range rs {
		if r.Index != i || r.Config.Name != cfg[i].Name {
			t.Fatalf("Routes()[%d] = %d %q, want %d %q", i, r.Index, r.Config.Name, i, cfg[i].Name)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := mustCompile(t, testRoutes())
	cases := []struct{ host, path string }{
		{"shop.example.com", "/api/orders/42"},
		{"gw.test:8080", "/api/orders/42/items"},
		{"a.b.eu.example.com", "/x/y/z"},
	}
	for _, c := range cases {
		n := testing.AllocsPerRun(100, func() {
			p, err := Canonicalize(c.path)
			if err != nil {
				panic(err)
			}
			r, err := tbl.Match(c.host, "GET", p)
			if err != nil {
				panic(err)
			}
			_ = r.ForwardPath(p)
		})
		if n != 0 {
			t.Errorf("Canonicalize+Match(%q, %q): %v allocations, want 0", c.host, c.path, n)
		}
	}
	p := mustPath(t, "/api/orders")
	if n := testing.AllocsPerRun(100, func() { _, _ = tbl.Match("gw.test", "DELETE", p) }); n != 0 {
		t.Errorf("405: %v allocations, want 0", n)
	}
}

// TestMatchHugeInputs: a hostile path or host of many thousands of segments
// or labels is matched (the look-ups are bounded by the table's depth).
func TestMatchHugeInputs(t *testing.T) {
	t.Parallel()
	tbl := mustCompile(t, testRoutes())
	path := "/api/orders" + strings.Repeat("/a", 15000)
	r, err := tbl.Match(strings.Repeat("a.", 15000)+"eu.example.com", "GET", mustPath(t, path))
	if err != nil || r.Config.Name != "wild-eu" {
		t.Fatalf("Match = %v, %v; want wild-eu", r, err)
	}
	r, err = tbl.Match("gw.test", "GET", mustPath(t, path))
	if err != nil || r.Config.Name != "orders-read" {
		t.Fatalf("Match = %v, %v; want orders-read", r, err)
	}
}

// checkMatchInvariants: matching is deterministic, never panics, and what
// it returns is consistent with the request.
func checkMatchInvariants(t *testing.T, tbl *Table, host, method, raw string) {
	p, err := Canonicalize(raw)
	if err != nil {
		return
	}
	r1, err1 := tbl.Match(host, method, p)
	r2, err2 := tbl.Match(host, method, p)
	if r1 != r2 || describeMatch(r1, err1) != describeMatch(r2, err2) {
		t.Fatalf("Match is not deterministic: %s then %s", describeMatch(r1, err1), describeMatch(r2, err2))
	}
	if err1 != nil {
		if describeMatch(nil, err1) == "unexpected error "+err1.Error() {
			t.Fatalf("Match returned an unexpected error: %v", err1)
		}
		return
	}
	if p.EncodedSlash() && !r1.Config.AllowEncodedSlash {
		t.Fatalf("route %s took %q with an encoded slash", r1.Config.Name, raw)
	}
	if len(r1.Config.Methods) > 0 && !contains(r1.Config.Methods, method) {
		t.Fatalf("route %s took method %q", r1.Config.Name, method)
	}
	if k := trimKey(p.key); r1.key != "/" && k != r1.key && !strings.HasPrefix(k, r1.key+"/") {
		t.Fatalf("route %s (%q) is not a segment prefix of %q", r1.Config.Name, r1.key, k)
	}
	fp := r1.ForwardPath(p)
	if _, err := Canonicalize(fp); err != nil {
		t.Fatalf("ForwardPath(%q) = %q is refused: %v", raw, fp, err)
	}
	if !r1.Config.StripPath && fp != raw {
		t.Fatalf("ForwardPath(%q) = %q without strip_path", raw, fp)
	}
}

func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.host, tc.method, tc.path)
	}
	for _, tc := range refusedPaths {
		f.Add("gw.test", "GET", tc.raw)
	}
	tbl := mustCompile(f, testRoutes())
	f.Fuzz(func(t *testing.T, host, method, raw string) {
		checkMatchInvariants(t, tbl, host, method, raw)
	})
}

// benchRoutes is a table of 300 routes over 20 hosts plus wildcard and
// host-less routes, as a large deployment might have.
func benchRoutes() []RouteConfig {
	var routes []RouteConfig
	add := func(host, path string, methods ...string) {
		routes = append(routes, RouteConfig{
			Name: fmt.Sprintf("r%d", len(routes)), Host: host, Path: path, Methods: methods,
			Upstream: "http://127.0.0.1:9001", Auth: AuthJWT, Roles: []string{"user"},
		})
	}
	for h := 0; h < 20; h++ {
		host := fmt.Sprintf("svc%d.example.com", h)
		add(host, "/")
		for k := 0; k < 7; k++ {
			add(host, fmt.Sprintf("/api/v1/res%d", k))
			add(host, fmt.Sprintf("/api/v1/res%d/items", k), "GET", "HEAD")
		}
	}
	for k := 0; len(routes) < 290; k++ {
		add("*.example.com", fmt.Sprintf("/w%d/x", k))
	}
	for k := 0; len(routes) < 300; k++ {
		add("", fmt.Sprintf("/public/p%d", k))
	}
	return routes
}

func BenchmarkMatch(b *testing.B) {
	tbl := mustCompile(b, benchRoutes())
	if n := len(tbl.Routes()); n != 300 {
		b.Fatalf("%d routes, want 300", n)
	}
	p := mustPath(b, "/api/v1/res5/items/12345/detail")
	r, err := tbl.Match("svc17.example.com", "GET", p)
	if err != nil || r.Config.Path != "/api/v1/res5/items" {
		b.Fatalf("Match = %v, %v", r, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = tbl.Match("svc17.example.com", "GET", p)
	}
}
