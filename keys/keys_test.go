package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
)

// The example key and thumbprint of RFC 7638 section 3.1.
const (
	rfc7638N  = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rfc7638TP = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestThumbprintRFC7638(t *testing.T) {
	n, err := base64.RawURLEncoding.DecodeString(rfc7638N)
	if err != nil {
		t.Fatal(err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got != rfc7638TP {
		t.Fatalf("Thumbprint = %s, want %s", got, rfc7638TP)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePrivateKeyFormats(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	pk8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sec1, _ := x509.MarshalECPrivateKey(ek)
	tests := []struct {
		name, alg string
		pem       []byte
	}{
		{"rsa pkcs8", "RS256", pemBlock("PRIVATE KEY", pk8(rk))},
		{"rsa pkcs1", "RS256", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk))},
		{"ec pkcs8", "ES256", pemBlock("PRIVATE KEY", pk8(ek))},
		{"ec sec1 after parameters", "ES256", append(pemBlock("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}), pemBlock("EC PRIVATE KEY", sec1)...)},
		{"ed25519 pkcs8", "EdDSA", pemBlock("PRIVATE KEY", pk8(edk))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParsePrivateKey(tt.pem)
			if err != nil {
				t.Fatal(err)
			}
			if got := DefaultAlgorithm(s.Public()); got != tt.alg {
				t.Fatalf("alg = %q, want %q", got, tt.alg)
			}
		})
	}
	if _, err := ParsePrivateKey([]byte("nothing here")); err == nil {
		t.Fatal("garbage parsed as a private key")
	}
}

func TestParsePublicKeysRefusesPrivate(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	if _, err := ParsePublicKeys(pemBlock("EC PRIVATE KEY", sec1)); err == nil || !strings.Contains(err.Error(), "public key is expected") {
		t.Fatalf("err = %v, want refusal of a private key", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	ks, err := ParsePublicKeys(pemBlock("PUBLIC KEY", der))
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := Thumbprint(&ek.PublicKey)
	if len(ks) != 1 || ks[0].ID != tp || ks[0].Algorithm != "ES256" {
		t.Fatalf("got %+v", ks)
	}
}

func TestJWKRoundTrip(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k, err := NewKey(&ek.PublicKey, "", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := PublicJWK(k)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []any{m}})
	if strings.Contains(string(doc), `"d"`) {
		t.Fatalf("public JWK carries a private member: %s", doc)
	}
	ks, err := ParseJWKSet(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 1 || ks[0].ID != k.ID || !ek.PublicKey.Equal(ks[0].Public) {
		t.Fatalf("round trip lost the key: %+v", ks)
	}
	if _, err := ParseJWKSet([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("symmetric JWK accepted")
	}
}
