package mint

import (
	"fmt"
	"time"
)

// DefaultDevTTL is the lifetime of a development token whose TTL is 0.
const DefaultDevTTL = 10 * time.Minute

// Dev describes a development token for `portcullis token`. Empty fields
// are left out of the token, so it can imitate another issuer's tokens.
type Dev struct {
	// Issuer is iss; empty omits it.
	Issuer string
	// Audience is aud: a string for one, an array for several, absent for
	// none.
	Audience []string
	// Subject is sub. Required.
	Subject string
	// Roles is the roles array; empty omits it.
	Roles []string
	// Scope is the space-separated scope string; empty omits it.
	Scope string
	// ACR is acr; empty omits it.
	ACR string
	// AMR is the amr array; empty omits it.
	AMR []string
	// AuthTime is auth_time in unix seconds; 0 omits it.
	AuthTime int64
	// TTL sets exp = iat + TTL; 0 means DefaultDevTTL, and a negative TTL
	// makes an already expired token (for testing rejections).
	TTL time.Duration
	// JTI is jti; empty means 128 random bits in base64url.
	JTI string
	// Now is iat (truncated to whole seconds); zero means the wall clock.
	Now time.Time
}

// devClaims is the payload of a development token.
type devClaims struct {
	registered
	Roles    []string `json:"roles,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
}

// MintDev signs a development token (typ "JWT") for `portcullis token`.
// ErrInvalidClaims reports a missing subject.
func (s *Signer) MintDev(d Dev) (string, error) {
	if d.Subject == "" {
		return "", fmt.Errorf("%w: development token without subject", ErrInvalidClaims)
	}
	if d.TTL == 0 {
		d.TTL = DefaultDevTTL
	}
	if d.Now.IsZero() {
		d.Now = time.Now()
	}
	if d.JTI == "" {
		jti, err := newJTI()
		if err != nil {
			return "", err
		}
		d.JTI = jti
	}
	iat := d.Now.Truncate(time.Second)
	return s.Sign(&devClaims{
		registered: registered{
			Issuer:    d.Issuer,
			Audience:  d.Audience,
			Subject:   d.Subject,
			ExpiresAt: iat.Add(d.TTL).Unix(),
			IssuedAt:  iat.Unix(),
			ID:        d.JTI,
		},
		Roles:    d.Roles,
		Scope:    d.Scope,
		ACR:      d.ACR,
		AMR:      d.AMR,
		AuthTime: d.AuthTime,
	}, TypeJWT)
}
