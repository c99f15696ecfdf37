package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/validator"
)

// The identity headers of SPEC "What the upstream receives", in canonical
// form, with the default prefix. identityHeaders rewrites them for another
// identity.strip_prefix.
const (
	hSubject = "Subject"
	hMethod  = "Method"
	hRoles   = "Roles"
	hScopes  = "Scopes"
	hIssuer  = "Issuer"
	hTokenID = "Token-Id"
	hSession = "Session"
	hACR     = "Acr"
	hAMR     = "Amr"
	hTime    = "Time"
)

// identityHeaders is the precomputed header plan of one configuration.
type identityHeaders struct {
	prefix string // lower case, "_" as "-"
	// names of the standard headers, canonical (prefix + suffix).
	subject, method, roles, scopes, issuer, tokenID, session, acr, amr, time string
	// extra maps a claim (or session attribute) to a canonical header name.
	extra     [][2]string
	assertion string // canonical header name, "" when off
}

func newIdentityHeaders(cfg IdentityConfig) identityHeaders {
	p := cfg.StripPrefix
	name := func(s string) string { return http.CanonicalHeaderKey(p + s) }
	ih := identityHeaders{
		prefix:  normalizeHeaderName(p),
		subject: name(hSubject), method: name(hMethod), roles: name(hRoles), scopes: name(hScopes),
		issuer: name(hIssuer), tokenID: name(hTokenID), session: name(hSession), acr: name(hACR),
		amr: name(hAMR), time: name(hTime),
	}
	for claim, h := range cfg.Headers {
		ih.extra = append(ih.extra, [2]string{claim, http.CanonicalHeaderKey(h)})
	}
	if cfg.Assertion.Header != "" {
		ih.assertion = http.CanonicalHeaderKey(cfg.Assertion.Header)
	}
	return ih
}

// normalizeHeaderName lower-cases a header name and reads "_" as "-", the
// way CGI, WSGI, PHP and nginx's underscores_in_headers treat names, so that
// X_Auth_Subject cannot smuggle an identity header past the strip.
func normalizeHeaderName(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// managed reports whether a request header name falls under the strip
// prefix (case-insensitive, "_" counted as "-").
func (ih *identityHeaders) managed(name string) bool {
	if len(name) < len(ih.prefix) {
		return false
	}
	for i := 0; i < len(ih.prefix); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != ih.prefix[i] {
			return false
		}
	}
	return true
}

// outgoing copies the headers httputil prepared for the upstream into a
// new map with room for extra more (httputil's exact-size clone would
// grow, twice, as the gateway sets its headers), leaving out every managed
// header and the gateway's internal ones.
func (ih *identityHeaders) outgoing(in http.Header, extra int) http.Header {
	h := make(http.Header, len(in)+extra)
	for k, v := range in {
		switch {
		case ih.managed(k), k == "Portcullis-Session", k == "Portcullis-Session-Update", k == "Http2-Settings":
			continue
		}
		h[k] = v
	}
	return h
}

// identityMemo is what the gateway keeps with a JWT identity (validator
// Identity.Memo), which the verification cache shares between every request
// that carries the same token.
type identityMemo struct {
	// deny remembers the revocation filter's miss for the token's keys.
	deny denylist.Memo
	// headers are the identity's headers, prepared once.
	headers atomic.Pointer[headerPlan]
}

// memoOf returns the memo of a JWT identity, creating it on first use; nil
// for a session identity, which is new on every request.
func memoOf(id *validator.Identity) *identityMemo {
	if id.Method != validator.MethodJWT {
		return nil
	}
	if m, ok := id.Memo().(*identityMemo); ok {
		return m
	}
	m := &identityMemo{}
	id.SetMemo(m) // two first requests may race: one memo wins, both work
	return m
}

// headerPlan is an identity's header values prepared for one
// identityHeaders: names and single-value slices shared, read-only, by
// every request that carries the same cached token.
type headerPlan struct {
	ih *identityHeaders
	kv []headerKV
}

type headerKV struct {
	name  string
	value []string
}

// plan prepares the headers of id, or finds them prepared in m, id's memo
// (memoOf; nil for a session identity, whose headers are not kept).
func (ih *identityHeaders) plan(id *validator.Identity, m *identityMemo) []headerKV {
	if m != nil {
		if p := m.headers.Load(); p != nil && p.ih == ih {
			return p.kv
		}
	}
	kv := make([]headerKV, 0, 12)
	put := func(k, v string) {
		if v != "" {
			kv = append(kv, headerKV{k, []string{v}})
		}
	}
	put(ih.subject, id.Subject)
	put(ih.method, id.Method)
	put(ih.roles, id.RolesHeader())
	put(ih.scopes, id.ScopesHeader())
	put(ih.issuer, id.Issuer)
	if id.HasJTI {
		put(ih.tokenID, id.TokenID)
	}
	put(ih.session, id.SessionHandle)
	put(ih.acr, id.ACR)
	put(ih.amr, id.AMRHeader())
	put(ih.time, id.AuthTimeHeader())
	for _, e := range ih.extra {
		if v, ok := id.ClaimHeader(e[0]); ok {
			put(e[1], v)
		}
	}
	if m != nil {
		m.headers.Store(&headerPlan{ih: ih, kv: kv})
	}
	return kv
}

// setHeaders writes the identity headers of plan. The value slices are shared
// with other requests: nothing downstream appends to them.
func setHeaders(h http.Header, plan []headerKV) {
	for _, e := range plan {
		h[e.name] = e.value
	}
}

// removeCookies drops the named cookies from the Cookie header(s), keeping
// every other cookie byte for byte.
func removeCookies(h http.Header, names ...string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	found := false
	for _, line := range lines {
		for _, n := range names {
			found = found || (n != "" && strings.Contains(line, n))
		}
	}
	if !found {
		return
	}
	out := lines[:0:0]
	for _, line := range lines {
		var kept []string
		changed := false
		for _, part := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			drop := false
			for _, n := range names {
				if n != "" && name == n {
					drop = true
				}
			}
			if drop {
				changed = true
				continue
			}
			kept = append(kept, strings.TrimSpace(part))
		}
		if !changed {
			out = append(out, line)
		} else if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
	} else {
		h["Cookie"] = out
	}
}

// cookieMentions counts, cheaply, how often a cookie name appears in the
// Cookie header(s): an upper bound of the cookies of that name.
func cookieMentions(r *http.Request, name string) int {
	n := 0
	for _, line := range r.Header["Cookie"] {
		n += strings.Count(line, name)
	}
	return n
}

// clientAddr is the connection's peer address, as a substring of
// RemoteAddr (no allocation) and parsed.
func clientAddr(r *http.Request) (string, netip.Addr) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return host, a.Unmap()
}

// trustedPeer reports whether the connection comes from server.trusted_proxies.
func trustedPeer(trusted []netip.Prefix, a netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validRequestID accepts 1–128 characters of [A-Za-z0-9._-] (SPEC hygiene).
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// clientHost is the peer's address without the port.
func clientHost(r *http.Request) string {
	h, _ := clientAddr(r)
	return h
}
