package validator

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// JWTConfig is the jwt: section of the configuration.
type JWTConfig struct {
	Issuers []IssuerConfig `yaml:"issuers"`
	// CacheSize bounds the cache of verified tokens (entries); defaults to
	// 100000. -1 disables the cache.
	CacheSize int `yaml:"cache_size"`
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Issuer is the exact iss value. Required, unique.
	Issuer string `yaml:"issuer"`
	// Audiences: the token's aud must contain at least one. Empty: aud is
	// not checked.
	Audiences []string `yaml:"audiences"`
	// Algorithms is the allow-list of JWS algs; defaults to [RS256, ES256]
	// for key issuers and [HS256] for secret issuers. "none" is never valid;
	// HS* only with Secret.
	Algorithms []string `yaml:"algorithms"`
	// JWKSURL is a remote JWK Set, fetched at start, cached and refreshed.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is the refresh period of JWKSURL; defaults to 15m, min 1s.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// Keys are files holding PEM public keys/certificates or JWK Sets.
	Keys []string `yaml:"keys"`
	// Secret is the HMAC secret for HS256/384/512. An issuer has a secret or
	// keys/jwks_url, never both.
	Secret string `yaml:"secret"`
	// Leeway is the clock skew allowed on exp, nbf and iat; defaults to 30s.
	Leeway time.Duration `yaml:"leeway"`
	// MaxLifetime > 0 rejects tokens whose exp - iat exceeds it (and then
	// requires iat).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
	// RolesClaim is a dotted path to the roles; defaults to "roles".
	RolesClaim string `yaml:"roles_claim"`
	// ScopesClaim is a dotted path to the scopes (a space-separated string or
	// an array); defaults to "scope".
	ScopesClaim string `yaml:"scopes_claim"`
}

// SessionsConfig is the sessions: section of the configuration.
type SessionsConfig struct {
	// CookieName defaults to "__Host-portcullis".
	CookieName string `yaml:"cookie_name"`
	// IdleTimeout: a session unused this long expires; defaults to 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout: a session's lifetime; defaults to 12h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// MaxPerSubject > 0: creating one more session evicts the oldest.
	MaxPerSubject int `yaml:"max_per_subject"`
	// CSRF: an unsafe method authenticated by the cookie must be same-origin;
	// defaults to true.
	CSRF *bool `yaml:"csrf"`
}

// Defaults of the jwt: and sessions: sections.
const (
	DefaultCacheSize       = 100000
	DefaultJWKSRefresh     = 15 * time.Minute
	MinJWKSRefresh         = time.Second
	DefaultLeeway          = 30 * time.Second
	DefaultRolesClaim      = "roles"
	DefaultScopesClaim     = "scope"
	DefaultCookieName      = "__Host-portcullis"
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
)

// asymmetricAlgs and hmacAlgs are the JWS algorithms portcullis verifies.
var (
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	hmacAlgs       = []string{"HS256", "HS384", "HS512"}
)

func isHMAC(alg string) bool { return slices.Contains(hmacAlgs, alg) }

// hmacMinSecret is the minimum secret length of an HMAC alg (RFC 7518 §3.2:
// at least the size of the hash output).
func hmacMinSecret(alg string) int {
	switch alg {
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 32
}

// SetDefaults fills the zero fields of the section and of every issuer.
func (c *JWTConfig) SetDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	for i := range c.Issuers {
		c.Issuers[i].SetDefaults()
	}
}

// SetDefaults fills the zero fields of one issuer.
func (c *IssuerConfig) SetDefaults() {
	if len(c.Algorithms) == 0 {
		if c.Secret != "" {
			c.Algorithms = []string{"HS256"}
		} else {
			c.Algorithms = []string{"RS256", "ES256"}
		}
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.ScopesClaim == "" {
		c.ScopesClaim = DefaultScopesClaim
	}
}

// Validate reports every invalid field as "key.path: message" (the path is
// relative to the jwt: section), joined with errors.Join. It reads no file
// and opens no connection: key files are loaded by NewJWT.
func (c *JWTConfig) Validate() error {
	var errs []error
	if c.CacheSize < -1 || c.CacheSize == 0 {
		errs = append(errs, fmt.Errorf("cache_size: must be -1 (off) or > 0, got %d", c.CacheSize))
	}
	seen := make(map[string]int, len(c.Issuers))
	for i := range c.Issuers {
		ic := &c.Issuers[i]
		p := fmt.Sprintf("issuers[%d]", i)
		if ic.Issuer != "" {
			if _, dup := seen[ic.Issuer]; dup {
				errs = append(errs, fmt.Errorf("%s.issuer: duplicate", p))
			}
			seen[ic.Issuer] = i
		}
		errs = append(errs, ic.validate(p)...)
	}
	return errors.Join(errs...)
}

func (c *IssuerConfig) validate(p string) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf(p+key+": "+format, args...))
	}
	if c.Issuer == "" {
		add(".issuer", "required")
	} else if hasControl(c.Issuer) {
		add(".issuer", "must not contain control characters")
	}
	for i, a := range c.Audiences {
		if a == "" {
			add(fmt.Sprintf(".audiences[%d]", i), "must not be empty")
		}
	}
	hasKeys := len(c.Keys) > 0 || c.JWKSURL != ""
	if c.Secret != "" && hasKeys {
		add(".secret", "an issuer has a secret or keys/jwks_url, never both")
	}
	if c.Secret == "" && !hasKeys {
		add("", "needs keys, jwks_url or secret")
	}
	if len(c.Algorithms) == 0 {
		add(".algorithms", "must not be empty")
	}
	for i, a := range c.Algorithms {
		key := fmt.Sprintf(".algorithms[%d]", i)
		switch {
		case strings.EqualFold(a, "none"):
			add(key, "%q is never allowed", a)
		case isHMAC(a):
			if c.Secret == "" {
				add(key, "%s needs a secret", a)
			} else if len(c.Secret) < hmacMinSecret(a) {
				add(".secret", "%s needs a secret of at least %d bytes", a, hmacMinSecret(a))
			}
		case slices.Contains(asymmetricAlgs, a):
			if c.Secret != "" && !hasKeys {
				add(key, "%s needs keys or jwks_url", a)
			}
		default:
			add(key, "unknown algorithm %q (known: %s, %s)", a,
				strings.Join(asymmetricAlgs, ", "), strings.Join(hmacAlgs, ", "))
		}
	}
	if c.JWKSURL != "" {
		if err := validateJWKSURL(c.JWKSURL); err != nil {
			add(".jwks_url", "%v", err)
		}
	}
	if c.JWKSRefresh < MinJWKSRefresh {
		add(".jwks_refresh", "must be at least %s, got %q", MinJWKSRefresh, c.JWKSRefresh)
	}
	for i, k := range c.Keys {
		if strings.TrimSpace(k) == "" {
			add(fmt.Sprintf(".keys[%d]", i), "must not be empty")
		}
	}
	if c.Leeway < 0 {
		add(".leeway", "must be >= 0, got %q", c.Leeway)
	}
	if c.MaxLifetime < 0 {
		add(".max_lifetime", "must be >= 0, got %q", c.MaxLifetime)
	}
	if !validClaimPath(c.RolesClaim) {
		add(".roles_claim", "must be a claim name or a dotted path such as realm_access.roles, got %q", c.RolesClaim)
	}
	if !validClaimPath(c.ScopesClaim) {
		add(".scopes_claim", "must be a claim name or a dotted path, got %q", c.ScopesClaim)
	}
	return errs
}

// validateJWKSURL requires an absolute https URL, or http to a loopback
// host: keys fetched over plain HTTP could be replaced in transit.
func validateJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("must be an absolute https URL, got %q", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip, err := netip.ParseAddr(h); err == nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("must use https (plain http only to a loopback address)")
	default:
		return fmt.Errorf("must be an absolute https URL, got scheme %q", u.Scheme)
	}
}

func validClaimPath(p string) bool {
	if p == "" {
		return false
	}
	for seg := range strings.SplitSeq(p, ".") {
		if seg == "" {
			return false
		}
	}
	return true
}

// SetDefaults fills the zero fields of the sessions: section.
func (c *SessionsConfig) SetDefaults() {
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.CSRF == nil {
		on := true
		c.CSRF = &on
	}
}

// Validate reports every invalid field as "key.path: message" (relative to
// the sessions: section), joined with errors.Join.
func (c *SessionsConfig) Validate() error {
	var errs []error
	if !validCookieName(c.CookieName) {
		errs = append(errs, fmt.Errorf("cookie_name: must be a non-empty cookie name token, got %q", c.CookieName))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("idle_timeout: must be > 0, got %q", c.IdleTimeout))
	}
	if c.AbsoluteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("absolute_timeout: must be > 0, got %q", c.AbsoluteTimeout))
	}
	if c.MaxPerSubject < 0 {
		errs = append(errs, fmt.Errorf("max_per_subject: must be >= 0, got %d", c.MaxPerSubject))
	}
	return errors.Join(errs...)
}

// CSRFEnabled reports whether cookie-authenticated unsafe methods must be
// same-origin: true unless csrf is explicitly false.
func (c SessionsConfig) CSRFEnabled() bool { return c.CSRF == nil || *c.CSRF }

// validCookieName reports whether name is an RFC 6265 cookie-name (an HTTP
// token).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
