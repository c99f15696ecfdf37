package mint

import (
	"encoding/json"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// audience is the aud claim: a string when there is one audience, an array
// when there are several; omitted (with omitempty) when there is none.
type audience []string

// MarshalJSON implements json.Marshaler.
func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// registered are the claims every token of this package carries. Its methods
// make the embedding claim structs satisfy jwt.Claims.
type registered struct {
	Issuer    string   `json:"iss,omitempty"`
	Audience  audience `json:"aud,omitempty"`
	Subject   string   `json:"sub"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti,omitempty"`
}

var _ jwt.Claims = registered{}

// GetExpirationTime implements jwt.Claims.
func (r registered) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(r.ExpiresAt, 0)), nil
}

// GetIssuedAt implements jwt.Claims.
func (r registered) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(r.IssuedAt, 0)), nil
}

// GetNotBefore implements jwt.Claims; these tokens carry no nbf.
func (r registered) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer implements jwt.Claims.
func (r registered) GetIssuer() (string, error) { return r.Issuer, nil }

// GetSubject implements jwt.Claims.
func (r registered) GetSubject() (string, error) { return r.Subject, nil }

// GetAudience implements jwt.Claims.
func (r registered) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings(r.Audience), nil }

// nonNil makes a nil slice encode as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// unixOrZero is t in unix seconds, 0 for the zero time (an omitted claim).
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
