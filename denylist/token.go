package denylist

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/portcullis/portcullis/store"
)

// maxTokenBytes bounds the token RevocationFromToken accepts.
const maxTokenBytes = 64 << 10

// maxUnixSeconds is 9999-12-31T23:59:59Z: a later exp is refused.
const maxUnixSeconds = 253402300799

// hashTokenID is the ID of a JWT without a jti: "sha256:" and the unpadded
// base64url SHA-256 of its signing input (header.payload, as sent). It is
// the validator's Identity.TokenID for such a token.
func hashTokenID(signingInput string) string {
	sum := sha256.Sum256([]byte(signingInput))
	return "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// RevocationFromToken builds the KindToken revocation of a compact JWS from
// its iss, jti and exp; without a jti (or with an empty one) the ID is
// "sha256:" + unpadded base64url(SHA-256(header.payload)), byte-identical to
// the validator's Identity.TokenID. The signature is NOT verified: an
// administrator may revoke a token whose signature this node cannot check.
// A token without exp returns the revocation with a zero ExpiresAt and
// ErrNoExpiry: the caller must then supply the expiry. A malformed token
// returns an error matching ErrInvalid. Errors never contain the token.
func RevocationFromToken(token string) (store.Revocation, error) {
	token = strings.TrimSpace(token)
	if len(token) > maxTokenBytes {
		return store.Revocation{}, fmt.Errorf("%w: token longer than %d bytes", ErrInvalid, maxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return store.Revocation{}, fmt.Errorf("%w: token is not a compact JWS (three dot-separated parts)", ErrInvalid)
	}
	var header map[string]json.RawMessage
	if err := decodeSegment(parts[0], &header); err != nil || header == nil {
		return store.Revocation{}, fmt.Errorf("%w: token header is not base64url-encoded JSON object", ErrInvalid)
	}
	var claims map[string]json.RawMessage
	if err := decodeSegment(parts[1], &claims); err != nil || claims == nil {
		return store.Revocation{}, fmt.Errorf("%w: token payload is not a base64url-encoded JSON object", ErrInvalid)
	}

	r := store.Revocation{Kind: store.KindToken}
	if raw, ok := claims["iss"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &r.Issuer); err != nil {
			return store.Revocation{}, fmt.Errorf("%w: token claim iss is not a string", ErrInvalid)
		}
	}
	if raw, ok := claims["jti"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &r.ID); err != nil {
			return store.Revocation{}, fmt.Errorf("%w: token claim jti is not a string", ErrInvalid)
		}
	}
	if r.ID == "" {
		r.ID = hashTokenID(token[:len(parts[0])+1+len(parts[1])])
	}
	raw, ok := claims["exp"]
	if !ok || isNull(raw) {
		return r, ErrNoExpiry
	}
	var exp json.Number
	if err := json.Unmarshal(raw, &exp); err != nil {
		return store.Revocation{}, fmt.Errorf("%w: token claim exp is not a number", ErrInvalid)
	}
	f, err := exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > maxUnixSeconds {
		return store.Revocation{}, fmt.Errorf("%w: token claim exp is out of range", ErrInvalid)
	}
	// As golang-jwt's NumericDate: whole seconds.
	r.ExpiresAt = time.Unix(int64(f), 0)
	return r, nil
}

// decodeSegment decodes one unpadded base64url JWS segment holding JSON.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
