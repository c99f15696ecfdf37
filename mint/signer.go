// Package mint holds everything portcullis signs: access JWTs minted from
// refresh families (SPEC "Access tokens and refresh-token rotation"), the
// signed identity assertion for upstreams (identity.assertion), the JWK Set of
// the gateway's public keys with previous keys kept after a rotation, and the
// development tokens of `portcullis token`.
//
// The package does no I/O except LoadSigner reading its key file, and keeps no
// global state; every type is safe for concurrent use.
package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
)

// Token types written in the JWS "typ" header.
const (
	// TypeJWT is the typ of assertions and development tokens.
	TypeJWT = "JWT"
	// TypeAccessToken is the typ of access tokens (RFC 9068 section 2.1).
	TypeAccessToken = "at+jwt"
)

// MinRSABits is the smallest RSA modulus NewSigner accepts.
const MinRSABits = 2048

// Sentinel errors.
var (
	// ErrUnsupportedKey is returned by NewSigner for a key it cannot sign
	// with: not RSA, ECDSA on P-256/P-384/P-521 or Ed25519, or RSA shorter
	// than MinRSABits.
	ErrUnsupportedKey = errors.New("mint: unsupported signing key")
	// ErrInvalidClaims is returned when the claims to mint are incomplete
	// (no subject, no issuer, no lifetime).
	ErrInvalidClaims = errors.New("mint: invalid claims")
)

var b64 = base64.RawURLEncoding

// Signer signs JWTs with one private key. Its header names the key's kid and
// alg. A Signer is immutable and safe for concurrent use.
type Signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	pub    keys.Key
	sigLen int // signature size in bytes, to size the token buffer
	// Encoded header segments for the two typ values this package uses.
	hdrJWT, hdrAccess string
}

// NewSigner returns a Signer for key. An empty kid becomes the RFC 7638
// thumbprint of the public key. The algorithm follows from the key type:
// RS256 for RSA (at least MinRSABits), ES256/ES384/ES512 for ECDSA by curve,
// EdDSA for Ed25519.
func NewSigner(key crypto.Signer, kid string) (*Signer, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: no key", ErrUnsupportedKey)
	}
	pub := key.Public()
	sigLen := ed25519.SignatureSize
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits, want at least %d", ErrUnsupportedKey, bits, MinRSABits)
		}
		sigLen = k.Size()
	case *ecdsa.PrivateKey:
		// jwt/v5 signs ECDSA only with the concrete type; its signature is
		// r || s, each the size of the curve order.
		sigLen = 2 * ((k.Curve.Params().BitSize + 7) / 8)
	default:
		// Any crypto.Signer with an Ed25519 public half (ed25519.PrivateKey
		// or a hardware-backed signer).
		if _, ok := pub.(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
		}
	}
	alg := keys.DefaultAlgorithm(pub)
	if alg == "" {
		return nil, fmt.Errorf("%w: no algorithm for %T", ErrUnsupportedKey, pub)
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return nil, fmt.Errorf("%w: algorithm %s unavailable", ErrUnsupportedKey, alg)
	}
	k, err := keys.NewKey(pub, kid, alg)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	s := &Signer{key: key, method: method, pub: k, sigLen: sigLen}
	s.hdrJWT = s.header(TypeJWT)
	s.hdrAccess = s.header(TypeAccessToken)
	return s, nil
}

// LoadSigner reads a PEM private key file (PKCS#8, PKCS#1 or SEC1) and
// returns its Signer; kid as in NewSigner. Errors name the file.
func LoadSigner(path, kid string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mint: reading signing key: %w", err) // *fs.PathError names the file
	}
	key, err := keys.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("mint: signing key %q: %w", path, err)
	}
	s, err := NewSigner(key, kid)
	if err != nil {
		return nil, fmt.Errorf("mint: signing key %q: %w", path, err)
	}
	return s, nil
}

// Algorithm is the JWS alg the Signer writes: RS256, ES256, ES384, ES512 or
// EdDSA.
func (s *Signer) Algorithm() string { return s.pub.Algorithm }

// KeyID is the kid the Signer writes in every header.
func (s *Signer) KeyID() string { return s.pub.ID }

// Key is the public half of the signing key, with its kid and alg, for a
// KeyRing or a verifier.
func (s *Signer) Key() keys.Key { return s.pub }

// Sign encodes claims as the JWT payload and signs it. The header holds alg,
// kid and typ (no typ when typ is empty).
func (s *Signer) Sign(claims jwt.Claims, typ string) (string, error) {
	if claims == nil {
		return "", fmt.Errorf("%w: nil claims", ErrInvalidClaims)
	}
	var hdr string
	switch typ {
	case TypeJWT:
		hdr = s.hdrJWT
	case TypeAccessToken:
		hdr = s.hdrAccess
	default:
		hdr = s.header(typ)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("mint: encoding claims: %w", err)
	}
	return s.sign(hdr, payload)
}

// sign assembles header.payload, signs it and appends the signature.
func (s *Signer) sign(hdr string, payload []byte) (string, error) {
	n := len(hdr) + 1 + b64.EncodedLen(len(payload))
	buf := make([]byte, n, n+1+b64.EncodedLen(s.sigLen))
	copy(buf, hdr)
	buf[len(hdr)] = '.'
	b64.Encode(buf[len(hdr)+1:], payload)
	sig, err := s.method.Sign(string(buf), s.key)
	if err != nil {
		return "", fmt.Errorf("mint: signing with %s key %s: %w", s.pub.Algorithm, s.pub.ID, err)
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// header is the encoded JOSE header for typ.
func (s *Signer) header(typ string) string {
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{s.pub.Algorithm, s.pub.ID, typ})
	if err != nil { // strings only: cannot happen
		panic("mint: encoding JOSE header: " + err.Error())
	}
	return b64.EncodeToString(h)
}

// newJTI is 128 random bits, base64url without padding (22 characters).
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mint: generating jti: %w", err)
	}
	return b64.EncodeToString(b[:]), nil
}
