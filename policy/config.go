package policy

import "time"

// Auth types of a route.
const (
	AuthNone    = "none"
	AuthJWT     = "jwt"
	AuthSession = "session"
	AuthAny     = "any"
)

// RouteConfig is one entry of routes: in the configuration.
type RouteConfig struct {
	// Name labels the route in logs and metrics; defaults to "route-<index>".
	Name string `yaml:"name"`
	// Host is an exact host or "*.example.com" (any subdomain, not the apex);
	// empty matches any host. Matching ignores case, the port and one
	// trailing dot.
	Host string `yaml:"host"`
	// Path is a segment prefix: "/api/orders" matches /api/orders and
	// /api/orders/..., not /api/ordersX. Required; must be canonical.
	Path string `yaml:"path"`
	// Methods allowed; empty allows all. Others get 405 with Allow.
	Methods []string `yaml:"methods"`
	// Upstream is the base URL requests are proxied to (http or https).
	Upstream string `yaml:"upstream"`
	// StripPath forwards only the part of the path below Path.
	StripPath bool `yaml:"strip_path"`
	// Auth is required: none, jwt, session or any.
	Auth string `yaml:"auth"`
	// Roles: the identity must hold at least one (any-of). Empty: no rule.
	Roles []string `yaml:"roles"`
	// Scopes: the identity must hold all of them. Empty: no rule.
	Scopes []string `yaml:"scopes"`
	// StepUp demands a stronger or more recent authentication.
	StepUp StepUpConfig `yaml:"step_up"`
	// LoginURL: browsers without a credential are redirected here (302).
	LoginURL string `yaml:"login_url"`
	// ForwardAuthorization passes the Authorization header upstream;
	// defaults to true.
	ForwardAuthorization *bool `yaml:"forward_authorization"`
	// IssueSession lets the upstream create or elevate sessions with the
	// Portcullis-Session and Portcullis-Session-Update response headers.
	IssueSession bool `yaml:"issue_session"`
	// AllowEncodedSlash keeps %2F inside a segment and forwards it as sent.
	AllowEncodedSlash bool `yaml:"allow_encoded_slash"`
	// Timeout bounds the wait for the upstream's response headers; the body
	// then streams without a limit. Defaults to 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrent caps in-flight upstream requests of this route; more get
	// 503. 0: no cap.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// StepUpConfig is a route's step_up: rule (RFC 9470).
type StepUpConfig struct {
	// ACR lists the acceptable acr values; empty accepts any acr.
	ACR []string `yaml:"acr"`
	// MaxAge > 0 requires now - auth_time <= MaxAge.
	MaxAge time.Duration `yaml:"max_age"`
	// URL: browsers that fail the rule are redirected here (302).
	URL string `yaml:"url"`
}

// Enabled reports whether the rule demands anything.
func (s StepUpConfig) Enabled() bool { return len(s.ACR) > 0 || s.MaxAge > 0 }
