package validator

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Authentication methods, as forwarded in X-Auth-Method.
const (
	MethodJWT     = "jwt"
	MethodSession = "session"
)

// Identity is a verified caller: what a JWT or a session proved. It is
// immutable once returned (a cached JWT's Identity is shared by every request
// that carries the same token), so callers must not modify it.
type Identity struct {
	// Method is MethodJWT or MethodSession.
	Method  string
	Subject string
	// Issuer is the JWT's iss; empty for a session.
	Issuer string
	// TokenID is the JWT's jti, or "sha256:<base64url>" of its signing input
	// (header.payload) when it has none; empty for a session.
	TokenID string
	// HasJTI reports whether TokenID is the token's own jti.
	HasJTI bool
	// SessionHandle is the session's handle, or the sid claim of an access
	// token minted by this gateway (empty for any other issuer's token).
	SessionHandle string
	Roles         []string
	Scopes        []string
	ACR           string
	AMR           []string
	// AuthTime is the time of the last authentication; zero when unknown
	// (a JWT without auth_time: its iat does not count).
	AuthTime time.Time
	// IssuedAt, NotBefore and ExpiresAt of a JWT (zero when absent), or the
	// creation and absolute end of a session.
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
	// Claims are the JWT's claims (nil for a session), for identity.headers.
	Claims map[string]any
	// Attributes are a session's attributes (nil for a JWT).
	Attributes map[string]string
	// Gateway is true for an access token minted by this gateway (tokens:).
	Gateway bool

	// RevocationKey is store.TokenKey(Issuer, TokenID) for a JWT, computed
	// once; empty for a session.
	RevocationKey string
	// SessionRevocationKey is store.SessionKey(SessionHandle) for an access
	// token minted by this gateway; empty otherwise.
	SessionRevocationKey string

	// Precomputed header values (see RolesHeader, ScopesHeader, AMRHeader,
	// AuthTimeHeader and ClaimHeader), filled by ComputeHeaders.
	rolesHeader, scopesHeader, amrHeader, authTimeHeader string
	// claimHeaders are the rendered values of JWTOptions.ForwardClaims.
	claimHeaders []claimHeader
	// memo is the consumer's data derived once from this identity (see Memo).
	memo atomic.Pointer[any]
}

// Memo returns what SetMemo stored, or nil. A cached JWT's Identity is
// shared by every request carrying that token, so a consumer (the gateway)
// can derive something from it once, such as its prepared header values,
// and find it again on the next request at the cost of an atomic load.
func (id *Identity) Memo() any {
	if p := id.memo.Load(); p != nil {
		return *p
	}
	return nil
}

// SetMemo stores v as the identity's memo, replacing any earlier one. It is
// safe for concurrent use; the consumer must treat v as immutable.
func (id *Identity) SetMemo(v any) { id.memo.Store(&v) }

type claimHeader struct{ name, value string }

// ComputeHeaders fills the precomputed header values from the exported
// fields. Verify and Authenticate call it; call it again only on an Identity
// built by hand (tests, fakes), before it is shared.
func (id *Identity) ComputeHeaders() {
	id.rolesHeader = strings.Join(id.Roles, ",")
	id.scopesHeader = strings.Join(id.Scopes, " ")
	id.amrHeader = strings.Join(id.AMR, ",")
	id.authTimeHeader = ""
	if !id.AuthTime.IsZero() {
		id.authTimeHeader = strconv.FormatInt(id.AuthTime.Unix(), 10)
	}
}

// RolesHeader is X-Auth-Roles: the roles joined with ",".
func (id *Identity) RolesHeader() string { return id.rolesHeader }

// ScopesHeader is X-Auth-Scopes: the scopes joined with " ".
func (id *Identity) ScopesHeader() string { return id.scopesHeader }

// AMRHeader is X-Auth-Amr: the amr values joined with ",".
func (id *Identity) AMRHeader() string { return id.amrHeader }

// AuthTimeHeader is X-Auth-Time: AuthTime in unix seconds, or "" when it is
// unknown.
func (id *Identity) AuthTimeHeader() string { return id.authTimeHeader }

// ClaimHeader is the header value of a claim named in
// JWTOptions.ForwardClaims (identity.headers), rendered once at verification:
// a string as is, a number in decimal, a boolean as true/false, an array of
// those joined with ",". ok is false when the token has no such claim, or
// it is not representable (an object). For a session it is the attribute of
// that name. The value never holds a control character.
func (id *Identity) ClaimHeader(name string) (value string, ok bool) {
	if id.Method == MethodSession {
		value, ok = id.Attributes[name]
		return value, ok
	}
	for i := range id.claimHeaders {
		if id.claimHeaders[i].name == name {
			return id.claimHeaders[i].value, true
		}
	}
	return "", false
}
