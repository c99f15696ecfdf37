package validator

import (
	"strings"
	"testing"
	"time"
)

func TestJWTConfigDefaults(t *testing.T) {
	t.Parallel()
	c := JWTConfig{Issuers: []IssuerConfig{
		{Issuer: "a", JWKSURL: "https://a.example/jwks"},
		{Issuer: "b", Secret: testSecret},
	}}
	c.SetDefaults()
	if c.CacheSize != DefaultCacheSize {
		t.Errorf("cache_size = %d", c.CacheSize)
	}
	a, b := c.Issuers[0], c.Issuers[1]
	if strings.Join(a.Algorithms, ",") != "RS256,ES256" || strings.Join(b.Algorithms, ",") != "HS256" {
		t.Errorf("algorithms = %v, %v", a.Algorithms, b.Algorithms)
	}
	if a.JWKSRefresh != 15*time.Minute || a.Leeway != 30*time.Second || a.RolesClaim != "roles" || a.ScopesClaim != "scope" {
		t.Errorf("defaults = %+v", a)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestJWTConfigValidate(t *testing.T) {
	t.Parallel()
	ok := func() IssuerConfig {
		return IssuerConfig{Issuer: "https://idp/", Keys: []string{"k.pem"}}
	}
	tests := []struct {
		name string
		mod  func(c *JWTConfig)
		want []string // every message must appear; nil: valid
	}{
		{"valid", func(c *JWTConfig) {}, nil},
		{"none is never allowed", func(c *JWTConfig) {
			c.Issuers[0].Algorithms = []string{"RS256", "none"}
		}, []string{`issuers[0].algorithms[1]: "none" is never allowed`}},
		{"None in any case", func(c *JWTConfig) {
			c.Issuers[0].Algorithms = []string{"NoNe"}
		}, []string{`issuers[0].algorithms[0]: "NoNe" is never allowed`}},
		{"secret and keys", func(c *JWTConfig) {
			c.Issuers = append(c.Issuers, IssuerConfig{Issuer: "b", Secret: testSecret, JWKSURL: "https://b/jwks"})
		}, []string{`issuers[1].secret: an issuer has a secret or keys/jwks_url, never both`}},
		{"HS with keys", func(c *JWTConfig) {
			c.Issuers[0].Algorithms = []string{"HS256"}
		}, []string{`issuers[0].algorithms[0]: HS256 needs a secret`}},
		{"RS with a secret", func(c *JWTConfig) {
			c.Issuers[0] = IssuerConfig{Issuer: "s", Secret: testSecret, Algorithms: []string{"RS256"}}
		}, []string{`issuers[0].algorithms[0]: RS256 needs keys or jwks_url`}},
		{"short secret", func(c *JWTConfig) {
			c.Issuers[0] = IssuerConfig{Issuer: "s", Secret: "short", Algorithms: []string{"HS256"}}
		}, []string{`issuers[0].secret: HS256 needs a secret of at least 32 bytes`}},
		{"duplicate issuer", func(c *JWTConfig) {
			c.Issuers = append(c.Issuers, ok(), ok())
		}, []string{`issuers[1].issuer: duplicate`, `issuers[2].issuer: duplicate`}},
		{"missing issuer and keys", func(c *JWTConfig) {
			c.Issuers[0] = IssuerConfig{Algorithms: []string{"RS256"}}
		}, []string{`issuers[0].issuer: required`, `issuers[0]: needs keys, jwks_url or secret`}},
		{"unknown alg", func(c *JWTConfig) {
			c.Issuers[0].Algorithms = []string{"rs256"}
		}, []string{`issuers[0].algorithms[0]: unknown algorithm "rs256"`}},
		{"refresh too short", func(c *JWTConfig) {
			c.Issuers[0].JWKSURL = "https://idp/jwks"
			c.Issuers[0].JWKSRefresh = 500 * time.Millisecond
		}, []string{`issuers[0].jwks_refresh: must be at least 1s, got "500ms"`}},
		{"plain http jwks", func(c *JWTConfig) {
			c.Issuers[0].JWKSURL = "http://idp.example.com/jwks"
		}, []string{`issuers[0].jwks_url: must use https`}},
		{"relative jwks", func(c *JWTConfig) {
			c.Issuers[0].JWKSURL = "/jwks"
		}, []string{`issuers[0].jwks_url: must be an absolute https URL`}},
		{"negative durations", func(c *JWTConfig) {
			c.Issuers[0].Leeway = -time.Second
			c.Issuers[0].MaxLifetime = -time.Second
		}, []string{`issuers[0].leeway: must be >= 0`, `issuers[0].max_lifetime: must be >= 0`}},
		{"bad claim paths", func(c *JWTConfig) {
			c.Issuers[0].RolesClaim = "realm_access..roles"
			c.Issuers[0].ScopesClaim = ".scope"
		}, []string{`issuers[0].roles_claim: must be`, `issuers[0].scopes_claim: must be`}},
		{"empty audience and key", func(c *JWTConfig) {
			c.Issuers[0].Audiences = []string{"a", ""}
			c.Issuers[0].Keys = []string{""}
		}, []string{`issuers[0].audiences[1]: must not be empty`, `issuers[0].keys[0]: must not be empty`}},
		{"cache size", func(c *JWTConfig) { c.CacheSize = -2 }, []string{`cache_size: must be -1 (off) or > 0, got -2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := JWTConfig{Issuers: []IssuerConfig{ok()}}
			tt.mod(&c)
			c.SetDefaults()
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: nil, want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestJWTConfigValidateIsPure(t *testing.T) {
	t.Parallel()
	// A key file that does not exist is NewJWT's business, not Validate's.
	c := JWTConfig{Issuers: []IssuerConfig{{Issuer: "x", Keys: []string{"/does/not/exist.pem"}}}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	_, err := NewJWT(t.Context(), c, JWTOptions{})
	if err == nil || !strings.Contains(err.Error(), `"/does/not/exist.pem"`) {
		t.Fatalf("NewJWT error %v does not name the file", err)
	}
}

func TestSessionsConfig(t *testing.T) {
	t.Parallel()
	var c SessionsConfig
	c.SetDefaults()
	if c.CookieName != "__Host-portcullis" || c.IdleTimeout != 30*time.Minute || c.AbsoluteTimeout != 12*time.Hour || !c.CSRFEnabled() {
		t.Fatalf("defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	off := false
	if (SessionsConfig{CSRF: &off}).CSRFEnabled() {
		t.Error("csrf: false is enabled")
	}
	bad := SessionsConfig{CookieName: "a b", IdleTimeout: -1, AbsoluteTimeout: -1, MaxPerSubject: -1}
	err := bad.Validate()
	for _, w := range []string{"cookie_name: ", "idle_timeout: must be > 0", "absolute_timeout: must be > 0", "max_per_subject: must be >= 0"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}
