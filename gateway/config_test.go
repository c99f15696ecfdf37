package gateway

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const minimal = `
routes:
  - path: /
    upstream: "http://127.0.0.1:1"
    auth: none
`

func configErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range flatten(err) {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("error %v is not a *ConfigError", e)
		}
		out = append(out, e.Error())
	}
	return out
}

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig("c.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != ":8080" || cfg.Admin.Listen != "127.0.0.1:9090" || cfg.Store.Type != "memory" ||
		cfg.Sessions.CookieName != "__Host-portcullis" || cfg.Identity.StripPrefix != "X-Auth-" ||
		cfg.Tokens.RefreshCookie != "__Secure-portcullis-refresh" || cfg.Server.MaxHeaderBytes != 32768 ||
		cfg.Revocation.FailMode != "closed" || cfg.Tokens.Enabled() {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key with suggestion", "server:\n  lsten: x\n" + minimal, []string{`c.yaml:2: server.lsten: unknown key (did you mean "listen"?)`}},
		{"duplicate key", "server:\n  listen: a\n  listen: b\n" + minimal, []string{"c.yaml:3"}},
		{"bad duration names the key", "server:\n  idle_timeout: 30\n" + minimal, []string{`c.yaml:2: server.idle_timeout: must be a duration such as "30s" or "15m"`}},
		{"route without auth", "routes:\n  - path: /\n    upstream: \"http://127.0.0.1:1\"\n", []string{"c.yaml:2: routes[0].auth: is required (one of none, jwt, session, any)"}},
		{"no routes", "server:\n  listen: \":1\"\n", []string{"routes: at least one route is required"}},
		{"identity header outside the strip prefix", "identity:\n  headers: {email: X-Email}\n" + minimal, []string{"c.yaml:2: identity.headers.email:"}},
		{"jwt route with no issuer", "routes:\n  - path: /\n    upstream: \"http://127.0.0.1:1\"\n    auth: jwt\n", []string{"routes[0].auth: jwt needs at least one jwt.issuers entry"}},
		{"tokens key must not be an IdP issuer", "tokens:\n  signing_key: k.pem\n  issuer: https://idp/\njwt:\n  issuers:\n    - {issuer: \"https://idp/\", keys: [k.pub]}\n" + minimal,
			[]string{"tokens.issuer:"}},
		{"refresh cookie prefix", "tokens:\n  signing_key: k.pem\n  refresh_cookie: rt\n" + minimal, []string{"c.yaml:3: tokens.refresh_cookie: must start with __Secure-"}},
		{"trusted proxy CIDR", "server:\n  trusted_proxies: [\"10.0.0.0/33\"]\n" + minimal, []string{"c.yaml:2: server.trusted_proxies[0]:"}},
		{"not a mapping", "- a\n- b\n", []string{"the document must be a mapping"}},
		{"syntax error", "server: [\n", []string{"c.yaml:"}},
		{"several at once", "server:\n  lsten: x\nstore:\n  type: mongo\n" + minimal, []string{"server.lsten", "c.yaml:4: store.type: must be one of memory, redis"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			all := strings.Join(configErrors(t, err), "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("errors lack %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("PC_TEST_TOKEN", "s3cret")
	t.Setenv("PC_TEST_PORT", "8443")
	t.Setenv("PC_TEST_INJECT", "x\"\nrouts: {}")
	cfg, err := ParseConfig("c.yaml", []byte(`
server:
  listen: ":${PC_TEST_PORT}"
  max_header_count: ${PC_TEST_COUNT:-50}
admin:
  token: "${PC_TEST_TOKEN}"
identity:
  strip_prefix: "${PC_TEST_UNSET_PREFIX:-X-Auth-}"
tokens:
  issuer: "${PC_TEST_INJECT}"
`+minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != ":8443" || cfg.Admin.Token != "s3cret" || cfg.Server.MaxHeaderCount != 50 || cfg.Identity.StripPrefix != "X-Auth-" {
		t.Fatalf("expansion: %+v %+v", cfg.Server, cfg.Admin)
	}
	if cfg.Tokens.Issuer != "x\"\nrouts: {}" {
		t.Fatalf("a variable's value changed the document: issuer %q", cfg.Tokens.Issuer)
	}
	_, err = ParseConfig("c.yaml", []byte("admin:\n  token: \"${PC_TEST_SURELY_UNSET}\"\n"+minimal))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: admin.token: environment variable PC_TEST_SURELY_UNSET is not set") {
		t.Fatalf("unset variable: %v", err)
	}
}

func TestRelativePathsResolveAgainstTheConfigFile(t *testing.T) {
	cfg, err := ParseConfig(filepath.Join("etc", "pc", "c.yaml"), []byte(`
jwt:
  issuers:
    - issuer: "https://idp/"
      keys: ["keys/idp.pem", "/abs/idp.pem"]
tokens:
  signing_key: |
    -----BEGIN PRIVATE KEY-----
    inline
    -----END PRIVATE KEY-----
`+minimal))
	if err != nil {
		t.Fatal(err)
	}
	ks := cfg.JWT.Issuers[0].Keys
	if ks[0] != filepath.Join("etc", "pc", "keys", "idp.pem") || ks[1] != "/abs/idp.pem" {
		t.Fatalf("keys %q", ks)
	}
	if !strings.HasPrefix(cfg.Tokens.SigningKey, "-----BEGIN") {
		t.Fatalf("inline PEM was treated as a path: %q", cfg.Tokens.SigningKey)
	}
}
