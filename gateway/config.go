package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/policy"
	"github.com/portcullis/portcullis/store"
	"github.com/portcullis/portcullis/validator"
)

// Config is the whole configuration file. Each section is owned by the
// package that uses it; this type composes them and adds the sections that
// belong to the gateway itself.
type Config struct {
	Server     ServerConfig             `yaml:"server"`
	Admin      AdminConfig              `yaml:"admin"`
	Store      store.Config             `yaml:"store"`
	JWT        validator.JWTConfig      `yaml:"jwt"`
	Sessions   validator.SessionsConfig `yaml:"sessions"`
	Revocation denylist.Config          `yaml:"revocation"`
	Tokens     TokensConfig             `yaml:"tokens"`
	Identity   IdentityConfig           `yaml:"identity"`
	Log        LogConfig                `yaml:"log"`
	Tracing    TracingConfig            `yaml:"tracing"`
	Routes     []policy.RouteConfig     `yaml:"routes"`

	// path is the file the config was loaded from, for messages.
	path string
	// routes is the compiled route table (set by LoadConfig).
	routes *policy.Table
	// trusted is Server.TrustedProxies parsed.
	trusted []netip.Prefix
}

// ServerConfig is the server: section: the main listener.
type ServerConfig struct {
	// Listen is the main listener's address; defaults to ":8080".
	Listen string `yaml:"listen"`
	// TLS: with both files set the listener serves HTTPS (HTTP/2 on).
	TLS TLSConfig `yaml:"tls"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris);
	// defaults to 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes idle keep-alive connections; defaults to 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and header block; larger gets
	// 431. Defaults to 32768.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeaderCount bounds the number of request header fields; more gets
	// 431. Defaults to 100.
	MaxHeaderCount int `yaml:"max_header_count"`
	// TrustedProxies are CIDRs whose X-Forwarded-For, X-Forwarded-Proto,
	// X-Forwarded-Host and X-Request-Id are believed. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ShutdownTimeout is how long SIGTERM waits for in-flight requests to
	// finish; defaults to 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ShutdownDelay is how long /readyz reports 503 before the listener
	// stops accepting, so load balancers take the node out; defaults to 0s.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
	// UpstreamMaxIdlePerHost is the idle connection pool per upstream host;
	// defaults to 256 (Go's default of 2 opens a connection per request
	// under load).
	UpstreamMaxIdlePerHost int `yaml:"upstream_max_idle_per_host"`
}

// TLSConfig names a certificate and its key, both PEM files.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// AdminConfig is the admin: section: health, metrics and the admin API.
type AdminConfig struct {
	// Listen defaults to "127.0.0.1:9090"; keep it on loopback or a private
	// network.
	Listen string `yaml:"listen"`
	// Token is the bearer token of /v1/* and /debug/pprof/*; empty disables
	// them. Compared in constant time.
	Token string `yaml:"token"`
}

// TokensConfig is the tokens: section: the gateway as token issuer. It is
// off while SigningKey is empty.
type TokensConfig struct {
	// Issuer is the iss of minted access tokens; defaults to
	// "https://gateway.example.com/" (set your own).
	Issuer string `yaml:"issuer"`
	// Audiences are the aud of minted access tokens; empty: no aud.
	Audiences []string `yaml:"audiences"`
	// SigningKey is an ES256 or EdDSA private key: a PEM file path, or the
	// PEM itself (e.g. from ${VAR}).
	SigningKey string `yaml:"signing_key"`
	// PreviousKeys are earlier signing keys (PEM public or private key
	// files, or inline PEM) still published and accepted, never used to
	// sign: list the old key here when rotating so that every node, and a
	// node restarted mid-rotation, keeps accepting the tokens it signed
	// until they expire. Default: none.
	PreviousKeys []string `yaml:"previous_keys"`
	// AccessTTL is the lifetime of a minted access JWT; defaults to 5m.
	AccessTTL time.Duration `yaml:"access_ttl"`
	// RefreshTTL is the absolute lifetime of a refresh family; defaults to 720h.
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// RefreshIdle: a refresh token unused this long expires; defaults to 168h.
	RefreshIdle time.Duration `yaml:"refresh_idle"`
	// ReuseGrace: a just-rotated refresh token may be presented again this
	// long and gets the same successor; defaults to 10s.
	ReuseGrace time.Duration `yaml:"reuse_grace"`
	// RefreshCookie defaults to "__Secure-portcullis-refresh".
	RefreshCookie string `yaml:"refresh_cookie"`
}

// Enabled reports whether the gateway mints tokens.
func (t TokensConfig) Enabled() bool { return t.SigningKey != "" }

// IdentityConfig is the identity: section: what the upstream receives.
type IdentityConfig struct {
	// StripPrefix: every incoming header with this prefix (case-insensitive,
	// "_" counted as "-") is removed; defaults to "X-Auth-".
	StripPrefix string `yaml:"strip_prefix"`
	// Headers maps extra JWT claims (or session attributes) to headers, e.g.
	// {email: X-Auth-Email}. Header names must carry StripPrefix.
	Headers map[string]string `yaml:"headers"`
	// Assertion: with Header set, a signed identity JWT for upstreams.
	Assertion AssertionConfig `yaml:"assertion"`
}

// AssertionConfig is identity.assertion: a short-lived JWT the gateway signs
// for each authenticated request (cached per identity).
type AssertionConfig struct {
	// Header carrying the assertion, e.g. X-Auth-Assertion; empty: off.
	Header string `yaml:"header"`
	// Key is an ES256 or EdDSA private key: a PEM file path or the PEM.
	Key string `yaml:"key"`
	// TTL of an assertion; defaults to 60s.
	TTL time.Duration `yaml:"ttl"`
	// Audience is the aud claim; empty: none.
	Audience string `yaml:"audience"`
	// PerRequest signs one assertion per request carrying its request id
	// (rid) instead of caching per identity. Costs a signature per request.
	PerRequest bool `yaml:"per_request"`
}

// LogConfig is the log: section.
type LogConfig struct {
	// Level is debug, info, warn or error; defaults to info.
	Level string `yaml:"level"`
	// Access writes one JSON line per request; defaults to true.
	Access *bool `yaml:"access"`
}

// AccessEnabled reports whether access logging is on.
func (l LogConfig) AccessEnabled() bool { return l.Access == nil || *l.Access }

func (c *Config) setDefaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = ":8080"
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = 5 * time.Second
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = 120 * time.Second
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = 32768
	}
	if s.MaxHeaderCount == 0 {
		s.MaxHeaderCount = 100
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = 30 * time.Second
	}
	if s.UpstreamMaxIdlePerHost == 0 {
		s.UpstreamMaxIdlePerHost = 256
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = "127.0.0.1:9090"
	}
	c.Store.SetDefaults()
	c.JWT.SetDefaults()
	c.Sessions.SetDefaults()
	c.Revocation.SetDefaults()
	t := &c.Tokens
	if t.Issuer == "" {
		t.Issuer = "https://gateway.example.com/"
	}
	if t.AccessTTL == 0 {
		t.AccessTTL = 5 * time.Minute
	}
	if t.RefreshTTL == 0 {
		t.RefreshTTL = 720 * time.Hour
	}
	if t.RefreshIdle == 0 {
		t.RefreshIdle = 168 * time.Hour
	}
	if t.ReuseGrace == 0 {
		t.ReuseGrace = 10 * time.Second
	}
	if t.RefreshCookie == "" {
		t.RefreshCookie = "__Secure-portcullis-refresh"
	}
	if c.Identity.StripPrefix == "" {
		c.Identity.StripPrefix = "X-Auth-"
	}
	if c.Identity.Assertion.TTL == 0 {
		c.Identity.Assertion.TTL = 60 * time.Second
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.Tracing.setDefaults()
}

// validate checks the gateway's own sections and every package's section;
// messages are "key.path: message" relative to the document root.
func (c *Config) validate() error {
	var errs []error
	add := func(prefix string, err error) {
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%s%s", prefix, e.Error()))
		}
	}
	s := c.Server
	if s.TLS.CertFile != "" && s.TLS.KeyFile == "" {
		errs = append(errs, errors.New("server.tls.key_file: required when cert_file is set"))
	}
	if s.TLS.KeyFile != "" && s.TLS.CertFile == "" {
		errs = append(errs, errors.New("server.tls.cert_file: required when key_file is set"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"server.read_header_timeout", s.ReadHeaderTimeout},
		{"server.idle_timeout", s.IdleTimeout},
		{"server.shutdown_timeout", s.ShutdownTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must be > 0, got %q", d.key, d.v))
		}
	}
	if s.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("server.shutdown_delay: must be >= 0, got %q", s.ShutdownDelay))
	}
	if s.MaxHeaderBytes < 1024 {
		errs = append(errs, fmt.Errorf("server.max_header_bytes: must be >= 1024, got %d", s.MaxHeaderBytes))
	}
	if s.MaxHeaderCount < 1 {
		errs = append(errs, fmt.Errorf("server.max_header_count: must be >= 1, got %d", s.MaxHeaderCount))
	}
	if s.UpstreamMaxIdlePerHost < 1 {
		errs = append(errs, fmt.Errorf("server.upstream_max_idle_per_host: must be >= 1, got %d", s.UpstreamMaxIdlePerHost))
	}
	c.trusted = c.trusted[:0]
	for i, cidr := range s.TrustedProxies {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			if a, aerr := netip.ParseAddr(cidr); aerr == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server.trusted_proxies[%d]: must be a CIDR such as 10.0.0.0/8, got %q", i, cidr))
			continue
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	if c.Server.Listen == c.Admin.Listen && !strings.HasSuffix(c.Server.Listen, ":0") {
		errs = append(errs, fmt.Errorf("admin.listen: must differ from server.listen (%q)", c.Server.Listen))
	}
	add("store.", c.Store.Validate())
	add("jwt.", c.JWT.Validate())
	add("sessions.", c.Sessions.Validate())
	add("revocation.", c.Revocation.Validate())
	t := c.Tokens
	if t.Enabled() {
		if t.Issuer == "" {
			errs = append(errs, errors.New("tokens.issuer: required when signing_key is set"))
		}
		for i, is := range c.JWT.Issuers {
			if is.Issuer == t.Issuer {
				errs = append(errs, fmt.Errorf("tokens.issuer: %q is also jwt.issuers[%d].issuer; the gateway's issuer must be its own", t.Issuer, i))
			}
		}
		if !strings.HasPrefix(t.RefreshCookie, "__Secure-") && !strings.HasPrefix(t.RefreshCookie, "__Host-") {
			errs = append(errs, fmt.Errorf("tokens.refresh_cookie: must start with __Secure-, got %q", t.RefreshCookie))
		}
		if strings.HasPrefix(t.RefreshCookie, "__Host-") {
			errs = append(errs, errors.New("tokens.refresh_cookie: must not start with __Host-: its Path is /.portcullis/token"))
		}
		if t.RefreshCookie == c.Sessions.CookieName {
			errs = append(errs, errors.New("tokens.refresh_cookie: must differ from sessions.cookie_name"))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"tokens.access_ttl", t.AccessTTL}, {"tokens.refresh_ttl", t.RefreshTTL},
		{"tokens.refresh_idle", t.RefreshIdle}, {"tokens.reuse_grace", t.ReuseGrace},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be > 0, got %q", d.key, d.v))
		}
	}
	id := c.Identity
	if !headerToken.MatchString(id.StripPrefix) {
		errs = append(errs, fmt.Errorf("identity.strip_prefix: must be a header name prefix such as X-Auth-, got %q", id.StripPrefix))
	}
	names := make([]string, 0, len(id.Headers))
	for k := range id.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, claim := range names {
		h := id.Headers[claim]
		if !headerToken.MatchString(h) {
			errs = append(errs, fmt.Errorf("identity.headers.%s: %q is not a valid header name", claim, h))
		} else if !hasPrefixFold(h, id.StripPrefix) {
			errs = append(errs, fmt.Errorf("identity.headers.%s: %q must start with identity.strip_prefix %q, or a client could supply it", claim, h, id.StripPrefix))
		}
	}
	a := id.Assertion
	if a.Header != "" {
		if !headerToken.MatchString(a.Header) || !hasPrefixFold(a.Header, id.StripPrefix) {
			errs = append(errs, fmt.Errorf("identity.assertion.header: %q must be a header name starting with identity.strip_prefix %q", a.Header, id.StripPrefix))
		}
		if a.Key == "" {
			errs = append(errs, errors.New("identity.assertion.key: required when header is set"))
		}
		if a.TTL <= 0 {
			errs = append(errs, fmt.Errorf("identity.assertion.ttl: must be > 0, got %q", a.TTL))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: must be one of debug, info, warn, error, got %q", c.Log.Level))
	}
	add("", c.Tracing.validate())
	if len(c.Routes) == 0 {
		errs = append(errs, errors.New("routes: at least one route is required"))
	}
	table, err := policy.Compile(c.Routes)
	if err != nil {
		add("", err)
	} else {
		c.routes = table
		for _, r := range table.Routes() {
			if (r.Config.Auth == policy.AuthSession || r.Config.Auth == policy.AuthAny) && c.Sessions.CookieName == "" {
				errs = append(errs, fmt.Errorf("routes[%d].auth: %s needs sessions.cookie_name", r.Index, r.Config.Auth))
			}
			if (r.Config.Auth == policy.AuthJWT || r.Config.Auth == policy.AuthAny) && len(c.JWT.Issuers) == 0 && !c.Tokens.Enabled() {
				errs = append(errs, fmt.Errorf("routes[%d].auth: %s needs at least one jwt.issuers entry or tokens.signing_key", r.Index, r.Config.Auth))
			}
		}
	}
	return errors.Join(errs...)
}

var headerToken = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// flatten returns the leaves of an errors.Join tree.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// ConfigError is one problem in a configuration file, located by line and
// key path. Its message reads "FILE:LINE: key.path: message".
type ConfigError struct {
	File string
	Line int
	Path string
	Msg  string
}

// Error is "FILE:LINE: key.path: message", leaving out what is unknown.
func (e *ConfigError) Error() string {
	switch {
	case e.Line > 0 && e.Path != "":
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Path, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.Path != "":
		return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadConfig reads, expands, decodes, defaults and validates a configuration
// file. On failure it returns every problem found, each a *ConfigError,
// joined with errors.Join. It has no side effects: key files are read and
// connections opened only when the gateway is built.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on data already read; name is used in messages.
func ParseConfig(name string, data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		if doc.Kind == 0 {
			return nil, &ConfigError{File: name, Msg: "empty configuration"}
		}
		return nil, &ConfigError{File: name, Line: doc.Line, Msg: "the document must be a mapping of sections"}
	}
	root := doc.Content[0]
	var errs []error
	expandEnv(root, "", func(line int, path, msg string) {
		errs = append(errs, &ConfigError{File: name, Line: line, Path: path, Msg: msg})
	})
	checkKnown(root, reflect.TypeOf(Config{}), "", func(line int, path, msg string) {
		errs = append(errs, &ConfigError{File: name, Line: line, Path: path, Msg: msg})
	})
	cfg := &Config{path: name}
	if err := root.Decode(cfg); err != nil {
		return nil, errors.Join(append(errs, typeErrors(name, root, err))...)
	}
	cfg.setDefaults()
	cfg.resolvePaths(filepath.Dir(name))
	for _, e := range flatten(cfg.validate()) {
		msg := e.Error()
		path, rest, ok := strings.Cut(msg, ": ")
		if !ok || strings.ContainsAny(path, " \"") {
			errs = append(errs, &ConfigError{File: name, Msg: msg})
			continue
		}
		errs = append(errs, &ConfigError{File: name, Line: lineOf(root, path), Path: path, Msg: rest})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// resolvePaths makes the file paths of the configuration relative to the
// directory of the configuration file, so that the gateway finds its keys
// wherever it is started from. Inline PEM values are left alone.
func (c *Config) resolvePaths(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.Contains(p, "-----BEGIN") {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range c.JWT.Issuers {
		for j, k := range c.JWT.Issuers[i].Keys {
			c.JWT.Issuers[i].Keys[j] = abs(k)
		}
	}
	c.Tokens.SigningKey = abs(c.Tokens.SigningKey)
	for i, k := range c.Tokens.PreviousKeys {
		c.Tokens.PreviousKeys[i] = abs(k)
	}
	c.Identity.Assertion.Key = abs(c.Identity.Assertion.Key)
	c.Server.TLS.CertFile = abs(c.Server.TLS.CertFile)
	c.Server.TLS.KeyFile = abs(c.Server.TLS.KeyFile)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error ("yaml: line 3: ...", or a *yaml.TypeError
// listing several) into ConfigErrors.
func yamlError(name string, err error) error {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	var errs []error
	for _, l := range lines {
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			errs = append(errs, &ConfigError{File: name, Line: n, Msg: m[2]})
		} else {
			errs = append(errs, &ConfigError{File: name, Msg: strings.TrimPrefix(l, "yaml: ")})
		}
	}
	return errors.Join(errs...)
}

// typeErrors is yamlError with each error's key path found from its line,
// and Go type names replaced by what the user should write.
func typeErrors(name string, root *yaml.Node, err error) error {
	var out []error
	for _, e := range flatten(yamlError(name, err)) {
		ce, ok := e.(*ConfigError)
		if !ok {
			out = append(out, e)
			continue
		}
		if ce.Line > 0 {
			ce.Path = pathAtLine(root, "", ce.Line)
		}
		switch {
		case strings.HasSuffix(ce.Msg, "into time.Duration"):
			ce.Msg = `must be a duration such as "30s" or "15m"`
		case strings.Contains(ce.Msg, "cannot unmarshal"):
			if _, into, ok := strings.Cut(ce.Msg, " into "); ok {
				ce.Msg = "must be of type " + into
			}
		}
		out = append(out, ce)
	}
	return errors.Join(out...)
}

// pathAtLine is the key path of the value that starts on line.
func pathAtLine(n *yaml.Node, path string, line int) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			v := n.Content[i+1]
			if v.Line == line && (v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0) {
				return p
			}
			if found := pathAtLine(v, p, line); found != "" {
				return found
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode && c.Line == line {
				return p
			}
			if found := pathAtLine(c, p, line); found != "" {
				return found
			}
		}
	}
	return ""
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// expandEnv replaces ${VAR} (and ${VAR:-default}, used when VAR is unset or
// empty, as in the shell) in every scalar value. It
// runs on the parsed document, so a variable's value can never change the
// document's structure. An unset VAR without a default is an error.
func expandEnv(n *yaml.Node, path string, report func(line int, path, msg string)) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			v, ok := os.LookupEnv(m[1])
			if m[2] != "" && v == "" {
				return m[2][2:] // as in the shell: unset or empty takes the default
			}
			if ok {
				return v
			}
			report(n.Line, path, fmt.Sprintf("environment variable %s is not set", m[1]))
			return ""
		})
		if n.Style == 0 || n.Style == yaml.FlowStyle {
			n.Tag = "" // re-resolve a plain scalar: "${PORT}" may now be an int
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], joinPath(path, n.Content[i].Value), report)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, fmt.Sprintf("%s[%d]", path, i), report)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checkKnown reports every mapping key that no field of t's yaml tags
// names (yaml.v3's KnownFields works only with a Decoder, which would lose
// the expanded document), and every duplicate key.
func checkKnown(n *yaml.Node, t reflect.Type, path string, report func(line int, path, msg string)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Duration(0)) || n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				report(k.Line, p, "duplicate key")
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				report(k.Line, p, "unknown key"+suggest(k.Value, fields))
				continue
			}
			checkKnown(n.Content[i+1], ft, p, report)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				report(k.Line, joinPath(path, k.Value), "duplicate key")
			}
			seen[k.Value] = true
		}
	}
}

// suggest names the known key closest to an unknown one, if any is close.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(key, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var pathStep = regexp.MustCompile(`([^.\[\]]+)|\[(\d+)\]`)

// lineOf finds the line of a key path such as "routes[2].step_up.max_age"
// in the document; where the path stops existing (a missing key), the line
// of the deepest node that exists.
func lineOf(root *yaml.Node, path string) int {
	n, line := root, root.Line
	for _, m := range pathStep.FindAllStringSubmatch(path, -1) {
		switch {
		case m[1] != "" && n.Kind == yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == m[1] {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case m[2] != "" && n.Kind == yaml.SequenceNode:
			i, _ := strconv.Atoi(m[2])
			if i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// RouteRow is one line of `portcullis check`'s route table.
type RouteRow struct {
	Index                                     int
	Name, Host, Path, Methods, Auth, Upstream string
	Roles, Scopes, StepUp                     string
}

// RouteTable describes the compiled routes of a loaded configuration, in
// configuration order.
func RouteTable(c *Config) []RouteRow {
	var rows []RouteRow
	for _, r := range c.routes.Routes() {
		rc := r.Config
		var su []string
		if len(rc.StepUp.ACR) > 0 {
			su = append(su, "acr="+strings.Join(rc.StepUp.ACR, "|"))
		}
		if rc.StepUp.MaxAge > 0 {
			su = append(su, "max_age="+rc.StepUp.MaxAge.String())
		}
		rows = append(rows, RouteRow{
			Index: r.Index, Name: rc.Name, Host: rc.Host, Path: rc.Path, Methods: strings.Join(rc.Methods, ","),
			Auth: rc.Auth, Upstream: rc.Upstream, Roles: strings.Join(rc.Roles, ","), Scopes: strings.Join(rc.Scopes, " "),
			StepUp: strings.Join(su, " "),
		})
	}
	return rows
}
