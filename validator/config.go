package validator

import "time"

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
