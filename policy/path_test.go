package policy

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// acceptedPaths are canonical paths with the routing key they must get.
var acceptedPaths = []struct {
	name, raw, key string
	encodedSlash   bool
}{
	{name: "root", raw: "/", key: "/"},
	{name: "one segment", raw: "/a", key: "/a"},
	{name: "trailing slash", raw: "/a/", key: "/a/"},
	{name: "deep", raw: "/api/orders/123/items", key: "/api/orders/123/items"},
	{name: "encoded letter", raw: "/a/%41b", key: "/a/Ab"},
	{name: "encoded route name", raw: "/%61dmin", key: "/admin"},
	{name: "matrix params removed", raw: "/admin;x=1", key: "/admin"},
	{name: "jsessionid in the middle", raw: "/a;jsessionid=1/b", key: "/a/b"},
	{name: "empty params", raw: "/a;", key: "/a"},
	{name: "encoded semicolon starts params", raw: "/admin%3Bfoo", key: "/admin"},
	{name: "encoded slash upper", raw: "/a%2Fb", key: "/a\x00b", encodedSlash: true},
	{name: "encoded slash lower", raw: "/a%2fb/c", key: "/a\x00b/c", encodedSlash: true},
	{name: "leading encoded slashes", raw: "/%2F%2Fevil", key: "/\x00\x00evil", encodedSlash: true},
	{name: "three dots", raw: "/...", key: "/..."},
	{name: "three encoded dots", raw: "/%2e%2E.", key: "/..."},
	{name: "dots inside names", raw: "/.well-known/a..b/c.", key: "/.well-known/a..b/c."},
	{name: "dot with suffix", raw: "/.x/..y", key: "/.x/..y"},
	{name: "encoded space", raw: "/a%20b", key: "/a b"},
	{name: "utf-8 encoded", raw: "/caf%C3%A9", key: "/caf\xc3\xa9"},
	{name: "literal percent", raw: "/100%25", key: "/100%"},
	{name: "percent then one hex", raw: "/a%252", key: "/a%2"},
	{name: "percent then non-hex", raw: "/a%25zz", key: "/a%zz"},
	{name: "sub-delims", raw: "/a:b@c!$&'()*+,=~-_", key: "/a:b@c!$&'()*+,=~-_"},
	{name: "dot segment only in params", raw: "/a;..", key: "/a"},
}

// refusedPaths are paths Canonicalize must refuse, with the reason.
var refusedPaths = []struct{ name, raw, reason string }{
	{"empty", "", PathNotAbsolute},
	{"relative", "a/b", PathNotAbsolute},
	{"asterisk", "*", PathNotAbsolute},
	{"absolute URL", "http://evil.example/", PathNotAbsolute},
	{"raw backslash first", `\evil`, PathNotAbsolute},

	{"double slash", "//", PathEmptySegment},
	{"protocol-relative", "//evil.example", PathEmptySegment},
	{"inner empty", "/a//b", PathEmptySegment},
	{"two trailing slashes", "/a//", PathEmptySegment},
	{"params-only segment", "/;x/admin", PathEmptySegment},
	{"params-only last segment", "/a/;x", PathEmptySegment},
	{"encoded semicolon only", "/%3Bx/a", PathEmptySegment},

	{"dot", "/.", PathDotSegment},
	{"dot dot", "/..", PathDotSegment},
	{"dot inner", "/./a", PathDotSegment},
	{"dot last", "/a/.", PathDotSegment},
	{"dot dot last", "/a/..", PathDotSegment},
	{"traversal", "/a/../b", PathDotSegment},
	{"dot dot trailing slash", "/a/../", PathDotSegment},
	{"encoded dot lower", "/%2e", PathDotSegment},
	{"encoded dot upper", "/%2E/a", PathDotSegment},
	{"encoded dot dot", "/a/%2e%2e/b", PathDotSegment},
	{"encoded dot dot mixed case", "/a/%2E%2e/b", PathDotSegment},
	{"half encoded 1", "/a/.%2e/b", PathDotSegment},
	{"half encoded 2", "/a/%2E./b", PathDotSegment},
	{"tomcat dot dot params", "/..;/admin", PathDotSegment},
	{"tomcat dot dot params value", "/public/..;x=1/admin", PathDotSegment},
	{"dot params", "/.;x=1/admin", PathDotSegment},
	{"encoded dot dot params", "/%2e%2e;/admin", PathDotSegment},
	{"dot dot encoded semicolon", "/..%3Bx/admin", PathDotSegment},
	{"dot dot before encoded slash", "/a/..%2Fetc", PathDotSegment},
	{"dot dot between encoded slashes", "/a%2F..%2Fb", PathDotSegment},
	{"dot between encoded slashes", "/%2F.%2F", PathDotSegment},
	{"encoded dot dot after encoded slash", "/a%2f%2e%2e", PathDotSegment},

	{"raw backslash", `/\evil`, PathBackslash},
	{"raw backslash inner", `/a\..\b`, PathBackslash},
	{"encoded backslash upper", "/a%5Cb", PathBackslash},
	{"encoded backslash lower", "/%5cevil", PathBackslash},

	{"encoded nul", "/a%00", PathNUL},
	{"raw nul", "/a\x00b", PathNUL},
	{"encoded newline", "/a%0a", PathControlCharacter},
	{"encoded CRLF", "/a%0D%0ASet-Cookie:x", PathControlCharacter},
	{"raw newline", "/a\nb", PathControlCharacter},
	{"raw tab", "/a\tb", PathControlCharacter},
	{"encoded unit separator", "/a%1F", PathControlCharacter},
	{"encoded DEL", "/a%7f", PathControlCharacter},
	{"raw DEL", "/a\x7f", PathControlCharacter},

	{"lone percent", "/%", PathBadPercentEncoding},
	{"one hex digit", "/%4", PathBadPercentEncoding},
	{"not hex", "/%zz", PathBadPercentEncoding},
	{"half hex", "/%g0", PathBadPercentEncoding},
	{"percent at end", "/a%", PathBadPercentEncoding},
	{"percent and one digit at end", "/a%2", PathBadPercentEncoding},
	{"percent percent", "/%%41", PathBadPercentEncoding},
	{"percent before slash", "/a%2/b", PathBadPercentEncoding},

	{"raw utf-8", "/caf\xc3\xa9", PathNonASCII},
	{"raw high byte", "/\xff", PathNonASCII},
	{"raw space", "/a b", PathInvalidCharacter},
	{"raw hash", "/a#b", PathInvalidCharacter},
	{"raw question mark", "/a?b", PathInvalidCharacter},

	{"double-encoded dot", "/%252e", PathDoubleEncoding},
	{"double-encoded dot upper", "/%252E%252E/admin", PathDoubleEncoding},
	{"double-encoded slash", "/a%252fb", PathDoubleEncoding},
	{"double-encoded slash upper", "/a%252Fb", PathDoubleEncoding},
	{"double-encoded backslash", "/%255cevil", PathDoubleEncoding},
	{"double-encoded nul", "/a%2500", PathDoubleEncoding},
	{"double-encoded newline", "/a%250a", PathDoubleEncoding},
	{"double-encoded percent", "/a%25252e", PathDoubleEncoding},
	{"fully encoded second layer", "/%25%32%65", PathDoubleEncoding},
	{"mixed second layer", "/%25%32e", PathDoubleEncoding},
	{"double encoding in params", "/a;x=%252e", PathDoubleEncoding},
}

func TestCanonicalizeAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range acceptedPaths {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Canonicalize(tc.raw)
			if err != nil {
				t.Fatalf("Canonicalize(%q) = %v, want accepted", tc.raw, err)
			}
			if got := p.String(); got != tc.raw {
				t.Errorf("String() = %q, want the path as sent %q", got, tc.raw)
			}
			if p.key != tc.key {
				t.Errorf("routing key = %q, want %q", p.key, tc.key)
			}
			if p.EncodedSlash() != tc.encodedSlash {
				t.Errorf("EncodedSlash() = %v, want %v", p.EncodedSlash(), tc.encodedSlash)
			}
			if p.IsZero() {
				t.Error("IsZero() = true for an accepted path")
			}
		})
	}
}

func TestCanonicalizeRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range refusedPaths {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Canonicalize(tc.raw)
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("Canonicalize(%q) = %q, %v; want ErrBadPath", tc.raw, p.String(), err)
			}
			var pe *PathError
			if !errors.As(err, &pe) || pe.Reason != tc.reason {
				t.Fatalf("Canonicalize(%q) error = %v, want reason %q", tc.raw, err, tc.reason)
			}
			if !p.IsZero() {
				t.Errorf("refused path returned non-zero Path %q", p.String())
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "policy: ") || strings.Contains(msg, tc.raw) && tc.raw != "" {
				t.Errorf("error %q must start with the package name and not echo the path", msg)
			}
		})
	}
}

func TestCanonicalizeDoesNotAllocateForPlainPaths(t *testing.T) {
	for _, raw := range []string{"/", "/api/orders/123/items", "/static/app.min.js"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Canonicalize(raw) }); n != 0 {
			t.Errorf("Canonicalize(%q): %v allocations, want 0", raw, n)
		}
	}
	// Refusing a hostile path does not allocate either.
	if n := testing.AllocsPerRun(100, func() { _, _ = Canonicalize("/a/../b") }); n != 0 {
		t.Errorf("refusing a path: %v allocations, want 0", n)
	}
}

// checkCanonicalInvariants verifies, independently of the implementation
// (with net/url), what an accepted path guarantees.
func checkCanonicalInvariants(t *testing.T, raw string) {
	t.Helper()
	segs := strings.Split(raw, "/")
	if segs[0] != "" {
		t.Fatalf("accepted %q does not start with /", raw)
	}
	for i, seg := range segs[1:] {
		lastSeg := i == len(segs)-2
		if seg == "" {
			if !lastSeg {
				t.Fatalf("accepted %q has an empty inner segment", raw)
			}
			continue
		}
		for j := 0; j < len(seg); j++ {
			if c := seg[j]; c <= ' ' || c >= 0x7f || c == '\\' || c == '#' || c == '?' {
				t.Fatalf("accepted %q holds raw byte %#x", raw, c)
			}
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			t.Fatalf("accepted %q: segment %q does not decode: %v", raw, seg, err)
		}
		for j := 0; j < len(dec); j++ {
			if c := dec[j]; c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("accepted %q decodes to byte %#x", raw, c)
			}
		}
		lower := strings.ToLower(dec)
		for _, enc := range []string{"%2e", "%2f", "%5c", "%00", "%25"} {
			if strings.Contains(lower, enc) {
				t.Fatalf("accepted %q still holds %s after one decoding", raw, enc)
			}
		}
		// The name is the decoded segment before any ';'; neither it nor
		// a part of it split at an encoded slash is "." or "..".
		name, _, _ := strings.Cut(dec, ";")
		if name == "" {
			t.Fatalf("accepted %q has a params-only segment %q", raw, seg)
		}
		rawName, _, _ := strings.Cut(seg, ";")
		rawDec, _ := url.PathUnescape(rawName)
		for _, n := range []string{name, rawDec} {
			for _, part := range strings.Split(n, "/") {
				if part == "." || part == ".." {
					t.Fatalf("accepted %q has a dot segment %q", raw, seg)
				}
			}
		}
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, tc := range acceptedPaths {
		f.Add(tc.raw)
	}
	for _, tc := range refusedPaths {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Canonicalize(raw)
		if err != nil {
			var pe *PathError
			if !errors.Is(err, ErrBadPath) || !errors.As(err, &pe) || pe.Reason == "" {
				t.Fatalf("Canonicalize(%q) error %v is not a *PathError with a reason", raw, err)
			}
			return
		}
		if p.String() != raw {
			t.Fatalf("String() = %q, want %q", p.String(), raw)
		}
		checkCanonicalInvariants(t, raw)
		again, err := Canonicalize(p.String())
		if err != nil || again != p {
			t.Fatalf("Canonicalize(String()) = %+v, %v; want %+v", again, err, p)
		}
	})
}

func BenchmarkCanonicalize(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"plain", "/api/v1/orders/12345/items/678"},
		{"encoded", "/api/v1/%6Frders/12345;v=2/items%2Fx/678"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Canonicalize(bc.raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
