package mint

import (
	"fmt"
	"strings"
	"time"
)

// Access describes an access token minted from a refresh family (SPEC
// tokens:): every claim is taken from the session at the moment of the
// refresh.
type Access struct {
	// Issuer is tokens.issuer. Required.
	Issuer string
	// Audience is tokens.audiences: aud is a string for one, an array for
	// several, and absent for none.
	Audience []string
	// Subject is the session's subject. Required.
	Subject string
	// SessionID is the session handle, written as "sid" (never the session
	// ID or a refresh token).
	SessionID string
	Roles     []string
	// Scopes are written as one space-separated "scope" string.
	Scopes []string
	AMR    []string
	ACR    string
	// AuthTime is the last authentication; zero omits auth_time.
	AuthTime time.Time
	// IssuedAt is the caller's clock at minting; truncated to whole seconds
	// for iat. Required.
	IssuedAt time.Time
	// TTL is tokens.access_ttl: exp = iat + TTL. Must be > 0.
	TTL time.Duration
}

// accessClaims is the payload of an access token: exactly iss, aud, sub,
// exp, iat, jti, sid, roles, scope, acr, amr and auth_time.
type accessClaims struct {
	registered
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
	Scope     string   `json:"scope"`
	ACR       string   `json:"acr"`
	AMR       []string `json:"amr"`
	AuthTime  int64    `json:"auth_time,omitempty"`
}

// MintAccess signs an access token (typ "at+jwt", RFC 9068) and returns it
// with its jti, 128 random bits in base64url. ErrInvalidClaims reports a
// missing issuer, subject or issue time, or a TTL that is not positive.
func (s *Signer) MintAccess(a Access) (token, jti string, err error) {
	switch {
	case a.Issuer == "":
		return "", "", fmt.Errorf("%w: access token without issuer", ErrInvalidClaims)
	case a.Subject == "":
		return "", "", fmt.Errorf("%w: access token without subject", ErrInvalidClaims)
	case a.IssuedAt.IsZero():
		return "", "", fmt.Errorf("%w: access token without issue time", ErrInvalidClaims)
	case a.TTL <= 0:
		return "", "", fmt.Errorf("%w: access token TTL %v, want > 0", ErrInvalidClaims, a.TTL)
	}
	jti, err = newJTI()
	if err != nil {
		return "", "", err
	}
	iat := a.IssuedAt.Truncate(time.Second)
	c := &accessClaims{
		registered: registered{
			Issuer:    a.Issuer,
			Audience:  a.Audience,
			Subject:   a.Subject,
			ExpiresAt: iat.Add(a.TTL).Unix(),
			IssuedAt:  iat.Unix(),
			ID:        jti,
		},
		SessionID: a.SessionID,
		Roles:     nonNil(a.Roles),
		Scope:     strings.Join(a.Scopes, " "),
		ACR:       a.ACR,
		AMR:       nonNil(a.AMR),
		AuthTime:  unixOrZero(a.AuthTime),
	}
	token, err = s.Sign(c, TypeAccessToken)
	if err != nil {
		return "", "", err
	}
	return token, jti, nil
}
