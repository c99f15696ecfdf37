package validator

import (
	"fmt"
	"net/http"
	"strings"
)

// Route auth types, as in policy.RouteConfig.Auth (package policy is not
// imported: the strings are the contract).
const (
	authJWT     = "jwt"
	authSession = "session"
	authAny     = "any"
)

// CredentialKind says what a Credential holds.
type CredentialKind int

// Credential kinds. The zero CredentialKind is no credential.
const (
	// CredentialJWT is a bearer JWT (a token with exactly two dots).
	CredentialJWT CredentialKind = iota + 1
	// CredentialOpaque is a session ID, from the session cookie or an
	// opaque bearer token.
	CredentialOpaque
)

// String is "jwt", "opaque" or "none".
func (k CredentialKind) String() string {
	switch k {
	case CredentialJWT:
		return "jwt"
	case CredentialOpaque:
		return "opaque"
	}
	return "none"
}

// Credential is the one credential a request presents for its route. Value
// is a secret: never log it.
type Credential struct {
	Kind  CredentialKind
	Value string
	// FromCookie is true when Value came from the session cookie (and no
	// Authorization header carried it), which makes the request subject to
	// the CSRF rule.
	FromCookie bool
}

// Errors of Extract. They match ErrConflict or ErrInvalidToken.
var (
	errTwoAuthorization = fmt.Errorf("%w: two Authorization headers", ErrConflict)
	errTwoCookies       = fmt.Errorf("%w: two session cookies with different values", ErrConflict)
	errBearerAndCookie  = fmt.Errorf("%w: a bearer token and a session cookie that disagree", ErrConflict)
)

// Extract returns the credential r carries for a route whose auth type is
// auth ("jwt", "session" or "any") and whose session cookie is cookieName.
//
// Whatever auth is, two Authorization headers, or two session cookies with
// different values, are ErrConflict. Then:
//   - "jwt": only "Authorization: Bearer <jwt>" counts; an opaque bearer is
//     ErrInvalidToken and the session cookie is ignored.
//   - "session": the cookie or an opaque bearer; a bearer JWT is
//     ErrInvalidToken; both present with different values is ErrConflict.
//   - "any": either; a bearer and the cookie both present, unless they are
//     the same opaque value, is ErrConflict.
//
// The scheme "Bearer" is matched without regard to case and must be followed
// by exactly one RFC 6750 b64token (otherwise ErrInvalidToken). Other schemes
// (Basic, ...) are not credentials. Without a credential, or for any other
// auth type (such as "none"), the error is ErrNoCredential. Extract does not
// allocate on success.
func Extract(r *http.Request, auth string, cookieName string) (Credential, error) {
	authz := r.Header["Authorization"]
	if len(authz) > 1 {
		return Credential{}, errTwoAuthorization
	}
	cookie, hasCookie := "", false
	if cookieName != "" {
		var conflict bool
		cookie, hasCookie, conflict = findCookie(r.Header["Cookie"], cookieName)
		if conflict {
			return Credential{}, errTwoCookies
		}
	}
	if auth != authJWT && auth != authSession && auth != authAny {
		return Credential{}, ErrNoCredential
	}
	bearer, hasBearer := "", false
	if len(authz) == 1 {
		var err error
		bearer, hasBearer, err = parseBearer(authz[0])
		if err != nil {
			return Credential{}, err
		}
	}
	isJWT := hasBearer && strings.Count(bearer, ".") == 2
	switch auth {
	case authJWT:
		if !hasBearer {
			return Credential{}, ErrNoCredential
		}
		if !isJWT {
			return Credential{}, invalid(ReasonMalformed, "this route accepts only a JWT bearer token")
		}
		return Credential{Kind: CredentialJWT, Value: bearer}, nil
	case authSession:
		if isJWT {
			return Credential{}, invalid(ReasonMalformed, "this route accepts only a session, not a JWT")
		}
	}
	// session or any. Comparing two values the client sent itself reveals
	// nothing secret, so a plain comparison is fine here.
	if hasBearer && hasCookie && (isJWT || bearer != cookie) {
		return Credential{}, errBearerAndCookie
	}
	switch {
	case isJWT:
		return Credential{Kind: CredentialJWT, Value: bearer}, nil
	case hasBearer:
		return Credential{Kind: CredentialOpaque, Value: bearer}, nil
	case hasCookie:
		return Credential{Kind: CredentialOpaque, Value: cookie, FromCookie: true}, nil
	}
	return Credential{}, ErrNoCredential
}

// parseBearer parses one Authorization header value. ok is false when it is
// not a Bearer credential at all (empty, or another scheme).
func parseBearer(v string) (token string, ok bool, err error) {
	v = trimOWS(v)
	if v == "" {
		return "", false, nil
	}
	i := strings.IndexAny(v, " \t")
	scheme, rest := v, ""
	if i >= 0 {
		scheme, rest = v[:i], trimOWS(v[i+1:])
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, nil
	}
	if !isB64Token(rest) {
		return "", false, invalid(ReasonMalformed, "the Bearer scheme takes exactly one token")
	}
	return rest, true, nil
}

// notB64Token is 1 for the bytes that are not in an RFC 6750 b64token
// (before its padding).
var notB64Token = func() (t [256]byte) {
	for i := range t {
		t[i] = 1
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 0
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 0
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 0
	}
	for _, c := range "-._~+/" {
		t[c] = 0
	}
	return t
}()

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	if n == 0 {
		return false
	}
	// Branch-free, four bytes a step: tokens are long and almost always
	// valid.
	s = s[:n]
	var b0, b1, b2, b3 byte
	for len(s) >= 4 {
		b0 |= notB64Token[s[0]]
		b1 |= notB64Token[s[1]]
		b2 |= notB64Token[s[2]]
		b3 |= notB64Token[s[3]]
		s = s[4:]
	}
	for i := 0; i < len(s); i++ {
		b0 |= notB64Token[s[i]]
	}
	return b0|b1|b2|b3 == 0
}

// findCookie scans Cookie header lines for name without allocating. Empty
// values are ignored; a value in double quotes is unquoted. conflict is true
// when the cookie appears twice with different values.
func findCookie(lines []string, name string) (value string, found, conflict bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(part, "=")
			if !ok || trimOWS(k) != name {
				continue
			}
			v = trimOWS(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v == "" {
				continue
			}
			if found && v != value {
				return "", false, true
			}
			value, found = v, true
		}
	}
	return value, found, false
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
