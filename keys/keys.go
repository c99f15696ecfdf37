// Package keys loads the asymmetric keys portcullis verifies and signs with:
// PEM public keys, certificates and private keys (PKCS#8, PKCS#1, SEC1), JWK
// Set files, and the RFC 7638 thumbprint that names a PEM key's kid.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/MicahParks/jwkset"
)

// Key is a public verification key with its kid and default algorithm.
type Key struct {
	// ID is the kid: the JWK's own kid, or the RFC 7638 thumbprint.
	ID string
	// Algorithm is the JWK's alg, or the default for the key type (RS256,
	// ES256/ES384/ES512 by curve, EdDSA); empty if unknown.
	Algorithm string
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// ParsePrivateKey parses the first private key in PEM data: PKCS#8 ("PRIVATE
// KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"). Other blocks
// (such as "EC PARAMETERS") are skipped.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("keys: no private key PEM block found")
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("keys: encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: parsing %s: %w", block.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("keys: unsupported private key type %T", k)
		}
		if _, err := Thumbprint(s.Public()); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// ParsePublicKeys parses every public key in PEM data: "PUBLIC KEY" (PKIX),
// "RSA PUBLIC KEY" (PKCS#1) and "CERTIFICATE" blocks. Each key's ID is its
// RFC 7638 thumbprint. Private key blocks are refused, so a private key is
// never loaded by mistake where a public one is expected.
func ParsePublicKeys(data []byte) ([]Key, error) {
	var out []Key
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			pub any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			c, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				pub = c.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("keys: %s block where a public key is expected", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("keys: parsing %s: %w", block.Type, err)
		}
		k, err := NewKey(pub, "", "")
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("keys: no public key PEM block found")
	}
	return out, nil
}

// ParseJWKSet parses a JWK Set document (RFC 7517) with github.com/MicahParks/jwkset
// and returns its public signature keys. A JWK without a kid gets its
// thumbprint; private members are ignored; symmetric ("oct") keys are refused.
func ParseJWKSet(data []byte) ([]Key, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("keys: parsing JWK Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("keys: JWK Set has no keys")
	}
	out := make([]Key, 0, len(set.Keys))
	for i, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		if m.KTY == jwkset.KtyOct {
			return nil, fmt.Errorf("keys: JWK %d: symmetric keys are not accepted in a JWK Set", i)
		}
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("keys: JWK %d: %w", i, err)
		}
		k, err := NewKey(j.Key(), m.KID, m.ALG.String())
		if err != nil {
			return nil, fmt.Errorf("keys: JWK %d: %w", i, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("keys: JWK Set has no signature keys")
	}
	return out, nil
}

// NewKey describes a public key. An empty kid becomes the RFC 7638
// thumbprint; an empty alg becomes DefaultAlgorithm.
func NewKey(pub crypto.PublicKey, kid, alg string) (Key, error) {
	if p, ok := pub.(interface{ Public() crypto.PublicKey }); ok {
		pub = p.Public() // a private key's public half
	}
	tp, err := Thumbprint(pub)
	if err != nil {
		return Key{}, err
	}
	if kid == "" {
		kid = tp
	}
	if alg == "" {
		alg = DefaultAlgorithm(pub)
	}
	return Key{ID: kid, Algorithm: alg, Public: pub}, nil
}

// DefaultAlgorithm is the JWS alg portcullis signs with for a key type:
// RS256 for RSA, ES256/ES384/ES512 by curve, EdDSA for Ed25519; "" otherwise.
func DefaultAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// Thumbprint is the RFC 7638 JWK thumbprint of a public key: base64url
// (no padding) of the SHA-256 of its required members in lexicographic order.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	var doc string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		doc = `{"e":"` + b64(bigEndian(uint64(k.E))) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	case *ecdsa.PublicKey:
		crv, size := "", (k.Curve.Params().BitSize+7)/8
		switch k.Curve {
		case elliptic.P256():
			crv = "P-256"
		case elliptic.P384():
			crv = "P-384"
		case elliptic.P521():
			crv = "P-521"
		default:
			return "", fmt.Errorf("keys: unsupported curve %s", k.Curve.Params().Name)
		}
		pt, err := k.Bytes() // uncompressed point: 0x04 || X || Y
		if err != nil {
			return "", fmt.Errorf("keys: encoding EC point: %w", err)
		}
		doc = `{"crv":"` + crv + `","kty":"EC","x":"` + b64(pt[1:1+size]) + `","y":"` + b64(pt[1+size:]) + `"}`
	case ed25519.PublicKey:
		doc = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(k) + `"}`
	default:
		return "", fmt.Errorf("keys: unsupported key type %T", pub)
	}
	sum := sha256.Sum256([]byte(doc))
	return b64(sum[:]), nil
}

// PublicJWK is the public JWK of k for a JWK Set document, with kid, alg and
// use "sig".
func PublicJWK(k Key) (jwkset.JWKMarshal, error) {
	j, err := jwkset.NewJWKFromKey(k.Public, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: k.ID, ALG: jwkset.ALG(k.Algorithm), USE: jwkset.UseSig},
	})
	if err != nil {
		return jwkset.JWKMarshal{}, fmt.Errorf("keys: encoding JWK %q: %w", k.ID, err)
	}
	return j.Marshal(), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func bigEndian(v uint64) []byte {
	var b []byte
	for v > 0 {
		b = append([]byte{byte(v)}, b...)
		v >>= 8
	}
	return b
}
