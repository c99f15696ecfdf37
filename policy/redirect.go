package policy

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// WantsHTML reports whether an Accept header prefers text/html over
// application/json, honouring q-values and the most specific matching media
// range (text/html over text/* over */*). A tie is false, so "*/*" alone, an
// empty header and "application/json, text/html" are false, while the
// Accept of a browser navigation ("text/html,...,*/*;q=0.8") is true.
func WantsHTML(accept string) bool {
	htmlQ, htmlSpec := -1, 0
	jsonQ, jsonSpec := -1, 0
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		mediaType, params, _ := strings.Cut(part, ";")
		typ, sub, ok := strings.Cut(strings.TrimSpace(mediaType), "/")
		if !ok {
			continue
		}
		q, ok := qValue(params)
		if !ok {
			continue
		}
		if s := specificity(typ, sub, "text", "html"); s > htmlSpec || (s > 0 && s == htmlSpec && q > htmlQ) {
			htmlQ, htmlSpec = q, s
		}
		if s := specificity(typ, sub, "application", "json"); s > jsonSpec || (s > 0 && s == jsonSpec && q > jsonQ) {
			jsonQ, jsonSpec = q, s
		}
	}
	return htmlQ > 0 && htmlQ > jsonQ
}

// specificity ranks how a media range typ/sub matches want/wantSub: 3 exact,
// 2 "want/*", 1 "*/*", 0 no match.
func specificity(typ, sub, want, wantSub string) int {
	switch {
	case strings.EqualFold(typ, want) && strings.EqualFold(sub, wantSub):
		return 3
	case strings.EqualFold(typ, want) && sub == "*":
		return 2
	case typ == "*" && sub == "*":
		return 1
	}
	return 0
}

// qValue returns the q parameter of a media range in thousandths (1000 when
// absent); false when it is malformed.
func qValue(params string) (int, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
			return 0, false
		}
		q := int(v[0]-'0') * 1000
		if len(v) > 1 {
			if v[1] != '.' {
				return 0, false
			}
			scale := 100
			for i := 2; i < len(v); i++ {
				if v[i] < '0' || v[i] > '9' {
					return 0, false
				}
				q += int(v[i]-'0') * scale
				scale /= 10
			}
		}
		if q > 1000 {
			return 0, false
		}
		return q, true
	}
	return 1000, true
}

// ReturnTo builds the same-origin target a browser comes back to after
// logging in or stepping up: the canonical path and the query, nothing
// else. It always starts with "/" and never with "//", "/\" or an encoded
// slash or backslash; bytes that have no place in a URL are
// percent-encoded. A zero or otherwise unusable Path gives "/".
func ReturnTo(p Path, rawQuery string) string {
	path := p.raw
	if _, err := Canonicalize(path); err != nil || !isLocalTarget(path) {
		path = "/"
	}
	var b strings.Builder
	b.Grow(len(path) + 1 + len(rawQuery))
	appendURLSafe(&b, path, false)
	if rawQuery != "" {
		b.WriteByte('?')
		appendURLSafe(&b, rawQuery, true)
	}
	return b.String()
}

// appendURLSafe writes s, percent-encoding every byte outside the RFC 3986
// pchar set (plus "/" and, in a query, "?") and every "%" that does not
// start a valid escape.
func appendURLSafe(b *strings.Builder, s string, query bool) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '?' && query:
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

// isLocalTarget reports whether s is a path on this origin that no browser
// reads as another origin: it starts with one "/", and holds no backslash,
// no whitespace or control character (browsers drop tabs and newlines, so
// "/\t/evil" would become "//evil") and does not start with an encoded
// slash or backslash.
func isLocalTarget(s string) bool {
	if s == "" || s[0] != '/' {
		return false
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return false
	}
	if len(s) >= 4 && s[1] == '%' && (s[2] == '2' && (s[3] == 'f' || s[3] == 'F') || s[2] == '5' && (s[3] == 'c' || s[3] == 'C')) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// RedirectURL returns base (login_url or step_up.url, which may already
// carry a query) with return_to=returnTo and then the extra parameters
// (sorted by name; e.g. acr_values, max_age) appended, all query-escaped. A
// returnTo that is not a same-origin path (see ReturnTo) is replaced by "/";
// an extra "return_to" is ignored.
func RedirectURL(base, returnTo string, extra url.Values) string {
	if !isLocalTarget(returnTo) {
		returnTo = "/"
	}
	fragment := ""
	if i := strings.IndexByte(base, '#'); i >= 0 {
		base, fragment = base[:i], base[i:]
	}
	var b strings.Builder
	b.WriteString(base)
	switch {
	case strings.IndexByte(base, '?') < 0:
		b.WriteByte('?')
	case strings.HasSuffix(base, "?"), strings.HasSuffix(base, "&"):
	default:
		b.WriteByte('&')
	}
	b.WriteString("return_to=")
	b.WriteString(url.QueryEscape(returnTo))
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if k == "return_to" {
			continue
		}
		for _, v := range extra[k] {
			b.WriteByte('&')
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	b.WriteString(fragment)
	return b.String()
}
