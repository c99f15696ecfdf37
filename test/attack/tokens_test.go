package attack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// TestHostileTokens sends the hostile token list of the JWT core issue
// end to end: every one is 401 invalid_token, never reaches the upstream,
// and the attacker's key servers named in jku/x5u get no request at all.
func TestHostileTokens(t *testing.T) {
	t.Parallel()
	e := start(t, options{})

	var attackerHits atomic.Int64
	evilJWK, err := keys.PublicJWK(keys.Key{ID: "evil", Algorithm: "ES256", Public: &e.evil.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = jsonEncode(w, map[string]any{"keys": []any{evilJWK}})
	}))
	t.Cleanup(attacker.Close)

	esKID := e.es.Signer.KeyID()
	rsKID := e.rs.Signer.KeyID()
	valid := e.signES(t, nil, claims(nil))
	parts := strings.Split(valid, ".")
	other := e.signES(t, nil, claims(func(c jwt.MapClaims) { c["sub"] = "bob" }))
	rsaPEM, err := os.ReadFile(e.rs.Public)
	if err != nil {
		t.Fatal(err)
	}
	esPEM, err := os.ReadFile(e.es.Public)
	if err != nil {
		t.Fatal(err)
	}
	evilCert := selfSigned(t, e.evil)
	now := time.Now()
	esHdr := map[string]any{"alg": "ES256", "typ": "JWT", "kid": esKID}
	tamperedPayload := b64.EncodeToString(mustJSON(t, claims(func(c jwt.MapClaims) { c["roles"] = []string{"admin"} })))
	garbage := make([]byte, 15<<10)
	_, _ = rand.Read(garbage)
	g := base64.RawURLEncoding.EncodeToString(garbage) // 20 KB of base64url

	noneClaims := claims(func(c jwt.MapClaims) { c["roles"] = []string{"admin"} })
	tokens := []struct{ name, token string }{
		// alg none in any case, with and without a signature part.
		{"alg none", assemble(t, map[string]any{"alg": "none", "typ": "JWT"}, noneClaims, nil)},
		{"alg None", assemble(t, map[string]any{"alg": "None"}, noneClaims, nil)},
		{"alg NONE", assemble(t, map[string]any{"alg": "NONE"}, noneClaims, nil)},
		{"alg nOnE", assemble(t, map[string]any{"alg": "nOnE"}, noneClaims, nil)},
		{"alg none with the real kid and a signature", assemble(t, map[string]any{"alg": "none", "kid": esKID}, noneClaims, []byte("sig"))},
		{"duplicate alg keys, the last one none", assemble(t, `{"alg":"ES256","alg":"none"}`, noneClaims, nil)},
		// Algorithm confusion: public keys used as HMAC secrets.
		{"RS256 public key PEM as HS256 secret", sign(t, jwt.SigningMethodHS256, rsaPEM, map[string]any{"kid": rsKID},
			claims(func(c jwt.MapClaims) { c["iss"] = rsaIssuer }))},
		{"RS256 public key PEM without newline as HS256 secret", sign(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(rsaPEM))), nil,
			claims(func(c jwt.MapClaims) { c["iss"] = rsaIssuer }))},
		{"ES256 public key PEM as HS256 secret", sign(t, jwt.SigningMethodHS256, esPEM, map[string]any{"kid": esKID}, claims(nil))},
		{"HS512 with an empty secret", sign(t, jwt.SigningMethodHS512, []byte{}, nil, claims(nil))},
		{"RS256 issuer's key signing a token of the ES256 issuer", sign(t, jwt.SigningMethodRS256, e.rsKey, map[string]any{"kid": rsKID}, claims(nil))},
		{"ES256 header but an RS256 signature", func() string {
			rs := sign(t, jwt.SigningMethodRS256, e.rsKey, nil, claims(nil))
			p := strings.Split(rs, ".")
			return b64.EncodeToString(mustJSON(t, esHdr)) + "." + p[1] + "." + p[2]
		}()},
		// Signatures stripped, foreign, transplanted, forged.
		{"stripped signature", parts[0] + "." + parts[1] + "."},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2]},
		{"foreign signature with the real kid", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": esKID}, claims(nil))},
		{"foreign signature without kid", sign(t, jwt.SigningMethodES256, e.evil, nil, claims(nil))},
		{"tampered payload (roles: admin)", parts[0] + "." + tamperedPayload + "." + parts[2]},
		{"ES256 r=s=0 (psychic signature)", parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 64))},
		{"ES256 r=s=n", parts[0] + "." + parts[1] + "." + b64.EncodeToString(append(elliptic.P256().Params().N.FillBytes(make([]byte, 32)), elliptic.P256().Params().N.FillBytes(make([]byte, 32))...))},
		{"ES256 signature in ASN.1 DER", func() string {
			sig, err := e.esKey.Sign(rand.Reader, sha256Sum(parts[0]+"."+parts[1]), nil)
			if err != nil {
				t.Fatal(err)
			}
			return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
		}()},
		// Keys supplied by the token itself.
		{"embedded jwk of the attacker", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": "evil", "jwk": evilJWK}, claims(nil))},
		{"embedded jwk under the real kid", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": esKID, "jwk": evilJWK}, claims(nil))},
		{"jku to the attacker", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": "evil", "jku": attacker.URL + "/jwks.json"}, claims(nil))},
		{"jku to the attacker, real kid", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": esKID, "jku": attacker.URL + "/jwks.json"}, claims(nil))},
		{"x5u to the attacker", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": "evil", "x5u": attacker.URL + "/cert.pem"}, claims(nil))},
		{"x5c with the attacker's certificate", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(evilCert)}}, claims(nil))},
		// kid injection.
		{"kid path traversal to /dev/null, HS256 empty key", sign(t, jwt.SigningMethodHS256, []byte{}, map[string]any{"kid": "../../../../../../../dev/null"}, claims(nil))},
		{"kid path traversal, attacker key", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": "../../../../../../../" + strings.TrimPrefix(e.evilK.Public, "/")}, claims(nil))},
		{"kid absolute path to the trusted public key file", sign(t, jwt.SigningMethodHS256, esPEM, map[string]any{"kid": e.es.Public}, claims(nil))},
		{"kid SQL injection", sign(t, jwt.SigningMethodES256, e.evil, map[string]any{"kid": "x' UNION SELECT 'key' --"}, claims(nil))},
		{"kid is not a string", sign(t, jwt.SigningMethodES256, e.esKey, map[string]any{"kid": 1}, claims(nil))},
		// Time and audience claims.
		{"expired", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))},
		{"nbf in the future", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))},
		{"iat in the future", e.signES(t, nil, claims(func(c jwt.MapClaims) {
			c["iat"] = now.Add(5 * time.Minute).Unix()
			c["exp"] = now.Add(20 * time.Minute).Unix()
		}))},
		{"no exp", e.signES(t, nil, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"exp as a string", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["exp"] = "9999999999" }))},
		{"wrong iss", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test/" }))},
		{"no iss", e.signES(t, nil, claims(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"wrong aud", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["aud"] = []string{"other", "billing"} }))},
		{"no aud", e.signES(t, nil, claims(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"over max_lifetime", e.token(t, mint.Dev{TTL: 25 * time.Hour})},
		{"no iat with max_lifetime", e.signES(t, nil, claims(func(c jwt.MapClaims) { delete(c, "iat") }))},
		// crit.
		{"unknown crit", e.signES(t, map[string]any{"crit": []string{"exp-ext"}, "exp-ext": true}, claims(nil))},
		{"empty crit", e.signES(t, map[string]any{"crit": []string{}}, claims(nil))},
		{"crit naming b64 (RFC 7797)", e.signES(t, map[string]any{"crit": []string{"b64"}, "b64": false}, claims(nil))},
		// Malformed.
		{"20 KB of base64url garbage with two dots", g[:7000] + "." + g[7000:14000] + "." + g[14000:]},
		{"20 KB of base64url garbage without dots", g},
		{"20 KB valid-looking token (huge claim)", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["pad"] = g }))},
		{"two dots, nothing else", ".."},
		{"payload is a JSON array", assemble(t, esHdr, "[1,2]", []byte("sig"))},
		{"payload is JSON null", assemble(t, esHdr, "null", []byte("sig"))},
		{"header is not JSON", b64.EncodeToString([]byte("{alg:ES256")) + "." + parts[1] + "." + parts[2]},
		{"padding in the segments", parts[0] + "=." + parts[1] + "." + parts[2]},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]) + "+/." + parts[1] + "." + parts[2]},
		{"four segments (JWE-like)", valid + ".x"},
		// Forwarded claims with control characters (SPEC hygiene: 401, never 502).
		{"email claim with a control character", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["email"] = "a\x01b@example.com" }))},
		{"email claim with CR LF header injection", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["email"] = "a@example.com\r\nX-Auth-Subject: root" }))},
		{"email claim with DEL", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["email"] = "a\x7f@example.com" }))},
		{"sub with a newline", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["sub"] = "alice\nX-Auth-Roles: admin" }))},
		{"sub with NUL", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["sub"] = "alice\x00" }))},
		{"role with a newline", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["roles"] = []string{"user\r\nX-Auth-Roles: admin"} }))},
		{"acr with a tab", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["acr"] = "mfa\tx" }))},
		{"scope with a control character", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["scope"] = "read\x1bwrite" }))},
		{"amr with a control character", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["amr"] = []string{"pwd\x0b"} }))},
		{"jti with a newline", e.signES(t, nil, claims(func(c jwt.MapClaims) { c["jti"] = "j\nX" }))},
	}

	var cases []rawCase
	for _, tk := range tokens {
		cases = append(cases, invalidToken(tk.name, get("/api/orders", bearer(tk.token))))
	}
	// The tampered token must not pass the admin route either.
	cases = append(cases, invalidToken("tampered payload on the admin route", get("/admin", bearer(parts[0]+"."+tamperedPayload+"."+parts[2]))))
	// Non-JWT bearer shapes on a jwt-only route.
	cases = append(cases,
		invalidToken("opaque bearer on a jwt route", get("/api/orders", "Authorization: Bearer "+strings.Repeat("A", 43))),
		invalidToken("Bearer with two tokens", get("/api/orders", "Authorization: Bearer "+valid+" "+valid)),
		invalidToken("Bearer with a non-b64token character", get("/api/orders", "Authorization: Bearer "+parts[0]+"."+parts[1]+".a,b")),
		rawCase{name: "Basic credentials are not a credential", req: get("/api/orders", "Authorization: Basic YWxpY2U6cGFzc3dvcmQ="),
			status: 401, code: "unauthorized", www: `Bearer realm="portcullis"`},
	)
	// The control: the same shapes, correctly signed, pass.
	cases = append(cases,
		rawCase{name: "control: a valid token passes", req: get("/api/orders", bearer(valid)), status: 200, uri: "/api/orders",
			check: func(t *testing.T, _ answer, got h.Recorded) {
				if got.Header.Get("X-Auth-Subject") != "alice" {
					t.Errorf("X-Auth-Subject %q", got.Header.Get("X-Auth-Subject"))
				}
			}},
		rawCase{name: "control: lower-case bearer scheme passes", req: get("/api/orders", "Authorization: bearer "+valid), status: 200, uri: "/api/orders"},
		rawCase{name: "control: a valid RS256 token of the other issuer passes", req: get("/api/orders",
			bearer(sign(t, jwt.SigningMethodRS256, e.rsKey, map[string]any{"kid": rsKID}, claims(func(c jwt.MapClaims) { c["iss"] = rsaIssuer })))), status: 200, uri: "/api/orders"},
		rawCase{name: "control: a printable forwarded claim passes", req: get("/api/orders",
			bearer(e.signES(t, nil, claims(func(c jwt.MapClaims) { c["email"] = "alice@example.com" })))), status: 200, uri: "/api/orders",
			check: func(t *testing.T, _ answer, got h.Recorded) {
				if got.Header.Get("X-Auth-Email") != "alice@example.com" {
					t.Errorf("X-Auth-Email %q", got.Header.Get("X-Auth-Email"))
				}
			}},
	)
	e.run(t, cases)

	if n := attackerHits.Load(); n != 0 {
		t.Fatalf("the attacker's key server received %d requests; jku/x5u/jwk must never be fetched", n)
	}
	if logs := e.gw.Logs(); strings.Contains(logs, parts[2]) || strings.Contains(logs, g[:64]) {
		t.Fatal("a token appears in the logs")
	}
}

func selfSigned(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
