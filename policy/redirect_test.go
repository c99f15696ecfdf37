package policy

import (
	"net/url"
	"strings"
	"testing"
)

func TestWantsHTML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, accept string
		want         bool
	}{
		{"chrome navigation", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7", true},
		{"firefox navigation", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"safari navigation", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true},
		{"curl and fetch default", "*/*", false},
		{"empty", "", false},
		{"api client", "application/json", false},
		{"tie goes to JSON", "application/json, text/html", false},
		{"html preferred by q", "text/html;q=0.9, application/json;q=0.8", true},
		{"json preferred by q", "text/html;q=0.5, application/json", false},
		{"html refused", "text/html;q=0, */*", false},
		{"text wildcard", "text/*", true},
		{"upper case", "TEXT/HTML", true},
		{"spaces and params", " text/html ; level=1 ; q=0.7 , */*;q=0.5", true},
		{"application wildcard lower than html", "application/*;q=0.9, text/html", true},
		{"more specific range wins", "*/*;q=0.8, text/html;q=0.1", false},
		{"bogus q ignored", "text/html;q=bogus", false},
		{"q above 1 ignored", "text/html;q=1.5", false},
		{"q with three decimals", "text/html;q=0.501, application/json;q=0.5", true},
		{"garbage", ";;,,/,text", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := WantsHTML(tc.accept); got != tc.want {
				t.Fatalf("WantsHTML(%q) = %v, want %v", tc.accept, got, tc.want)
			}
		})
	}
}

// assertSameOrigin checks that a browser resolving target against the
// gateway's URL stays on the gateway.
func assertSameOrigin(t *testing.T, target string) {
	t.Helper()
	if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") || strings.HasPrefix(target, `/\`) {
		t.Fatalf("target %q is not a same-origin path", target)
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' {
			t.Fatalf("target %q holds byte %#x", target, c)
		}
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("target %q does not parse: %v", target, err)
	}
	base, _ := url.Parse("https://gw.example/current/page")
	if got := base.ResolveReference(u); got.Host != "gw.example" || got.Scheme != "https" {
		t.Fatalf("target %q resolves to %s", target, got)
	}
}

func TestReturnTo(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, path, query, want string }{
		{"path", "/orders/42", "", "/orders/42"},
		{"path and query", "/orders", "page=2&sort=desc", "/orders?page=2&sort=desc"},
		{"encodings kept", "/a%41;v=1", "q=%2Fx", "/a%41;v=1?q=%2Fx"},
		{"query with URL", "/", "next=https://evil.example//x", "/?next=https://evil.example//x"},
		{"query fragment escaped", "/a", "x=1#frag", "/a?x=1%23frag"},
		{"query CRLF escaped", "/a", "x=1\r\nSet-Cookie:a=b", "/a?x=1%0D%0ASet-Cookie:a=b"},
		{"query bad percent escaped", "/a", "x=%zz&y=%4", "/a?x=%25zz&y=%254"},
		{"query non-ASCII escaped", "/a", "q=caf\xc3\xa9 au lait", "/a?q=caf%C3%A9%20au%20lait"},
		{"path quote escaped", `/a"<b>`, "", "/a%22%3Cb%3E"},
		{"leading encoded slashes", "/%2F%2Fevil.example", "", "/"},
		{"leading encoded slash lower", "/%2f%2fevil.example/x", "a=b", "/?a=b"},
		{"inner encoded slash is relative", "/a/%2F%2Fevil", "", "/a/%2F%2Fevil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ReturnTo(mustPath(t, tc.path), tc.query)
			if got != tc.want {
				t.Fatalf("ReturnTo(%q, %q) = %q, want %q", tc.path, tc.query, got, tc.want)
			}
			assertSameOrigin(t, got)
		})
	}
	if got := ReturnTo(Path{}, "x=1"); got != "/?x=1" {
		t.Fatalf("ReturnTo(zero Path) = %q, want /?x=1", got)
	}
}

// TestHostileReturnTargets: every open-redirect trick is refused by
// Canonicalize or produces a same-origin return_to.
func TestHostileReturnTargets(t *testing.T) {
	t.Parallel()
	hostile := []string{
		"//evil.example", "//evil.example/", "///evil.example", `/\evil.example`, `/\/evil.example`,
		"/%2F%2Fevil.example", "/%2f/evil.example", "/%5C%5Cevil.example", "/%5cevil.example",
		"/%252F%252Fevil.example", "/%09/evil.example", "/\t/evil.example", "/%0d%0a//evil.example",
		"https://evil.example", "evil.example", "/%2e%2e//evil.example", "/.%2F/evil.example",
		"/;/evil.example", "/%3B//evil.example",
	}
	for _, raw := range hostile {
		p, err := Canonicalize(raw)
		if err != nil {
			p = Path{} // refused: the gateway answers 400 and never redirects
		}
		rt := ReturnTo(p, "a=b")
		assertSameOrigin(t, rt)
		loc := RedirectURL("https://idp.example/login", rt, nil)
		u, err := url.Parse(loc)
		if err != nil || u.Host != "idp.example" {
			t.Fatalf("RedirectURL = %q: %v", loc, err)
		}
		assertSameOrigin(t, u.Query().Get("return_to"))
	}
}

func TestRedirectURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, base, returnTo string
		extra                url.Values
		want, wantReturnTo   string
	}{
		{"plain", "https://idp.example/login", "/orders?id=1", nil,
			"https://idp.example/login?return_to=%2Forders%3Fid%3D1", "/orders?id=1"},
		{"base with query", "https://idp.example/login?client=gw", "/a", nil,
			"https://idp.example/login?client=gw&return_to=%2Fa", "/a"},
		{"base ending with ?", "/login?", "/a", nil, "/login?return_to=%2Fa", "/a"},
		{"base ending with &", "/login?x=1&", "/a", nil, "/login?x=1&return_to=%2Fa", "/a"},
		{"step-up parameters", "https://idp.example/mfa", "/admin", url.Values{"max_age": {"300"}, "acr_values": {"mfa otp"}},
			"https://idp.example/mfa?return_to=%2Fadmin&acr_values=mfa+otp&max_age=300", "/admin"},
		{"extra values escaped", "/mfa", "/", url.Values{"a&b": {"c=d&e"}},
			"/mfa?return_to=%2F&a%26b=c%3Dd%26e", "/"},
		{"extra return_to ignored", "/login", "/a", url.Values{"return_to": {"https://evil.example"}},
			"/login?return_to=%2Fa", "/a"},
		{"fragment stays last", "/login#x", "/a", nil, "/login?return_to=%2Fa#x", "/a"},
		{"protocol-relative refused", "/login", "//evil.example", nil, "/login?return_to=%2F", "/"},
		{"backslash refused", "/login", `/\evil.example`, nil, "/login?return_to=%2F", "/"},
		{"absolute URL refused", "/login", "https://evil.example/", nil, "/login?return_to=%2F", "/"},
		{"tab refused", "/login", "/\t/evil.example", nil, "/login?return_to=%2F", "/"},
		{"encoded slash refused", "/login", "/%2F%2Fevil.example", nil, "/login?return_to=%2F", "/"},
		{"empty", "/login", "", nil, "/login?return_to=%2F", "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := RedirectURL(tc.base, tc.returnTo, tc.extra)
			if got != tc.want {
				t.Fatalf("RedirectURL = %q, want %q", got, tc.want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if rt := u.Query().Get("return_to"); rt != tc.wantReturnTo {
				t.Fatalf("return_to decodes to %q, want %q", rt, tc.wantReturnTo)
			}
		})
	}
}
