package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
)

func TestSignerRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, alg string
		key       crypto.Signer
	}{
		{"ecdsa p-256", "ES256", testP256()},
		{"ecdsa p-384", "ES384", testP384()},
		{"ed25519", "EdDSA", testEd()},
		{"rsa 2048", "RS256", testRSA()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSigner(t, tt.key)
			tp, err := keys.Thumbprint(tt.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			if s.Algorithm() != tt.alg {
				t.Errorf("Algorithm() = %q, want %q", s.Algorithm(), tt.alg)
			}
			k := s.Key()
			if k.ID != tp || s.KeyID() != tp {
				t.Errorf("kid = %q, want the RFC 7638 thumbprint %q", k.ID, tp)
			}
			if k.Algorithm != tt.alg {
				t.Errorf("Key().Algorithm = %q, want %q", k.Algorithm, tt.alg)
			}
			if _, isPrivate := k.Public.(crypto.Signer); isPrivate {
				t.Errorf("Key().Public is a private key (%T)", k.Public)
			}

			tok, _, err := s.MintAccess(Access{Issuer: "https://gw.example/", Subject: "alice", IssuedAt: t0, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims := verify(t, tok, k, t0)
			if hdr["alg"] != tt.alg || hdr["kid"] != tp || hdr["typ"] != "at+jwt" {
				t.Errorf("header = %v, want alg %s, kid %s, typ at+jwt", hdr, tt.alg, tp)
			}
			if claims["sub"] != "alice" {
				t.Errorf("sub = %v, want alice", claims["sub"])
			}

			// Any other key must fail to verify it.
			other := newSigner(t, testP256()).Key()
			if tt.alg == "ES256" {
				other = newSigner(t, testEd()).Key()
			}
			_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return other.Public, nil },
				jwt.WithTimeFunc(func() time.Time { return t0 }))
			if err == nil {
				t.Error("token verified with an unrelated key")
			}
		})
	}
}

func TestNewSignerExplicitKID(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(testEd(), "gw-2030-01")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.MintDev(Dev{Subject: "bob", Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := verify(t, tok, s.Key(), t0)
	if hdr["kid"] != "gw-2030-01" || s.Key().ID != "gw-2030-01" {
		t.Errorf("kid = %v / %q, want gw-2030-01", hdr["kid"], s.Key().ID)
	}
}

// opaqueSigner is a crypto.Signer of a type jwt/v5 cannot sign ECDSA with.
type opaqueSigner struct{ k *ecdsa.PrivateKey }

func (o opaqueSigner) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, op crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, op)
}

func TestNewSignerRejects(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
	}{
		{"nil", nil},
		{"rsa 1024", small},
		{"ecdsa p-224", p224},
		{"opaque ecdsa signer", opaqueSigner{testP256()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSigner(tt.key, "")
			if !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("NewSigner error = %v, want ErrUnsupportedKey", err)
			}
			if !strings.HasPrefix(err.Error(), "mint: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestSignHeader(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testP256())
	tests := []struct {
		typ     string
		wantTyp any // nil: absent
	}{
		{"", nil},
		{"JWT", "JWT"},
		{"at+jwt", "at+jwt"},
		{"logout+jwt", "logout+jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			tok, err := s.Sign(jwt.MapClaims{"sub": "x", "exp": t0.Add(time.Minute).Unix()}, tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			hdr, _ := verify(t, tok, s.Key(), t0)
			if len(hdr) != 2+btoi(tt.wantTyp != nil) {
				t.Errorf("header = %v, want alg, kid and typ only", hdr)
			}
			if hdr["typ"] != tt.wantTyp {
				t.Errorf("typ = %v, want %v", hdr["typ"], tt.wantTyp)
			}
		})
	}
	if _, err := s.Sign(nil, "JWT"); !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("Sign(nil) error = %v, want ErrInvalidClaims", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLoadSigner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sec1, err := x509.MarshalECPrivateKey(testP256())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, alg string
		pub             crypto.PublicKey
	}{
		{"pkcs8 ecdsa", write("ec8.pem", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(testP256()))), "ES256", testP256().Public()},
		{"pkcs8 ed25519", write("ed.pem", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(testEd()))), "EdDSA", testEd().Public()},
		{"pkcs1 rsa", write("rsa1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSA())), "RS256", testRSA().Public()},
		{"sec1 ecdsa", write("sec1.pem", "EC PRIVATE KEY", sec1), "ES256", testP256().Public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := LoadSigner(tt.path, "")
			if err != nil {
				t.Fatal(err)
			}
			want, _ := keys.Thumbprint(tt.pub)
			if s.Algorithm() != tt.alg || s.Key().ID != want {
				t.Errorf("loaded alg %s kid %s, want %s %s", s.Algorithm(), s.Key().ID, tt.alg, want)
			}
			tok, err := s.MintDev(Dev{Subject: "carol", Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			verify(t, tok, keys.Key{ID: want, Algorithm: tt.alg, Public: tt.pub}, t0)
		})
	}

	t.Run("explicit kid", func(t *testing.T) {
		t.Parallel()
		s, err := LoadSigner(tests[0].path, "k1")
		if err != nil || s.Key().ID != "k1" {
			t.Fatalf("LoadSigner with kid: %v, kid %q", err, s.Key().ID)
		}
	})

	errTests := []struct {
		name, path string
		wantIs     error
	}{
		{"missing file", filepath.Join(dir, "does-not-exist.pem"), fs.ErrNotExist},
		{"not a key", write("cert.pem", "CERTIFICATE", []byte{1, 2, 3}), nil},
		{"public key", write("pub.pem", "PUBLIC KEY", must(x509.MarshalPKIXPublicKey(testP256().Public()))), nil},
		{"small rsa", write("small.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(must(rsa.GenerateKey(rand.Reader, 1024)))), ErrUnsupportedKey},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadSigner(tt.path, "")
			if err == nil {
				t.Fatal("LoadSigner succeeded")
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the file %s", err, tt.path)
			}
			if !strings.HasPrefix(err.Error(), "mint: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}
