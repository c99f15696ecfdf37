package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout is a route's timeout when the configuration leaves it 0.
const DefaultTimeout = 30 * time.Second

var _ error = (*FieldError)(nil)

// FieldError is one problem in the routes: section. Its text is
// "routes[<Index>].<Key>: <Msg>", e.g. "routes[2].auth: must be one of none,
// jwt, session, any"; Path gives the YAML key path alone so that the caller
// can find the YAML line. Compile joins them with errors.Join (use
// errors.As, or the Unwrap() []error of the joined error, to reach each).
type FieldError struct {
	// Index is the position of the route in routes:.
	Index int
	// Key is the YAML key path inside the route, e.g. "step_up.max_age" or
	// "methods[1]".
	Key string
	// Msg says what is wrong; it never contains credentials.
	Msg string
}

// Path returns the YAML key path, e.g. "routes[3].step_up.max_age".
func (e *FieldError) Path() string { return "routes[" + strconv.Itoa(e.Index) + "]." + e.Key }

// Error implements error. Unlike the package's other errors it has no
// "policy:" prefix: the text is the contract of `portcullis check`.
func (e *FieldError) Error() string { return e.Path() + ": " + e.Msg }

const authChoices = "none, jwt, session, any"

// compiler accumulates the problems of one route.
type compiler struct {
	i    int
	errs []error
}

func (c *compiler) fail(key, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Index: c.i, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Compile applies the defaults to routes, validates them and builds the
// route table. It does not modify routes. On failure it returns every
// problem at once, as *FieldError values joined with errors.Join and sorted
// by route.
//
// Defaults: Name "route-<index>", Timeout DefaultTimeout,
// ForwardAuthorization true, Methods upper-cased (duplicates dropped), Path
// without its trailing slash (except "/"), Host lower-cased without its
// trailing dot. Rules: auth is required (nothing is public by accident);
// path is required, starts with "/" and is canonical (see Canonicalize,
// without ";params", and without %2F unless allow_encoded_slash); upstream
// is an absolute http or https URL without user info, query or fragment
// (its path is prepended); host is exact or "*.suffix"; methods are HTTP
// tokens; names are unique; two routes with the same host and path must not
// list a common method (or both list none); roles, scopes, step_up and
// login_url are refused with auth none; step_up.url and login_url are
// absolute http(s) URLs or absolute paths; durations and max_concurrent are
// >= 0.
func Compile(routes []RouteConfig) (*Table, error) {
	compiled := make([]*Route, len(routes))
	perRoute := make([][]error, len(routes))
	valid := make([]bool, len(routes)) // host and path valid: take part in overlap checks
	for i := range routes {
		c := &compiler{i: i}
		compiled[i], valid[i] = c.route(routes[i])
		perRoute[i] = c.errs
	}

	names := make(map[string]int, len(routes))
	type slot struct{ host, key string }
	seen := make(map[slot][]int, len(routes))
	for i, r := range compiled {
		c := &compiler{i: i}
		if j, dup := names[r.Config.Name]; dup {
			c.fail("name", "duplicates routes[%d].name %q", j, r.Config.Name)
		} else {
			names[r.Config.Name] = i
		}
		if valid[i] {
			s := slot{r.Config.Host, r.key}
			for _, j := range seen[s] {
				if common, ok := overlap(compiled[j].Config.Methods, r.Config.Methods); ok {
					c.fail("path", "overlaps routes[%d] (%q) on the same host and path for %s", j, compiled[j].Config.Name, common)
				}
			}
			seen[s] = append(seen[s], i)
		}
		perRoute[i] = append(perRoute[i], c.errs...)
	}

	var errs []error
	for _, e := range perRoute {
		errs = append(errs, e...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return build(compiled), nil
}

// overlap reports whether two method lists select a common request method,
// and describes the overlap.
func overlap(a, b []string) (string, bool) {
	if len(a) == 0 && len(b) == 0 {
		return "all methods", true
	}
	var common []string
	for _, m := range a {
		if slices.Contains(b, m) {
			common = append(common, m)
		}
	}
	if len(common) == 0 {
		return "", false
	}
	slices.Sort(common)
	return "methods " + strings.Join(common, ", "), true
}

// route applies defaults to rc and validates it. It reports whether host and
// path are valid (so the route takes part in overlap checks).
func (c *compiler) route(rc RouteConfig) (*Route, bool) {
	r := &Route{Index: c.i}
	cfg := rc
	cfg.Methods = nil
	cfg.Roles = slices.Clone(rc.Roles)
	cfg.Scopes = slices.Clone(rc.Scopes)
	cfg.StepUp.ACR = slices.Clone(rc.StepUp.ACR)

	// name
	if cfg.Name == "" {
		cfg.Name = "route-" + strconv.Itoa(c.i)
	} else if strings.ContainsFunc(cfg.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		c.fail("name", "must not contain control characters")
	}

	// host
	hostOK := true
	if cfg.Host != "" {
		h, msg := normalizeConfigHost(cfg.Host)
		if msg != "" {
			c.fail("host", "%s", msg)
			hostOK = false
		} else {
			cfg.Host = h
		}
	}

	// path
	pathOK := false
	switch p := cfg.Path; {
	case p == "":
		c.fail("path", "is required")
	case p[0] != '/':
		c.fail("path", "must start with \"/\", got %q", p)
	default:
		cp, err := Canonicalize(p) // accepts one trailing slash, removed below
		var pe *PathError
		switch {
		case errors.As(err, &pe):
			c.fail("path", "must be canonical (%s), got %q", pe.Reason, cfg.Path)
		case strings.IndexByte(p, ';') >= 0 || hasEncodedSemicolon(p):
			c.fail("path", "must not contain \";\" parameters, got %q", cfg.Path)
		case cp.EncodedSlash() && !cfg.AllowEncodedSlash:
			c.fail("path", "must not contain an encoded slash (%%2F) unless allow_encoded_slash is true")
		default:
			if len(p) > 1 && p[len(p)-1] == '/' {
				p = p[:len(p)-1]
			}
			cfg.Path = p
			r.key = trimKey(cp.key)
			r.segs = segmentCount(r.key)
			pathOK = true
		}
	}

	// methods
	for k, m := range rc.Methods {
		up := strings.ToUpper(m)
		if !isToken(up) {
			c.fail(fmt.Sprintf("methods[%d]", k), "must be an HTTP method token, got %q", m)
			continue
		}
		if !slices.Contains(cfg.Methods, up) {
			cfg.Methods = append(cfg.Methods, up)
		}
	}

	// upstream
	if cfg.Upstream == "" {
		c.fail("upstream", "is required")
	} else if u, msg := parseUpstream(cfg.Upstream); msg != "" {
		c.fail("upstream", "%s", msg)
	} else {
		r.Upstream = u
	}

	// auth and what only makes sense with authentication
	switch cfg.Auth {
	case AuthJWT, AuthSession, AuthAny:
	case AuthNone:
		if len(cfg.Roles) > 0 {
			c.fail("roles", "not allowed with auth none")
		}
		if len(cfg.Scopes) > 0 {
			c.fail("scopes", "not allowed with auth none")
		}
		if len(cfg.StepUp.ACR) > 0 {
			c.fail("step_up.acr", "not allowed with auth none")
		}
		if cfg.StepUp.MaxAge != 0 {
			c.fail("step_up.max_age", "not allowed with auth none")
		}
		if cfg.StepUp.URL != "" {
			c.fail("step_up.url", "not allowed with auth none")
		}
		if cfg.LoginURL != "" {
			c.fail("login_url", "not allowed with auth none")
		}
	case "":
		c.fail("auth", "is required (one of %s)", authChoices)
	default:
		c.fail("auth", "must be one of %s", authChoices)
	}

	for k, v := range cfg.Roles {
		if v == "" {
			c.fail(fmt.Sprintf("roles[%d]", k), "must not be empty")
		}
	}
	for k, v := range cfg.Scopes {
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			c.fail(fmt.Sprintf("scopes[%d]", k), "must be a non-empty scope without spaces, got %q", v)
		}
	}
	for k, v := range cfg.StepUp.ACR {
		if v == "" {
			c.fail(fmt.Sprintf("step_up.acr[%d]", k), "must not be empty")
		}
	}
	if cfg.StepUp.MaxAge < 0 {
		c.fail("step_up.max_age", "must be >= 0, got %q", cfg.StepUp.MaxAge.String())
	}
	if cfg.StepUp.URL != "" {
		if msg := checkRedirectTarget(cfg.StepUp.URL); msg != "" {
			c.fail("step_up.url", "%s", msg)
		} else if cfg.Auth != AuthNone && !cfg.StepUp.Enabled() {
			c.fail("step_up.url", "has no effect without step_up.acr or step_up.max_age")
		}
	}
	if cfg.LoginURL != "" {
		if msg := checkRedirectTarget(cfg.LoginURL); msg != "" {
			c.fail("login_url", "%s", msg)
		}
	}

	if cfg.ForwardAuthorization == nil {
		t := true
		cfg.ForwardAuthorization = &t
	} else {
		v := *cfg.ForwardAuthorization
		cfg.ForwardAuthorization = &v
	}
	switch {
	case cfg.Timeout < 0:
		c.fail("timeout", "must be >= 0, got %q", cfg.Timeout.String())
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrent < 0 {
		c.fail("max_concurrent", "must be >= 0, got %d", cfg.MaxConcurrent)
	}

	r.Config = cfg
	r.acrChallenge, r.ageChallenge = challenges(cfg.StepUp)
	return r, hostOK && pathOK
}

// hasEncodedSemicolon reports whether p holds %3B.
func hasEncodedSemicolon(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && p[i+1] == '3' && (p[i+2] == 'b' || p[i+2] == 'B') {
			return true
		}
	}
	return false
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// normalizeConfigHost validates a route host and returns its normalised
// form, or a message.
func normalizeConfigHost(h string) (string, string) {
	bad := fmt.Sprintf("must be a host name or \"*.domain\", got %q", h)
	h = strings.ToLower(h)
	wildcard := strings.HasPrefix(h, "*.")
	name := h
	if wildcard {
		name = h[2:]
	}
	if strings.HasPrefix(name, "[") {
		end := strings.IndexByte(name, ']')
		if wildcard || end < 0 {
			return "", bad
		}
		if end != len(name)-1 {
			return "", "must not contain a port"
		}
		a, err := netip.ParseAddr(name[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", bad
		}
		return "[" + a.String() + "]", ""
	}
	if strings.Count(name, ":") > 1 {
		a, err := netip.ParseAddr(name)
		if wildcard || err != nil || a.Zone() != "" {
			return "", bad
		}
		return "[" + a.String() + "]", ""
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		if port := name[i+1:]; port != "" && strings.Trim(port, "0123456789") == "" {
			return "", "must not contain a port"
		}
		return "", bad
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return "", bad
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", bad
			}
		}
	}
	if wildcard {
		return "*." + name, ""
	}
	return name, ""
}

// parseUpstream validates an upstream URL, or returns a message. The
// messages never echo the URL: it may carry credentials.
func parseUpstream(s string) (*url.URL, string) {
	const bad = "must be an absolute http or https URL"
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, bad
	}
	if u.User != nil {
		return nil, "must not contain user info"
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.IndexByte(s, '#') >= 0 {
		return nil, "must not have a query or fragment"
	}
	if p := u.EscapedPath(); p != "" && p != "/" {
		if _, err := Canonicalize(strings.TrimSuffix(p, "/")); err != nil {
			return nil, "must have a canonical path"
		}
	}
	return u, ""
}

// checkRedirectTarget validates login_url or step_up.url: an absolute http or
// https URL or an absolute path, without fragment and without return_to
// (which the gateway adds). It returns a message, or "".
func checkRedirectTarget(s string) string {
	const bad = "must be an absolute http or https URL or an absolute path"
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return bad
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil {
		return bad
	}
	switch {
	case u.Scheme == "" && u.Host == "":
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
			return bad
		}
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return bad
	}
	if u.Fragment != "" || strings.IndexByte(s, '#') >= 0 {
		return "must not have a fragment"
	}
	if u.Query().Has("return_to") {
		return "must not set return_to (the gateway adds it)"
	}
	return ""
}

// build assembles the lookup structures of valid routes.
func build(routes []*Route) *Table {
	t := &Table{routes: routes, exact: map[string]*tier{}, wild: map[string]*tier{}}
	tierOf := func(host string) *tier {
		var m map[string]*tier
		switch {
		case host == "":
			if t.anyHost == nil {
				t.anyHost = &tier{groups: map[string]*group{}}
			}
			return t.anyHost
		case strings.HasPrefix(host, "*."):
			host = host[2:]
			m = t.wild
			t.wildLabels = max(t.wildLabels, strings.Count(host, ".")+1)
		default:
			m = t.exact
		}
		tr := m[host]
		if tr == nil {
			tr = &tier{groups: map[string]*group{}}
			m[host] = tr
		}
		return tr
	}
	for _, r := range routes {
		tr := tierOf(r.Config.Host)
		tr.maxDepth = max(tr.maxDepth, r.segs)
		g := tr.groups[r.key]
		if g == nil {
			g = &group{}
			tr.groups[r.key] = g
		}
		g.encodedSlash = g.encodedSlash || r.Config.AllowEncodedSlash
		if len(r.Config.Methods) == 0 {
			g.any = r
			continue
		}
		if g.byMethod == nil {
			g.byMethod = map[string]*Route{}
		}
		for _, m := range r.Config.Methods {
			g.byMethod[m] = r
		}
	}
	for _, tiers := range []map[string]*tier{t.exact, t.wild, {"": t.anyHost}} {
		for _, tr := range tiers {
			if tr == nil {
				continue
			}
			for _, g := range tr.groups {
				allow := make([]string, 0, len(g.byMethod))
				for m := range g.byMethod {
					allow = append(allow, m)
				}
				slices.Sort(allow)
				g.notAllowed = &MethodNotAllowedError{Allow: strings.Join(allow, ", ")}
			}
		}
	}
	return t
}
