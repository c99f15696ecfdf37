package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(h.Binary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestCheckReportsEveryErrorWithFileLineAndPath(t *testing.T) {
	dir := t.TempDir()
	path := h.WriteFile(t, dir, "config.yaml", `server:
  listen: ":8080"
  lissen: ":8081"
jwt:
  issuers:
    - issuer: "https://idp/"
      algorithms: [none]
      keys: [k.pem]
routes:
  - name: a
    path: /a
    upstream: "http://127.0.0.1:1"
  - name: b
    path: /b
    upstream: "http://127.0.0.1:1"
    auth: magic
`)
	_, stderr, code := runCLI(t, "check", "--config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		path + `:3: server.lissen: unknown key (did you mean "listen"?)`,
		path + `:7: jwt.issuers[0].algorithms[0]: "none" is never allowed`,
		path + `:10: routes[0].auth: is required (one of none, jwt, session, any)`,
		path + `:16: routes[1].auth: must be one of none, jwt, session, any`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing line %q in:\n%s", want, stderr)
		}
	}
}

func TestCheckUnsetEnvironmentVariable(t *testing.T) {
	dir := t.TempDir()
	path := h.WriteFile(t, dir, "config.yaml", "admin:\n  token: \"${PORTCULLIS_TEST_SURELY_UNSET}\"\nroutes:\n  - {path: /, upstream: \"http://127.0.0.1:1\", auth: none}\n")
	_, stderr, code := runCLI(t, "check", "--config", path)
	if code != 1 || !strings.Contains(stderr, path+":2: admin.token: environment variable PORTCULLIS_TEST_SURELY_UNSET is not set") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestCheckPrintsTheRouteTable(t *testing.T) {
	stdout, stderr, code := runCLI(t, "check", "--config", filepath.Join(h.Root(), "config.example.yaml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"NAME", "orders", "/api/orders", "GET,POST", "jwt", "acr=mfa", "ok (5 routes, store memory)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("route table lacks %q:\n%s", want, stdout)
		}
	}
}

func TestTokenCommandMintsAVerifiableJWT(t *testing.T) {
	dir := t.TempDir()
	k := h.NewES256(t, dir, "dev")
	stdout, stderr, code := runCLI(t, "token", "--key", k.Private, "--sub", "alice", "--iss", "https://idp/", "--aud", "a,b",
		"--roles", "r1,r2", "--scope", "read write", "--acr", "mfa", "--amr", "pwd,otp", "--auth-time", "1700000000", "--ttl", "5m", "--jti", "j1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pub, err := keys.ParsePublicKeys(mustRead(t, k.Public))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(strings.TrimSpace(stdout), claims, func(*jwt.Token) (any, error) { return pub[0].Public, nil },
		jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("the minted token does not verify: %v", err)
	}
	if tok.Header["kid"] != pub[0].ID {
		t.Errorf("kid %v, want the RFC 7638 thumbprint %s", tok.Header["kid"], pub[0].ID)
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if exp.Sub(iat.Time).Minutes() != 5 {
		t.Errorf("exp - iat = %s, want 5m", exp.Sub(iat.Time))
	}
	for k, want := range map[string]any{"sub": "alice", "iss": "https://idp/", "scope": "read write", "acr": "mfa", "jti": "j1", "auth_time": float64(1700000000)} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if _, _, code := runCLI(t, "token", "--key", k.Private); code == 0 {
		t.Error("token without --sub succeeded")
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := runCLI(t, "version")
	if code != 0 || !regexp.MustCompile(`(?m)^portcullis \S+\ncommit: \S+`).MatchString(stdout) || !strings.Contains(stdout, "go: go1.") {
		t.Fatalf("exit %d, output:\n%s", code, stdout)
	}
}

// TestExampleConfigServes runs config.example.yaml as shipped (only the
// listen addresses moved to free ports) with a token from `portcullis
// token` and the demo key in examples/, as README tells a new user to.
func TestExampleConfigServes(t *testing.T) {
	data := string(mustRead(t, filepath.Join(h.Root(), "config.example.yaml")))
	up := h.NewUpstream(t)
	data = strings.Replace(data, `listen: ":8080"`, `listen: "127.0.0.1:0"`, 1)
	data = strings.Replace(data, `listen: "127.0.0.1:9090"`, `listen: "127.0.0.1:0"`, 1)
	data = strings.ReplaceAll(data, "http://127.0.0.1:9001", up.URL)
	// Keep relative key paths working: the config lives next to examples/.
	path := filepath.Join(h.Root(), "config.e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+".yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	gw := h.StartFile(t, path)
	tok, stderr, code := runCLI(t, "token", "--key", filepath.Join(h.Root(), "examples", "demo-signing-key.pem"), "--sub", "alice", "--aud", "orders-api", "--roles", "orders:read")
	if code != 0 {
		t.Fatal(stderr)
	}
	resp, body := h.Get(t, gw.URL+"/api/orders", "Authorization", "Bearer "+strings.TrimSpace(tok))
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if got := up.Last(t).Header.Get("X-Auth-Subject"); got != "alice" {
		t.Fatalf("X-Auth-Subject %q", got)
	}
	gw.WaitReady(t)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
