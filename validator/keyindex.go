package validator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// keyIndex is an immutable set of verification keys of one source (the key
// files of an issuer, or one load of a remote JWK Set).
type keyIndex struct {
	keys  []keys.Key
	byKID map[string][]keys.Key
}

func newKeyIndex(ks []keys.Key) *keyIndex {
	idx := &keyIndex{keys: ks, byKID: make(map[string][]keys.Key, len(ks))}
	for _, k := range ks {
		idx.byKID[k.ID] = append(idx.byKID[k.ID], k)
	}
	return idx
}

// lookup appends to dst the keys that may verify a token of alg: with a kid,
// only that kid's keys; without one, every key of the alg. kidSeen reports
// that the kid exists (even if its key does not fit alg).
func (idx *keyIndex) lookup(dst []jwt.VerificationKey, alg, kid string, hasKID bool) (_ []jwt.VerificationKey, kidSeen bool) {
	if idx == nil {
		return dst, false
	}
	cands := idx.keys
	if hasKID {
		var ok bool
		if cands, ok = idx.byKID[kid]; !ok {
			return dst, false
		}
		kidSeen = true
	}
	for _, k := range cands {
		if keyFits(k.Public, alg) {
			dst = append(dst, k.Public)
		}
	}
	return dst, kidSeen
}

// keyFits reports whether a public key can verify alg: RSA for RS*/PS*, the
// matching curve for ES*, Ed25519 for EdDSA. HMAC never fits a public key.
func keyFits(pub crypto.PublicKey, alg string) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// checkKey refuses keys too weak to trust.
func checkKey(k keys.Key) error {
	if rk, ok := k.Public.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key %q has %d bits, fewer than %d", k.ID, rk.N.BitLen(), minRSABits)
	}
	return nil
}

// sameKeys reports whether every key of old is still in cur (same kid, same
// public key). A removal invalidates cached tokens of the source.
func sameKeys(old, cur *keyIndex) bool {
	if old == nil {
		return true
	}
	for _, k := range old.keys {
		found := false
		for _, c := range cur.byKID[k.ID] {
			if eq, ok := c.Public.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(k.Public) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
