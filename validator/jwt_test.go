package validator

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/store"
)

// TestVerifyHostile feeds the hostile tokens of issue #2 to a verifier that
// trusts rsaKeyA, ecKeyA and edKey.
func TestVerifyHostile(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(t, func(ic *IssuerConfig, _ *JWTOptions) { ic.MaxLifetime = time.Hour })

	// An attacker's JWKS server: it must never be contacted.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write(jwksDoc(t, pubKey(t, rsaKeyB())))
	}))
	t.Cleanup(attacker.Close)

	kidA, kidB := kidOf(t, rsaKeyA()), kidOf(t, rsaKeyB())
	valid := rs256(t, claims(nil))
	parts := strings.Split(valid, ".")
	payload := mustJSON(t, claims(nil))

	rsaPubPEM := func() []byte {
		der, err := x509.MarshalPKIXPublicKey(rsaKeyA().Public())
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	attackerJWK, err := keys.PublicJWK(pubKey(t, rsaKeyB()))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"alg none", rawToken([]byte(`{"alg":"none","typ":"JWT"}`), payload, nil), ReasonAlgNotAllowed},
		{"alg None", rawToken([]byte(`{"alg":"None"}`), payload, nil), ReasonAlgNotAllowed},
		{"alg NONE", rawToken([]byte(`{"alg":"NONE"}`), payload, nil), ReasonAlgNotAllowed},
		{"alg nOnE", rawToken([]byte(`{"alg":"nOnE"}`), payload, []byte("x")), ReasonAlgNotAllowed},
		{"alg none via jwt's own signer",
			sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", nil, claims(nil)), ReasonAlgNotAllowed},
		{"RS256 public key as HS256 secret",
			sign(t, jwt.SigningMethodHS256, rsaPubPEM, kidA, nil, claims(nil)), ReasonAlgNotAllowed},
		{"RS256 public key DER as HS256 secret, no kid",
			sign(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&rsaKeyA().PublicKey), "", nil, claims(nil)), ReasonAlgNotAllowed},
		{"stripped signature", parts[0] + "." + parts[1] + ".", ReasonBadSignature},
		{"no signature segment", parts[0] + "." + parts[1], ReasonMalformed},
		{"foreign signature with our kid", sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidA, nil, claims(nil)), ReasonBadSignature},
		{"foreign signature without kid", sign(t, jwt.SigningMethodRS256, rsaKeyB(), "", nil, claims(nil)), ReasonBadSignature},
		{"tampered payload", parts[0] + "." + b64(mustJSON(t, claims(map[string]any{"sub": "admin"}))) + "." + parts[2], ReasonBadSignature},
		{"embedded jwk header, no kid",
			sign(t, jwt.SigningMethodRS256, rsaKeyB(), "", map[string]any{"jwk": attackerJWK}, claims(nil)), ReasonBadSignature},
		{"embedded jwk header with its kid",
			sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidB, map[string]any{"jwk": attackerJWK}, claims(nil)), ReasonUnknownKID},
		{"x5c header",
			sign(t, jwt.SigningMethodRS256, rsaKeyB(), "", map[string]any{"x5c": []string{"MIIB"}}, claims(nil)), ReasonBadSignature},
		{"jku to the attacker",
			sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidB, map[string]any{"jku": attacker.URL}, claims(nil)), ReasonUnknownKID},
		{"x5u to the attacker",
			sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidB, map[string]any{"x5u": attacker.URL}, claims(nil)), ReasonUnknownKID},
		{"kid path traversal",
			sign(t, jwt.SigningMethodRS256, rsaKeyA(), "../../../../dev/null", nil, claims(nil)), ReasonUnknownKID},
		{"kid not a string",
			sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", map[string]any{"kid": 7}, claims(nil)), ReasonMalformed},
		{"ES256 with r=s=0",
			rawToken(mustJSON(t, map[string]any{"alg": "ES256", "kid": kidOf(t, ecKeyA())}), payload, make([]byte, 64)), ReasonBadSignature},
		{"ES256 with r=s=0, no kid",
			rawToken([]byte(`{"alg":"ES256"}`), payload, make([]byte, 64)), ReasonBadSignature},
		{"expired", rs256(t, claims(map[string]any{"exp": t0.Add(-time.Minute).Unix()})), ReasonTokenExpired},
		{"future nbf", rs256(t, claims(map[string]any{"nbf": t0.Add(5 * time.Minute).Unix()})), ReasonTokenNotYetValid},
		{"iat in the future", rs256(t, claims(map[string]any{"iat": t0.Add(5 * time.Minute).Unix()})), ReasonIATInFuture},
		{"wrong iss", rs256(t, claims(map[string]any{"iss": "https://evil.test/"})), ReasonUnknownIssuer},
		{"no iss", rs256(t, claims(map[string]any{"iss": nil})), ReasonUnknownIssuer},
		{"iss not a string", rs256(t, claims(map[string]any{"iss": []string{testIssuer}})), ReasonUnknownIssuer},
		{"wrong aud", rs256(t, claims(map[string]any{"aud": []string{"other-api"}})), ReasonWrongAudience},
		{"no aud", rs256(t, claims(map[string]any{"aud": nil})), ReasonWrongAudience},
		{"over max_lifetime", rs256(t, claims(map[string]any{"exp": t0.Add(2 * time.Hour).Unix()})), ReasonLifetimeTooLong},
		{"max_lifetime without iat", rs256(t, claims(map[string]any{"iat": nil})), ReasonMissingIAT},
		{"no exp", rs256(t, claims(map[string]any{"exp": nil})), ReasonMissingExp},
		{"exp not a number", rs256(t, claims(map[string]any{"exp": "tomorrow"})), ReasonBadClaim},
		{"unknown crit", sign(t, jwt.SigningMethodRS256, rsaKeyA(), kidA, map[string]any{"crit": []string{"exp"}, "exp": 1}, claims(nil)), ReasonUnknownCrit},
		{"b64 crit", sign(t, jwt.SigningMethodRS256, rsaKeyA(), kidA, map[string]any{"crit": []string{"b64"}, "b64": false}, claims(nil)), ReasonUnknownCrit},
		{"20 KB of garbage", strings.Repeat("A.b", 20<<10/3), ReasonMalformed},
		{"two dots, not base64", "!!!.@@@.###", ReasonMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], ReasonMalformed},
		{"payload is an array", rawToken([]byte(`{"alg":"RS256"}`), []byte(`[1,2]`), []byte("s")), ReasonMalformed},
		{"payload is a string", rawToken([]byte(`{"alg":"RS256"}`), []byte(`"claims"`), []byte("s")), ReasonMalformed},
		{"payload is null", rawToken([]byte(`{"alg":"RS256"}`), []byte(`null`), []byte("s")), ReasonMalformed},
		{"header is not an object", rawToken([]byte(`[]`), payload, []byte("s")), ReasonMalformed},
		{"no alg", rawToken([]byte(`{"typ":"JWT"}`), payload, []byte("s")), ReasonMalformed},
		{"unsupported alg", rawToken([]byte(`{"alg":"RS1"}`), payload, []byte("s")), ReasonAlgNotAllowed},
		{"alg not in the issuer's list", sign(t, jwt.SigningMethodRS384, rsaKeyA(), kidA, nil, claims(nil)), ReasonAlgNotAllowed},
		{"kid of an RSA key on an ES256 token", sign(t, jwt.SigningMethodES256, ecKeyA(), kidA, nil, claims(nil)), ReasonBadSignature},
		{"control char in sub", rs256(t, claims(map[string]any{"sub": "alice\r\nX-Auth-Roles: admin"})), ReasonClaimNotAllowed},
		{"control char in jti", rs256(t, claims(map[string]any{"jti": "a\x00b"})), ReasonClaimNotAllowed},
		{"control char in acr", rs256(t, claims(map[string]any{"acr": "mfa\n"})), ReasonClaimNotAllowed},
		{"control char in sid", rs256(t, claims(map[string]any{"sid": "s\x7f"})), ReasonClaimNotAllowed},
		{"comma in a role", rs256(t, claims(map[string]any{"roles": []string{"user,admin"}})), ReasonClaimNotAllowed},
		{"control char in a role", rs256(t, claims(map[string]any{"roles": "admin\t"})), ReasonClaimNotAllowed},
		{"empty role", rs256(t, claims(map[string]any{"roles": []string{""}})), ReasonClaimNotAllowed},
		{"comma in amr", rs256(t, claims(map[string]any{"amr": []string{"pwd,otp"}})), ReasonClaimNotAllowed},
		{"space in a scope array", rs256(t, claims(map[string]any{"scope": []string{"read write"}})), ReasonClaimNotAllowed},
		{"newline in a scope string", rs256(t, claims(map[string]any{"scope": "read\nwrite"})), ReasonClaimNotAllowed},
		{"roles not strings", rs256(t, claims(map[string]any{"roles": []any{"a", 1}})), ReasonBadClaim},
		{"sub not a string", rs256(t, claims(map[string]any{"sub": 42})), ReasonBadClaim},
		{"auth_time not a number", rs256(t, claims(map[string]any{"auth_time": "yesterday"})), ReasonBadClaim},
		{"over 16 KiB", rs256(t, claims(map[string]any{"pad": strings.Repeat("x", 17<<10)})), ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), tt.token)
			if id != nil {
				t.Fatalf("verified: %+v", id)
			}
			wantReason(t, err, tt.reason)
			var te *TokenError
			if errors.As(err, &te) && (strings.Contains(te.Description, tt.token) || tt.token != "" && strings.Contains(err.Error(), tt.token)) {
				t.Fatal("the error echoes the token")
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}
}

// TestVerifyJKUNeverFetched: on an issuer with a jwks_url, an unknown kid
// refetches the issuer's own set, never a jku/x5u of the token.
func TestVerifyJKUNeverFetched(t *testing.T) {
	t.Parallel()
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write(jwksDoc(t, pubKey(t, rsaKeyB())))
	}))
	t.Cleanup(attacker.Close)
	idp := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA())))
	v, _ := newVerifier(t, func(ic *IssuerConfig, _ *JWTOptions) {
		ic.Keys = nil
		ic.JWKSURL = idp.URL
	})
	for _, h := range []string{"jku", "x5u"} {
		tok := sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidOf(t, rsaKeyB()), map[string]any{h: attacker.URL}, claims(nil))
		_, err := v.Verify(t.Context(), tok)
		wantReason(t, err, ReasonUnknownKID)
	}
	if n := attackerHits.Load(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Fatalf("the IdP got %d fetches, want 2 (start + one rate-limited refetch)", n)
	}
}

func TestVerifyValid(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(t, func(ic *IssuerConfig, o *JWTOptions) {
		ic.RolesClaim = "realm_access.roles"
		o.ForwardClaims = []string{"email", "email_verified", "groups", "org"}
	})
	kidA := kidOf(t, rsaKeyA())
	tests := []struct {
		name  string
		token string
		check func(t *testing.T, id *Identity)
	}{
		{"RS256", rs256(t, claims(nil)), nil},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKeyA(), kidOf(t, ecKeyA()), nil, claims(nil)), nil},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, edKey(), kidOf(t, edKey()), nil, claims(nil)), nil},
		{"ES256 without kid", sign(t, jwt.SigningMethodES256, ecKeyA(), "", nil, claims(nil)), nil},
		{"RS256 without kid", sign(t, jwt.SigningMethodRS256, rsaKeyA(), "", nil, claims(nil)), nil},
		{"audiences any-of", rs256(t, claims(map[string]any{"aud": []string{"x", "billing-api"}})), nil},
		{"expired within leeway", rs256(t, claims(map[string]any{"exp": t0.Add(-10 * time.Second).Unix()})), nil},
		{"fields", rs256(t, claims(map[string]any{
			"realm_access":   map[string]any{"roles": []string{"user", "admin"}},
			"scope":          "read  write",
			"acr":            "mfa",
			"amr":            []string{"pwd", "otp"},
			"auth_time":      t0.Add(-time.Hour).Unix(),
			"nbf":            t0.Add(-time.Minute).Unix(),
			"sid":            "not-our-session",
			"email":          "alice@example.com",
			"email_verified": true,
			"groups":         []string{"a", "b"},
			"org":            map[string]any{"id": 1},
		})), func(t *testing.T, id *Identity) {
			if id.Method != MethodJWT || id.Subject != "alice" || id.Issuer != testIssuer || id.TokenID != "id-1" || !id.HasJTI {
				t.Errorf("identity = %+v", id)
			}
			if id.RevocationKey != store.TokenKey(testIssuer, "id-1") {
				t.Errorf("RevocationKey = %q", id.RevocationKey)
			}
			if id.Gateway || id.SessionHandle != "" || id.SessionRevocationKey != "" {
				t.Errorf("a foreign sid became a session handle: %+v", id)
			}
			if id.RolesHeader() != "user,admin" || id.ScopesHeader() != "read write" || id.AMRHeader() != "pwd,otp" || id.ACR != "mfa" {
				t.Errorf("headers: roles %q scopes %q amr %q", id.RolesHeader(), id.ScopesHeader(), id.AMRHeader())
			}
			if !id.AuthTime.Equal(t0.Add(-time.Hour)) || id.AuthTimeHeader() != "1749996400" {
				t.Errorf("auth_time = %v %q", id.AuthTime, id.AuthTimeHeader())
			}
			if !id.ExpiresAt.Equal(t0.Add(10*time.Minute)) || !id.IssuedAt.Equal(t0.Add(-time.Minute)) || !id.NotBefore.Equal(t0.Add(-time.Minute)) {
				t.Errorf("times: %v %v %v", id.IssuedAt, id.NotBefore, id.ExpiresAt)
			}
			for name, want := range map[string]string{"email": "alice@example.com", "email_verified": "true", "groups": "a,b"} {
				if got, ok := id.ClaimHeader(name); !ok || got != want {
					t.Errorf("ClaimHeader(%q) = %q, %v; want %q", name, got, ok, want)
				}
			}
			if _, ok := id.ClaimHeader("org"); ok {
				t.Error("an object claim is forwarded")
			}
			if id.Claims["email"] != "alice@example.com" {
				t.Errorf("Claims = %v", id.Claims)
			}
		}},
		{"single string role, scope array, no auth_time", rs256(t, claims(map[string]any{
			"realm_access": map[string]any{"roles": "admin"},
			"scope":        []string{"read", "write"},
			"iat":          t0.Unix(),
		})), func(t *testing.T, id *Identity) {
			if id.RolesHeader() != "admin" || id.ScopesHeader() != "read write" {
				t.Errorf("roles %q scopes %q", id.RolesHeader(), id.ScopesHeader())
			}
			if !id.AuthTime.IsZero() || id.AuthTimeHeader() != "" {
				t.Errorf("iat became auth_time: %v %q", id.AuthTime, id.AuthTimeHeader())
			}
		}},
		{"jti-less", rs256(t, claims(map[string]any{"jti": nil})), func(t *testing.T, id *Identity) {
			if id.HasJTI || !strings.HasPrefix(id.TokenID, "sha256:") || id.RevocationKey != store.TokenKey(testIssuer, id.TokenID) {
				t.Errorf("TokenID %q HasJTI %v", id.TokenID, id.HasJTI)
			}
		}},
		{"forwarded claim with control char is refused elsewhere, fine when absent", rs256(t, claims(nil)), func(t *testing.T, id *Identity) {
			if _, ok := id.ClaimHeader("email"); ok {
				t.Error("absent claim forwarded")
			}
		}},
		{"kid A", sign(t, jwt.SigningMethodRS256, rsaKeyA(), kidA, nil, claims(nil)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tt.check != nil {
				tt.check(t, id)
			}
		})
	}
	_, err := v.Verify(t.Context(), rs256(t, claims(map[string]any{"email": "a@b\r\nX: y"})))
	wantReason(t, err, ReasonClaimNotAllowed)
}

func TestVerifyNamespacedRolesClaim(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(t, func(ic *IssuerConfig, _ *JWTOptions) { ic.RolesClaim = "https://example.com/roles" })
	id, err := v.Verify(t.Context(), rs256(t, claims(map[string]any{"https://example.com/roles": []string{"ops"}})))
	if err != nil {
		t.Fatal(err)
	}
	if id.RolesHeader() != "ops" {
		t.Fatalf("roles = %v", id.Roles)
	}
}

func TestVerifyKIDSelection(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(t, func(ic *IssuerConfig, _ *JWTOptions) {
		ic.Keys = []string{writePEM(t, rsaKeyA(), rsaKeyB())}
		ic.Algorithms = []string{"RS256"}
	})
	kidA, kidB := kidOf(t, rsaKeyA()), kidOf(t, rsaKeyB())
	for _, tt := range []struct {
		name   string
		token  string
		reason string
	}{
		{"B with kid B", sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidB, nil, claims(nil)), ""},
		{"A with kid A", sign(t, jwt.SigningMethodRS256, rsaKeyA(), kidA, nil, claims(nil)), ""},
		{"B without kid", sign(t, jwt.SigningMethodRS256, rsaKeyB(), "", nil, claims(nil)), ""},
		{"B with kid A", sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidA, nil, claims(nil)), ReasonBadSignature},
		{"ES256 without kid, no EC key", sign(t, jwt.SigningMethodES256, ecKeyA(), "", nil, claims(nil)), ReasonAlgNotAllowed},
	} {
		_, err := v.Verify(t.Context(), tt.token)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if ReasonOf(err) != tt.reason {
			t.Errorf("%s: err %v, want %s", tt.name, err, tt.reason)
		}
	}
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	clk := newClock()
	v, err := NewJWT(t.Context(), JWTConfig{Issuers: []IssuerConfig{{Issuer: testIssuer, Secret: testSecret}}}, JWTOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", nil, claims(nil))); err != nil {
		t.Fatalf("HS256: %v", err)
	}
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), "", nil, claims(nil)))
	wantReason(t, err, ReasonBadSignature)
	_, err = v.Verify(t.Context(), rs256(t, claims(nil)))
	wantReason(t, err, ReasonAlgNotAllowed)
}

// TestTokenIDMalleability: the TokenID of a jti-less token hashes the
// signing input, so re-signing or flipping an ECDSA signature (r, s) to
// (r, N-s) keeps it: a revocation cannot be dodged.
func TestTokenIDMalleability(t *testing.T) {
	t.Parallel()
	v, _ := newVerifier(t, nil)
	c := claims(map[string]any{"jti": nil})
	kid := kidOf(t, ecKeyA())
	tok1 := sign(t, jwt.SigningMethodES256, ecKeyA(), kid, nil, c)
	tok2 := sign(t, jwt.SigningMethodES256, ecKeyA(), kid, nil, c) // fresh random nonce

	i := strings.LastIndexByte(tok1, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok1[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	flipped := append(sig[:32:32], new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))...)
	tok3 := tok1[:i+1] + b64(flipped)

	if tok1 == tok2 || tok1 == tok3 {
		t.Fatal("the variants are not different strings")
	}
	var ids []string
	for _, tok := range []string{tok1, tok2, tok3} {
		id, err := v.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		ids = append(ids, id.TokenID)
	}
	if ids[0] != ids[1] || ids[0] != ids[2] || !strings.HasPrefix(ids[0], "sha256:") {
		t.Fatalf("TokenIDs differ: %v", ids)
	}
}

func TestGatewayIssuer(t *testing.T) {
	t.Parallel()
	const gw = "https://gateway.test/"
	v, _ := newVerifier(t, func(_ *IssuerConfig, o *JWTOptions) {
		k := pubKey(t, ecKeyB())
		o.Gateway = &GatewayIssuer{Issuer: gw, Audiences: []string{"internal"}, Keys: []keys.Key{k}}
	})
	c := claims(map[string]any{"iss": gw, "aud": "internal", "sid": "h-123"})
	id, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, ecKeyB(), kidOf(t, ecKeyB()), nil, c))
	if err != nil {
		t.Fatal(err)
	}
	if !id.Gateway || id.SessionHandle != "h-123" || id.SessionRevocationKey != store.SessionKey("h-123") {
		t.Fatalf("identity = %+v", id)
	}
	// The gateway's key does not sign for the IdP, nor the IdP's for the gateway.
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, ecKeyB(), kidOf(t, ecKeyB()), nil, claims(nil)))
	wantReason(t, err, ReasonUnknownKID)
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, ecKeyA(), kidOf(t, ecKeyA()), nil, c))
	wantReason(t, err, ReasonUnknownKID)

	st := v.Status()
	if len(st) != 2 || st[1].Source != "gateway" || st[1].Keys != 1 || !st[1].Ready {
		t.Fatalf("Status = %+v", st)
	}
}

func TestNewJWTKeyErrors(t *testing.T) {
	t.Parallel()
	garbage := writePEM(t)
	tests := []struct {
		name string
		ic   IssuerConfig
		want string
	}{
		{"missing file", IssuerConfig{Issuer: "i", Keys: []string{"/nonexistent/k.pem"}}, `keys[0] "/nonexistent/k.pem"`},
		{"no key in file", IssuerConfig{Issuer: "i", Keys: []string{garbage}}, "no public key"},
		{"Ed25519 key without EdDSA", IssuerConfig{Issuer: "i", Keys: []string{writePEM(t, edKey())}}, "fits none of the algorithms RS256, ES256"},
	}
	for _, tt := range tests {
		_, err := NewJWT(t.Context(), JWTConfig{Issuers: []IssuerConfig{tt.ic}}, JWTOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	_, err := NewJWT(t.Context(), JWTConfig{Issuers: []IssuerConfig{{Issuer: testIssuer, Secret: testSecret}}},
		JWTOptions{Gateway: &GatewayIssuer{Issuer: testIssuer, Keys: []keys.Key{pubKey(t, ecKeyA())}}})
	if err == nil || !strings.Contains(err.Error(), "also in jwt.issuers") {
		t.Errorf("gateway issuer collision: %v", err)
	}
}

func TestVerifyJWKSFile(t *testing.T) {
	t.Parallel()
	k, err := keys.NewKey(rsaKeyA().Public(), "my-kid", "RS256")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/jwks.json"
	if err := writeFile(path, jwksDoc(t, k)); err != nil {
		t.Fatal(err)
	}
	v, _ := newVerifier(t, func(ic *IssuerConfig, _ *JWTOptions) { ic.Keys = []string{path} })
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, rsaKeyA(), "my-kid", nil, claims(nil))); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(t.Context(), rs256(t, claims(nil))) // kid = thumbprint: not in this set
	wantReason(t, err, ReasonUnknownKID)
}
