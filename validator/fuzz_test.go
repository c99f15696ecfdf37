package validator

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzExtract: Extract never panics, fails only with its sentinels, and a
// returned credential is a substring of the Authorization or Cookie header.
func FuzzExtract(f *testing.F) {
	f.Add("Bearer "+jwtLike, "", uint8(0))
	f.Add("Bearer "+opaqueID, testCookie+"="+opaqueID, uint8(2))
	f.Add("", testCookie+"="+opaqueID+"; "+testCookie+"="+otherID, uint8(1))
	f.Add("Basic YTpi\nBearer x", "a=b;"+testCookie+`="`+opaqueID+`"`, uint8(2))
	f.Add("bearer   a.b.c  ", testCookie+"=x\n"+testCookie+"=x", uint8(1))
	auths := []string{"jwt", "session", "any", "none"}
	f.Fuzz(func(t *testing.T, authz, cookie string, mode uint8) {
		r := httptest.NewRequest("GET", "/", nil)
		var authzs, cookies []string
		if authz != "" {
			authzs = strings.Split(authz, "\n")
			r.Header["Authorization"] = authzs
		}
		if cookie != "" {
			cookies = strings.Split(cookie, "\n")
			r.Header["Cookie"] = cookies
		}
		c, err := Extract(r, auths[int(mode)%len(auths)], testCookie)
		if err != nil {
			if !errors.Is(err, ErrNoCredential) && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrConflict) {
				t.Fatalf("unexpected error %v", err)
			}
			if c != (Credential{}) {
				t.Fatalf("credential %+v with error %v", c, err)
			}
			return
		}
		if c.Value == "" || c.Kind == 0 {
			t.Fatalf("empty credential %+v", c)
		}
		src := authzs
		if c.FromCookie {
			src = cookies
		}
		found := false
		for _, h := range src {
			found = found || strings.Contains(h, c.Value)
		}
		if !found {
			t.Fatalf("credential %q is not in the headers it came from", c.Value)
		}
		if c.Kind == CredentialJWT && strings.Count(c.Value, ".") != 2 {
			t.Fatalf("JWT without two dots: %q", c.Value)
		}
	})
}

// fuzzKey is a fixed Ed25519 key, so that the seed corpus can hold tokens
// that verify (Ed25519 signatures are deterministic).
var fuzzKey = ed25519.NewKeyFromSeed([]byte("portcullis-fuzz-seed-32-bytes!!!"))

// FuzzVerify: arbitrary strings never verify unless signed with the test
// key; Verify never panics and fails only with ErrInvalidToken.
func FuzzVerify(f *testing.F) {
	valid := sign(f, jwt.SigningMethodEdDSA, fuzzKey, "", nil, claims(nil))
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add(rawToken([]byte(`{"alg":"none"}`), mustJSON(f, claims(nil)), nil))
	f.Add(rawToken([]byte(`{"alg":"EdDSA","crit":["x"]}`), mustJSON(f, claims(nil)), make([]byte, 64)))
	f.Add("a.b.c")
	f.Add("..")
	path := f.TempDir() + "/fuzz.pem"
	if err := writeFile(path, pemOf(fuzzKey.Public())); err != nil {
		f.Fatal(err)
	}
	clk := newClock()
	v, err := NewJWT(context.Background(), JWTConfig{Issuers: []IssuerConfig{{
		Issuer: testIssuer, Keys: []string{path}, Algorithms: []string{"EdDSA", "ES256", "RS256"},
	}}}, JWTOptions{Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	if _, err := v.Verify(context.Background(), valid); err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	pub := fuzzKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(t.Context(), token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) || id != nil {
				t.Fatalf("Verify = %v, %v", id, err)
			}
			var te *TokenError
			if errors.As(err, &te) && len(token) > 8 && strings.Contains(te.Description, token) {
				t.Fatal("the description echoes the token")
			}
			return
		}
		i := strings.LastIndexByte(token, '.')
		sig, derr := base64.RawURLEncoding.DecodeString(token[i+1:])
		if derr != nil || !ed25519.Verify(pub, []byte(token[:i]), sig) {
			t.Fatalf("verified a token not signed with the test key: %q", token)
		}
	})
}
