package validator

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
)

// t0 is the fake "now" of the tests.
var t0 = time.Unix(1_750_000_000, 0)

// fakeClock is an injected clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Test keys, generated once per test binary (RSA generation is slow).
var (
	rsaKeyA = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	rsaKeyB = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA() })
	ecKeyA  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC() })
	ecKeyB  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustEC() })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

const testSecret = "0123456789abcdef0123456789abcdef-secret"

// pubKey describes the public half of a signer, kid = thumbprint.
func pubKey(t testing.TB, s crypto.Signer) keys.Key {
	t.Helper()
	k, err := keys.NewKey(s.Public(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func kidOf(t testing.TB, s crypto.Signer) string { return pubKey(t, s).ID }

// writePEM writes the public keys of signers to one PEM file.
func writePEM(t testing.TB, signers ...crypto.Signer) string {
	t.Helper()
	var out []byte
	for _, s := range signers {
		der, err := x509.MarshalPKIXPublicKey(s.Public())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	p := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jwksDoc is a JWK Set document of the given keys.
func jwksDoc(t testing.TB, ks ...keys.Key) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range ks {
		m, err := keys.PublicJWK(k)
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, m)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a switchable body and counts requests.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	status  int
	body    []byte
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		status, b := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// claims are standard test claims valid at t0.
func claims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": testIssuer,
		"sub": "alice",
		"aud": "orders-api",
		"iat": t0.Add(-time.Minute).Unix(),
		"exp": t0.Add(10 * time.Minute).Unix(),
		"jti": "id-1",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

const testIssuer = "https://idp.test/"

// sign mints a token with jwt's own signer. header entries are added (a nil
// value deletes one); kid "" leaves it out.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rs256(t testing.TB, c jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodRS256, rsaKeyA(), kidOf(t, rsaKeyA()), nil, c)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawToken assembles header.payload.signature from raw parts.
func rawToken(header, payload, sig []byte) string {
	return b64(header) + "." + b64(payload) + "." + b64(sig)
}

// newVerifier builds a JWT validator with one issuer holding the keys of
// rsaKeyA, ecKeyA and edKey, and returns it with its clock.
func newVerifier(t testing.TB, mod func(*IssuerConfig, *JWTOptions)) (*JWT, *fakeClock) {
	t.Helper()
	return newVerifierSized(t, 0, mod)
}

// newVerifierSized is newVerifier with a cache_size (0: the default).
func newVerifierSized(t testing.TB, cacheSize int, mod func(*IssuerConfig, *JWTOptions)) (*JWT, *fakeClock) {
	t.Helper()
	clk := newClock()
	ic := IssuerConfig{
		Issuer:     testIssuer,
		Audiences:  []string{"orders-api", "billing-api"},
		Algorithms: []string{"RS256", "ES256", "EdDSA"},
		Keys:       []string{writePEM(t, rsaKeyA(), ecKeyA(), edKey())},
	}
	opts := JWTOptions{Now: clk.Now}
	if mod != nil {
		mod(&ic, &opts)
	}
	v, err := NewJWT(context.Background(), JWTConfig{Issuers: []IssuerConfig{ic}, CacheSize: cacheSize}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v, clk
}

// wantReason asserts a refusal with the given reason.
func wantReason(t testing.TB, err error, reason string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("error = %v, want ErrInvalidToken (%s)", err, reason)
	}
	if got := ReasonOf(err); got != reason {
		t.Fatalf("reason = %q, want %q (error: %v)", got, reason, err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }

// pemOf is the PKIX PEM of a public key.
func pemOf(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
