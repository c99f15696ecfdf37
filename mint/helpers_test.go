package mint

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
)

// Test keys are generated once per test binary (RSA generation is slow).
var (
	testP256 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	testP384 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	testEd   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	testRSA = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func newSigner(t testing.TB, key crypto.Signer) *Signer {
	t.Helper()
	s, err := NewSigner(key, "")
	if err != nil {
		t.Fatalf("NewSigner(%T): %v", key, err)
	}
	return s
}

// t0 is a whole second, so iat truncation leaves it unchanged.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is an injected clock that tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// verify checks tok's signature with k (as a relying party would: alg
// allow-list, kid match, exp checked at `at`) and returns its header and
// claims decoded with json.Number so integer claims can be told apart.
func verify(t testing.TB, tok string, k keys.Key, at time.Time) (header, claims map[string]any) {
	t.Helper()
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{k.Algorithm}),
		jwt.WithTimeFunc(func() time.Time { return at }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	_, err := p.Parse(tok, func(tk *jwt.Token) (any, error) {
		if kid, _ := tk.Header["kid"].(string); kid != k.ID {
			t.Errorf("kid = %q, want %q", kid, k.ID)
		}
		return k.Public, nil
	})
	if err != nil {
		t.Fatalf("verifying token: %v", err)
	}
	return decodeSegments(t, tok)
}

func decodeSegments(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	dec := func(seg string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			t.Fatalf("decoding segment: %v", err)
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("decoding segment JSON %s: %v", raw, err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

// claimInt is an integer claim; it fails the test for any other JSON type.
func claimInt(t testing.TB, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %#v (%T), want a JSON number", name, claims[name], claims[name])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %s = %s, want an integer", name, n)
	}
	return v
}

func claimString(t testing.TB, claims map[string]any, name string) string {
	t.Helper()
	s, ok := claims[name].(string)
	if !ok {
		t.Fatalf("claim %s = %#v (%T), want a JSON string", name, claims[name], claims[name])
	}
	return s
}

func claimStrings(t testing.TB, claims map[string]any, name string) []string {
	t.Helper()
	arr, ok := claims[name].([]any)
	if !ok {
		t.Fatalf("claim %s = %#v (%T), want a JSON array", name, claims[name], claims[name])
	}
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("claim %s has element %#v, want strings", name, v)
		}
		out = append(out, s)
	}
	return out
}

// claimNames lists the claims present, for exact-set comparisons.
func claimNames(claims map[string]any) []string {
	out := make([]string, 0, len(claims))
	for k := range claims {
		out = append(out, k)
	}
	return out
}
