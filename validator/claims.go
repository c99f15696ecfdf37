package validator

import (
	"strconv"
	"strings"
)

// hasControl reports whether s holds an ASCII control character (including
// TAB and DEL), which an HTTP header cannot carry safely.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// lookupClaim finds a claim by name: first the whole name as a top-level
// claim (namespaced claims such as "https://example.com/roles" hold dots),
// then as a dotted path through nested objects ("realm_access.roles").
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, v != nil
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for seg := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// claimString reads an optional string claim; a present claim of another
// type, or one holding a control character, is an error.
func claimString(claims map[string]any, name string) (string, *TokenError) {
	v, ok := claims[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid(ReasonBadClaim, "the "+name+" claim must be a string")
	}
	if hasControl(s) {
		return "", invalid(ReasonClaimNotAllowed, "the "+name+" claim holds a control character")
	}
	return s, nil
}

// claimList reads a list claim (roles, amr): an array of strings or a single
// string. Elements must be non-empty and free of control characters and of
// the separator sep, which the forwarded header could not represent.
func claimList(claims map[string]any, name string, sep byte) ([]string, *TokenError) {
	v, ok := lookupClaim(claims, name)
	if !ok {
		return nil, nil
	}
	var out []string
	switch t := v.(type) {
	case string:
		out = []string{t}
	case []any:
		out = make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, invalid(ReasonBadClaim, "the "+name+" claim must be a string or an array of strings")
			}
			out = append(out, s)
		}
	default:
		return nil, invalid(ReasonBadClaim, "the "+name+" claim must be a string or an array of strings")
	}
	for _, s := range out {
		if s == "" || hasControl(s) || strings.IndexByte(s, sep) >= 0 {
			return nil, invalid(ReasonClaimNotAllowed, "the "+name+" claim holds a value a header cannot represent")
		}
	}
	return out, nil
}

// claimScopes reads the scopes: a space-separated string or an array of
// strings, none of which may hold a space or a control character.
func claimScopes(claims map[string]any, name string) ([]string, *TokenError) {
	v, ok := lookupClaim(claims, name)
	if !ok {
		return nil, nil
	}
	if s, ok := v.(string); ok {
		if hasControl(s) {
			return nil, invalid(ReasonClaimNotAllowed, "the "+name+" claim holds a control character")
		}
		var out []string
		for f := range strings.SplitSeq(s, " ") {
			if f != "" {
				out = append(out, f)
			}
		}
		return out, nil
	}
	return claimList(claims, name, ' ')
}

// renderClaim renders a claim for a header: a string as is, a number in
// decimal, a boolean, or an array of those joined with ",". Objects and
// nested arrays are not representable.
func renderClaim(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case bool:
		return strconv.FormatBool(t), true
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), true
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			if _, nested := e.([]any); nested {
				return "", false
			}
			s, ok := renderClaim(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}
