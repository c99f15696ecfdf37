package policy

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// ErrNoRoute is returned by Table.Match when no route matches the host and
// path; the gateway answers 404.
var ErrNoRoute = errors.New("policy: no route")

// MethodNotAllowedError is returned by Table.Match when the longest matching
// path has routes, none of which allows the method; the gateway answers 405
// with the Allow header. Match returns a value shared by every request:
// callers must not modify it.
type MethodNotAllowedError struct {
	// Allow is the sorted union of the methods the routes list, joined by
	// ", " (e.g. "GET, HEAD, POST"): the value of the Allow header.
	Allow string
}

// Error implements error.
func (e *MethodNotAllowedError) Error() string {
	return "policy: method not allowed (allow: " + e.Allow + ")"
}

var _ error = (*MethodNotAllowedError)(nil)

// Route is one compiled route. Routes are immutable and shared by every
// request: callers must not modify them.
type Route struct {
	// Config is the route's configuration with defaults applied: Name set,
	// Host lower-cased without trailing dot, Path without trailing slash,
	// Methods upper-cased, ForwardAuthorization non-nil, Timeout > 0.
	Config RouteConfig
	// Index is the route's position in the routes: list.
	Index int
	// Upstream is Config.Upstream parsed: scheme http or https, a host, and
	// possibly a path to prepend.
	Upstream *url.URL

	key  string // routing key of Config.Path
	segs int    // segments of Config.Path ("/" has none)
	// Step-up challenges, precomputed so that Decide does not allocate.
	acrChallenge, ageChallenge *Challenge
}

// ForwardPath returns the escaped path to send upstream for p, which must be
// a path Match returned r for (the zero Path gives "/"): p.String(), or with strip_path the part below
// Config.Path ("/api" and "/api/x" give "/x"; "/api" and "/api/" give "/").
// The raw encodings of the remaining segments are kept byte for byte.
func (r *Route) ForwardPath(p Path) string {
	if p.raw == "" {
		return "/"
	}
	if !r.Config.StripPath {
		return p.raw
	}
	i := 0
	for n := r.segs; n > 0; n-- {
		j := strings.IndexByte(p.raw[i+1:], '/')
		if j < 0 {
			return "/"
		}
		i += 1 + j
	}
	return p.raw[i:]
}

// Table is the compiled route table. It is immutable and safe for
// concurrent use.
type Table struct {
	routes []*Route
	exact  map[string]*tier // normalised host -> routes of that host
	wild   map[string]*tier // "example.com" -> routes of "*.example.com"
	// wildLabels is the largest number of labels of a wildcard suffix: a
	// longer host suffix cannot match, so it is not looked up.
	wildLabels int
	anyHost    *tier // host-less routes; nil when there are none
}

// tier holds the routes of one host (or of no host) by routing key.
type tier struct {
	groups map[string]*group
	// maxDepth is the largest segment count of a key in groups: deeper
	// prefixes of a request path are never looked up, so a path with
	// thousands of segments costs no more than a short one.
	maxDepth int
}

// group holds the routes sharing one host and path.
type group struct {
	byMethod     map[string]*Route
	any          *Route // the route listing no methods, if any
	notAllowed   *MethodNotAllowedError
	encodedSlash bool // some route of the group allows %2F
}

// Routes returns the routes in configuration order.
func (t *Table) Routes() []*Route {
	out := make([]*Route, len(t.routes))
	copy(out, t.routes)
	return out
}

// Match returns the route for a request.
//
// host is the Host as received: matching ignores its case, its port and one
// trailing dot. method is compared exactly (methods are case-sensitive).
// Tiers are tried in order: routes of the exact host; wildcard routes,
// longest suffix first ("*.example.com" matches any subdomain at any depth,
// not the apex); host-less routes. The first tier with a path match decides:
// the longest route path that is a segment prefix of p; among its routes,
// the one listing the method, else the one listing no methods, else a
// *MethodNotAllowedError. Without a match it returns ErrNoRoute. A path with
// %2F is refused with a *PathError (reason "encoded-slash") unless the
// chosen route sets allow_encoded_slash; the zero Path is refused too.
//
// Match does not allocate for a Path without "%" or ";" and a lower-case
// host name.
func (t *Table) Match(host, method string, p Path) (*Route, error) {
	if p.raw == "" {
		return nil, errNotAbsolute
	}
	g := t.find(normalizeHost(host), trimKey(p.key))
	encoded := p.flags&flagEncodedSlash != 0
	if g == nil {
		if encoded {
			return nil, errEncodedSlashErr
		}
		return nil, ErrNoRoute
	}
	r := g.byMethod[method]
	if r == nil {
		r = g.any
	}
	if r == nil {
		if encoded && !g.encodedSlash {
			return nil, errEncodedSlashErr
		}
		return nil, g.notAllowed
	}
	if encoded && !r.Config.AllowEncodedSlash {
		return nil, errEncodedSlashErr
	}
	return r, nil
}

// find returns the group deciding for a normalised host and a trimmed key.
func (t *Table) find(host, key string) *group {
	if tr := t.exact[host]; tr != nil {
		if g := tr.lookup(key); g != nil {
			return g
		}
	}
	if len(t.wild) > 0 && len(host) > 0 && host[0] != '[' {
		// The suffixes of host after each dot, longest first, skipping
		// those with more labels than any wildcard has.
		from, labels := len(host), 0
		for i := len(host) - 1; i > 0; i-- {
			if host[i] == '.' {
				from = i
				labels++
				if labels == t.wildLabels {
					break
				}
			}
		}
		for i := from; i < len(host); i++ {
			if host[i] != '.' {
				continue
			}
			if tr := t.wild[host[i+1:]]; tr != nil {
				if g := tr.lookup(key); g != nil {
					return g
				}
			}
		}
	}
	if t.anyHost != nil {
		return t.anyHost.lookup(key)
	}
	return nil
}

// lookup returns the group of the longest route path that is a segment
// prefix of key.
func (tr *tier) lookup(key string) *group {
	k := key
	// Cut k to its first maxDepth segments.
	if tr.maxDepth == 0 {
		k = "/"
	} else {
		n := 0
		for i := 1; i < len(k); i++ {
			if k[i] == '/' {
				n++
				if n == tr.maxDepth {
					k = k[:i]
					break
				}
			}
		}
	}
	for {
		if g := tr.groups[k]; g != nil {
			return g
		}
		if k == "/" {
			return nil
		}
		if i := strings.LastIndexByte(k, '/'); i > 0 {
			k = k[:i]
		} else {
			k = "/"
		}
	}
}

// normalizeHost lower-cases a request host and removes its port and one
// trailing dot. IPv6 literals keep their brackets and get their canonical
// text form. It allocates only for upper-case hosts and IPv6 literals.
func normalizeHost(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			if a, err := netip.ParseAddr(h[1:i]); err == nil {
				return "[" + a.WithZone("").String() + "]"
			}
			return strings.ToLower(h[:i+1])
		}
		return strings.ToLower(h)
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if strings.IndexByte(h[:i], ':') >= 0 {
			// A bare IPv6 address (not valid in Host, but unambiguous).
			if a, err := netip.ParseAddr(h); err == nil {
				return "[" + a.WithZone("").String() + "]"
			}
			return strings.ToLower(h)
		}
		h = h[:i]
	}
	if len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	return strings.ToLower(h)
}
