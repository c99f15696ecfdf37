package validator

import (
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

	// Precomputed header values (see HeaderValues).
	rolesHeader, scopesHeader, amrHeader, authTimeHeader string
}
