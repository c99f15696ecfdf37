package mint

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// Defaults of NewAsserter.
const (
	// DefaultAssertionTTL is the lifetime of an assertion when NewAsserter
	// is given ttl <= 0 (SPEC identity.assertion.ttl).
	DefaultAssertionTTL = 60 * time.Second
	// DefaultAssertionCacheSize bounds the assertion cache when
	// AsserterOptions.CacheSize is 0.
	DefaultAssertionCacheSize = 10000
)

// Assertion is the identity the gateway vouches for to an upstream: what the
// request's JWT or session proved, plus where it is going.
type Assertion struct {
	Subject string
	Roles   []string
	// Scopes are written as one space-separated "scope" string.
	Scopes []string
	AMR    []string
	ACR    string
	// AuthTime is the last authentication; zero omits auth_time.
	AuthTime time.Time
	// SessionID is the session handle ("sid"), if any.
	SessionID string
	// TokenID is the caller JWT's jti ("tid"), if any.
	TokenID string
	// Route is the matched route's name.
	Route string
	// RequestID is the request's X-Request-Id, written as "rid" only by a
	// PerRequest Asserter.
	RequestID string
	// Method is how the caller authenticated: "jwt" or "session".
	Method string
}

// assertionClaims is the payload of an identity assertion.
type assertionClaims struct {
	registered
	Roles     []string `json:"roles"`
	Scope     string   `json:"scope"`
	ACR       string   `json:"acr"`
	AMR       []string `json:"amr"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	TokenID   string   `json:"tid,omitempty"`
	Route     string   `json:"route"`
	Method    string   `json:"method"`
	RequestID string   `json:"rid,omitempty"`
}

// AsserterOptions tune an Asserter. The zero value is a caching Asserter on
// the wall clock.
type AsserterOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheSize bounds the number of cached assertions; 0 means
	// DefaultAssertionCacheSize and -1 disables the cache (one signature
	// per call). Ignored when PerRequest is set.
	CacheSize int
	// PerRequest signs a fresh assertion for every call, carrying the
	// request id as "rid"; the cache is not used.
	PerRequest bool
	// OnSign, if set, is called after every new signature (not on a cache
	// hit), e.g. to count portcullis_tokens_issued_total{kind="assertion"}.
	OnSign func()
}

// Asserter signs the identity assertion the gateway sends upstream
// (identity.assertion): a short-lived JWT with typ "JWT" carrying iss, aud
// (when set), sub, iat, exp = iat + ttl, jti, roles, scope, acr, amr,
// auth_time, sid and/or tid (the caller token's jti), route and method.
//
// Signing costs far more than the rest of a request, so by default an
// assertion is cached under the caller's cache key and reused while at least
// a quarter of its lifetime remains: a busy client costs one signature every
// 3/4 ttl, not one per request. The trade-off: a cached assertion is shared
// by every request with the same key, so it cannot name one request; it
// carries no request id, and an upstream that wants one must read
// X-Request-Id. With AsserterOptions.PerRequest each request gets its own
// signature, carrying "rid" (the request id) and a fresh jti that binds the
// assertion to that request, at the cost of one signature per request.
//
// The cache is bounded and safe for concurrent use; a hit does not allocate.
type Asserter struct {
	signer     *Signer
	issuer     string
	audience   audience
	ttl        time.Duration
	reuse      time.Duration // a cached assertion is reused until exp - reuse
	now        func() time.Time
	perRequest bool
	onSign     func()
	cache      *assertCache // nil: no cache
}

// NewAsserter returns an Asserter signing with s. issuer is the iss claim
// (omitted when empty), audience the aud claim (omitted when empty) and ttl
// the lifetime: <= 0 means DefaultAssertionTTL, and it is counted in whole
// seconds (at least one).
func NewAsserter(s *Signer, issuer, audience string, ttl time.Duration, opts AsserterOptions) *Asserter {
	if ttl <= 0 {
		ttl = DefaultAssertionTTL
	}
	ttl = max(ttl.Truncate(time.Second), time.Second)
	a := &Asserter{
		signer:     s,
		issuer:     issuer,
		ttl:        ttl,
		reuse:      ttl / 4,
		now:        opts.Now,
		perRequest: opts.PerRequest,
		onSign:     opts.OnSign,
	}
	if audience != "" {
		a.audience = []string{audience}
	}
	if a.now == nil {
		a.now = time.Now
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultAssertionCacheSize
	}
	if size > 0 && !opts.PerRequest {
		a.cache = newAssertCache(size)
	}
	return a
}

// TTL is the lifetime of the assertions a signs.
func (a *Asserter) TTL() time.Duration { return a.ttl }

// Assert returns a signed assertion of claims. cacheKey names the claims: two
// calls with the same key must carry the same identity and route (for
// example a token's revocation key plus the route, or a session handle plus
// its identity version plus the route). Within 3/4 of an assertion's
// lifetime the same token is returned for the same key; RequestID is then
// ignored. In PerRequest mode, or with the cache off, every call signs.
func (a *Asserter) Assert(cacheKey string, claims *Assertion) (string, error) {
	if claims == nil {
		return "", fmt.Errorf("%w: nil assertion", ErrInvalidClaims)
	}
	now := a.now()
	if a.cache != nil {
		if tok, ok := a.cache.get(cacheKey, now.UnixNano()); ok {
			return tok, nil
		}
	}
	tok, exp, err := a.sign(claims, now)
	if err != nil {
		return "", err
	}
	if a.cache != nil {
		a.cache.put(cacheKey, tok, exp.Add(-a.reuse).UnixNano(), now.UnixNano())
	}
	return tok, nil
}

// sign signs one assertion issued at now and returns it with its expiry.
func (a *Asserter) sign(c *Assertion, now time.Time) (string, time.Time, error) {
	if c.Subject == "" {
		return "", time.Time{}, fmt.Errorf("%w: assertion without subject", ErrInvalidClaims)
	}
	jti, err := newJTI()
	if err != nil {
		return "", time.Time{}, err
	}
	iat := now.Truncate(time.Second)
	exp := iat.Add(a.ttl)
	p := &assertionClaims{
		registered: registered{
			Issuer:    a.issuer,
			Audience:  a.audience,
			Subject:   c.Subject,
			ExpiresAt: exp.Unix(),
			IssuedAt:  iat.Unix(),
			ID:        jti,
		},
		Roles:     nonNil(c.Roles),
		Scope:     strings.Join(c.Scopes, " "),
		ACR:       c.ACR,
		AMR:       nonNil(c.AMR),
		AuthTime:  unixOrZero(c.AuthTime),
		SessionID: c.SessionID,
		TokenID:   c.TokenID,
		Route:     c.Route,
		Method:    c.Method,
	}
	if a.perRequest {
		p.RequestID = c.RequestID
	}
	tok, err := a.signer.Sign(p, TypeJWT)
	if err != nil {
		return "", time.Time{}, err
	}
	if a.onSign != nil {
		a.onSign()
	}
	return tok, exp, nil
}

// assertCache is a bounded map of signed assertions, split into shards so
// that concurrent requests rarely wait on one another.
type assertCache struct {
	seed   maphash.Seed
	shards []assertShard
	limit  int // entries per shard
}

type assertShard struct {
	mu sync.Mutex
	m  map[string]cachedAssertion
	// sweepAt is the earliest reuseUntil in m after the last sweep: before
	// it, no entry is stale and a sweep would free nothing.
	sweepAt int64
	_       [40]byte // keep shards on separate cache lines
}

type cachedAssertion struct {
	token      string
	reuseUntil int64 // unix nanoseconds; reused while now <= reuseUntil
}

const maxAssertShards = 16

func newAssertCache(size int) *assertCache {
	n := min(size, maxAssertShards)
	c := &assertCache{
		seed:   maphash.MakeSeed(),
		shards: make([]assertShard, n),
		limit:  size / n, // >= 1, and n*limit <= size
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cachedAssertion)
	}
	return c
}

func (c *assertCache) shard(key string) *assertShard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// get returns the cached assertion for key if it may still be reused at now.
func (c *assertCache) get(key string, now int64) (string, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok || now > e.reuseUntil {
		return "", false
	}
	return e.token, true
}

// put stores an assertion, making room first when the shard is full: stale
// entries go, and if none is stale an arbitrary entry is evicted.
func (c *assertCache) put(key, token string, reuseUntil, now int64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok && len(s.m) >= c.limit {
		if now > s.sweepAt {
			next := int64(1<<63 - 1)
			for k, e := range s.m {
				if now > e.reuseUntil {
					delete(s.m, k)
				} else {
					next = min(next, e.reuseUntil)
				}
			}
			s.sweepAt = next
		}
		for k := range s.m {
			if len(s.m) < c.limit {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = cachedAssertion{token: token, reuseUntil: reuseUntil}
	s.sweepAt = min(s.sweepAt, reuseUntil)
}

// size is the number of cached assertions.
func (c *assertCache) size() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
