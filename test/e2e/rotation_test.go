package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const rotationConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
  type: memory
tokens:
  issuer: "https://gw.test/"
  audiences: [api]
  signing_key: "{{.SigningKey}}"
  access_ttl: 2m
routes:
  - name: api
    path: /api
    upstream: "{{.Up}}"
    auth: jwt
`

// refresh trades a refresh token for a fresh pair through the token endpoint.
func refresh(t *testing.T, gw *h.Gateway, rt string) (access, next string) {
	t.Helper()
	req, _ := http.NewRequest("POST", gw.URL+"/.portcullis/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body := h.Do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("token endpoint: %d %s", resp.StatusCode, body)
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken, tr.RefreshToken
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := parsed.Header["kid"].(string)
	return kid
}

// TestSigningKeyRotation: a new tokens.signing_key applied by SIGHUP signs
// new access tokens, while the old key stays served and accepted so the
// tokens it signed keep working until they expire.
func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := h.NewUpstream(t)
	a, b := h.NewES256(t, dir, "key-a"), h.NewES256(t, dir, "key-b")
	cfgPath := h.WriteFile(t, dir, "rot.yaml", h.Config(t, rotationConfig, map[string]any{"SigningKey": a.Private, "Up": up.URL}))
	gw := h.StartFile(t, cfgPath)

	fam := createSession(t, gw, `{"subject":"alice","roles":["user"],"mode":"tokens"}`)
	oldAccess, rt := refresh(t, gw, fam.RefreshToken)
	if kidOf(t, oldAccess) != a.Signer.Key().ID {
		t.Fatal("the first access token is not signed with key A")
	}

	if err := os.WriteFile(cfgPath, []byte(h.Config(t, rotationConfig, map[string]any{"SigningKey": b.Private, "Up": up.URL})), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.Signal(syscall.SIGHUP)
	var newAccess string
	h.Eventually(t, 10*time.Second, "access tokens signed with key B after SIGHUP", func() bool {
		newAccess, rt = refresh(t, gw, rt)
		return kidOf(t, newAccess) == b.Signer.Key().ID
	})

	for name, tok := range map[string]string{"old (key A)": oldAccess, "new (key B)": newAccess} {
		if resp, _ := h.Get(t, gw.URL+"/api", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
			t.Errorf("%s access token after the rotation: %d", name, resp.StatusCode)
		}
	}
	_, jwks := h.Get(t, gw.URL+"/.portcullis/jwks.json")
	set, err := keys.ParseJWKSet(jwks)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, k := range set {
		served[k.ID] = true
	}
	if !served[a.Signer.Key().ID] || !served[b.Signer.Key().ID] {
		t.Fatalf("JWKS after rotation serves %v, want both keys", served)
	}

	// Another node, or this one after a restart, knows only its
	// configuration: tokens.previous_keys keeps key A accepted there too.
	withPrev := strings.Replace(h.Config(t, rotationConfig, map[string]any{"SigningKey": b.Private, "Up": up.URL}),
		"  access_ttl: 2m\n", "  access_ttl: 2m\n  previous_keys: [\""+a.Public+"\"]\n", 1)
	restarted := h.Start(t, dir, withPrev)
	if resp, _ := h.Get(t, restarted.URL+"/api", "Authorization", "Bearer "+oldAccess); resp.StatusCode != 200 {
		t.Fatalf("a node started with previous_keys refuses a token of the previous key: %d", resp.StatusCode)
	}
	plain := h.Start(t, dir, h.Config(t, rotationConfig, map[string]any{"SigningKey": b.Private, "Up": up.URL}))
	if resp, _ := h.Get(t, plain.URL+"/api", "Authorization", "Bearer "+oldAccess); resp.StatusCode != 401 {
		t.Fatalf("a node that never knew key A accepts its token: %d", resp.StatusCode)
	}
}
