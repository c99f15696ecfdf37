package validator

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/store"
)

// MaxTokenSize is the largest JWT Verify parses; a longer one is malformed.
const MaxTokenSize = 16 << 10

// JWTOptions are the dependencies of a JWT validator. Every field is
// optional.
type JWTOptions struct {
	// Logger receives JWK Set refresh events; nil: no logging.
	Logger *zap.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// HTTPClient fetches jwks_url; nil: a client with http.DefaultTransport.
	// Responses are capped at 1 MiB either way.
	HTTPClient *http.Client
	// Metrics counts JWK Set fetches (JWKSRefresh); nil: none.
	Metrics *metrics.Metrics
	// ForwardClaims are extra claims forwarded as headers (identity.headers).
	// A token whose forwarded claim holds a control character is refused,
	// and their rendered values are available from Identity.ClaimHeader.
	ForwardClaims []string
	// Gateway is the gateway's own token issuer (tokens:); nil when off.
	Gateway *GatewayIssuer
	// Previous is the validator of the configuration being replaced: its
	// remote JWK Sets whose issuer, jwks_url and jwks_refresh are unchanged
	// are reused (no refetch, no gap in refreshing), and closing Previous
	// then does not stop them.
	Previous *JWT

	// retryBase overrides the first retry delay of a JWK Set that never
	// loaded (tests).
	retryBase time.Duration
}

// GatewayIssuer describes the access tokens minted by the gateway itself.
type GatewayIssuer struct {
	// Issuer is their iss.
	Issuer string
	// Audiences: a token's aud must contain one; empty: aud not checked.
	Audiences []string
	// Keys are the current and previous signing keys' public halves; their
	// Algorithm fields are the accepted algs.
	Keys []keys.Key
	// Leeway is the clock skew allowed on exp, nbf and iat; 0: DefaultLeeway.
	Leeway time.Duration
}

// IssuerStatus is the state of one issuer's keys, for /readyz.
type IssuerStatus struct {
	Issuer string `json:"issuer"`
	// Source is "secret", "keys", "jwks_url", "keys+jwks_url" or "gateway".
	Source string `json:"source"`
	// Keys is the number of verification keys loaded.
	Keys int `json:"keys"`
	// Ready is true when the issuer can verify tokens (a jwks_url has loaded
	// at least once).
	Ready bool `json:"ready"`
	// LastRefresh is the time of the last successful JWK Set fetch, and
	// LastErrorAt and LastError those of the last failed one (zero and
	// empty when none); jwks_url only. In JSON they are unix seconds.
	LastRefresh time.Time `json:"-"`
	LastErrorAt time.Time `json:"-"`
	LastError   string    `json:"last_error,omitempty"`
}

// MarshalJSON encodes the times as unix seconds (omitted when zero).
func (s IssuerStatus) MarshalJSON() ([]byte, error) {
	type plain IssuerStatus
	out := struct {
		plain
		LastRefresh int64 `json:"last_refresh,omitempty"`
		LastErrorAt int64 `json:"last_error_at,omitempty"`
	}{plain: plain(s)}
	if !s.LastRefresh.IsZero() {
		out.LastRefresh = s.LastRefresh.Unix()
	}
	if !s.LastErrorAt.IsZero() {
		out.LastErrorAt = s.LastErrorAt.Unix()
	}
	return json.Marshal(out)
}

// JWT verifies the tokens of the configured issuers. It is safe for
// concurrent use and immutable apart from its remote key sets and cache; a
// configuration reload builds a new one (with Previous) and closes the old.
type JWT struct {
	log     *zap.Logger
	now     func() time.Time
	issuers map[string]*issuer
	order   []*issuer
	remotes map[remoteKey]*remoteSet
	cache   *tokenCache
	forward []string
	close   sync.Once
}

// issuer is one trusted issuer with its claims validator and keys.
type issuer struct {
	name        string
	source      string
	algs        []string
	leeway      time.Duration
	maxLifetime time.Duration
	rolesClaim  string
	scopesClaim string
	gateway     bool
	claims      *jwt.Validator
	secret      []byte
	static      *keyIndex
	remote      *remoteSet
}

// NewJWT builds a validator: it applies the defaults to a copy of cfg,
// validates it, reads the key files (errors name the file) and fetches each
// jwks_url once. A jwks_url that cannot be fetched is not an error: Ready
// reports it until a retry succeeds. ctx carries values to the background
// refreshes; they stop on Close, not when ctx ends.
func NewJWT(ctx context.Context, cfg JWTConfig, opts JWTOptions) (*JWT, error) {
	cfg.Issuers = slices.Clone(cfg.Issuers)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validator: invalid jwt config: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.retryBase <= 0 {
		opts.retryBase = jwksRetryBase
	}
	for _, name := range opts.ForwardClaims {
		if name == "" {
			return nil, errors.New("validator: empty claim name in ForwardClaims")
		}
	}
	v := &JWT{
		log:     opts.Logger.Named("jwt"),
		now:     opts.Now,
		issuers: make(map[string]*issuer, len(cfg.Issuers)+1),
		remotes: make(map[remoteKey]*remoteSet),
		forward: slices.Clone(opts.ForwardClaims),
	}
	if cfg.CacheSize > 0 {
		v.cache = newTokenCache(cfg.CacheSize)
	}
	for i := range cfg.Issuers {
		iss, err := newIssuer(&cfg.Issuers[i], opts.Now)
		if err != nil {
			return nil, fmt.Errorf("validator: issuers[%d] %q: %w", i, cfg.Issuers[i].Issuer, err)
		}
		v.add(iss)
	}
	if g := opts.Gateway; g != nil {
		if _, dup := v.issuers[g.Issuer]; dup {
			return nil, fmt.Errorf("validator: the gateway's issuer %q is also in jwt.issuers", g.Issuer)
		}
		iss, err := newGatewayIssuer(g, opts.Now)
		if err != nil {
			return nil, err
		}
		v.add(iss)
	}
	if err := v.attachRemotes(ctx, cfg.Issuers, opts); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (v *JWT) add(iss *issuer) {
	v.issuers[iss.name] = iss
	v.order = append(v.order, iss)
}

func newIssuer(c *IssuerConfig, now func() time.Time) (*issuer, error) {
	iss := &issuer{
		name:        c.Issuer,
		algs:        slices.Clone(c.Algorithms),
		leeway:      c.Leeway,
		maxLifetime: c.MaxLifetime,
		rolesClaim:  c.RolesClaim,
		scopesClaim: c.ScopesClaim,
	}
	switch {
	case c.Secret != "":
		iss.source = "secret"
		iss.secret = []byte(c.Secret)
	case len(c.Keys) > 0 && c.JWKSURL != "":
		iss.source = "keys+jwks_url"
	case len(c.Keys) > 0:
		iss.source = "keys"
	default:
		iss.source = "jwks_url"
	}
	if len(c.Keys) > 0 {
		var all []keys.Key
		for i, path := range c.Keys {
			ks, err := loadKeyFile(path)
			if err != nil {
				return nil, fmt.Errorf("keys[%d] %q: %w", i, path, err)
			}
			for _, k := range ks {
				if err := checkKey(k); err != nil {
					return nil, fmt.Errorf("keys[%d] %q: %w", i, path, err)
				}
				if !slices.ContainsFunc(iss.algs, func(alg string) bool { return keyFits(k.Public, alg) }) {
					return nil, fmt.Errorf("keys[%d] %q: key %q fits none of the algorithms %s",
						i, path, k.ID, strings.Join(iss.algs, ", "))
				}
			}
			all = append(all, ks...)
		}
		iss.static = newKeyIndex(all)
	}
	iss.claims = newClaimsValidator(iss.name, c.Audiences, iss.leeway, now)
	return iss, nil
}

func newGatewayIssuer(g *GatewayIssuer, now func() time.Time) (*issuer, error) {
	if g.Issuer == "" || hasControl(g.Issuer) {
		return nil, fmt.Errorf("validator: gateway issuer %q is not valid", g.Issuer)
	}
	if len(g.Keys) == 0 {
		return nil, errors.New("validator: gateway issuer has no keys")
	}
	iss := &issuer{
		name:        g.Issuer,
		source:      "gateway",
		leeway:      g.Leeway,
		rolesClaim:  DefaultRolesClaim,
		scopesClaim: DefaultScopesClaim,
		gateway:     true,
		static:      newKeyIndex(slices.Clone(g.Keys)),
	}
	if iss.leeway <= 0 {
		iss.leeway = DefaultLeeway
	}
	for _, k := range g.Keys {
		if !slices.Contains(asymmetricAlgs, k.Algorithm) || !keyFits(k.Public, k.Algorithm) {
			return nil, fmt.Errorf("validator: gateway key %q: algorithm %q does not fit the key", k.ID, k.Algorithm)
		}
		if !slices.Contains(iss.algs, k.Algorithm) {
			iss.algs = append(iss.algs, k.Algorithm)
		}
	}
	iss.claims = newClaimsValidator(iss.name, g.Audiences, iss.leeway, now)
	return iss, nil
}

// newClaimsValidator is the one validator of an issuer's registered
// claims: exp required, iat not in the future, nbf, iss, aud any-of, all
// with the leeway and the injected clock.
func newClaimsValidator(name string, audiences []string, leeway time.Duration, now func() time.Time) *jwt.Validator {
	po := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithIssuer(name),
	}
	if len(audiences) > 0 {
		po = append(po, jwt.WithAudience(audiences...)) // any-of
	}
	return jwt.NewValidator(po...)
}

// loadKeyFile reads PEM public keys/certificates or a JWK Set.
func loadKeyFile(path string) ([]keys.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "{") {
		return keys.ParseJWKSet(data)
	}
	return keys.ParsePublicKeys(data)
}

// attachRemotes gives every jwks_url issuer its remote set: reused from
// opts.Previous when unchanged, otherwise created (fetched in parallel).
func (v *JWT) attachRemotes(ctx context.Context, cfgs []IssuerConfig, opts JWTOptions) error {
	var fresh []remoteKey
	for i := range cfgs {
		c := &cfgs[i]
		if c.JWKSURL == "" {
			continue
		}
		k := remoteKey{issuer: c.Issuer, url: c.JWKSURL, refresh: c.JWKSRefresh}
		if _, ok := v.remotes[k]; ok {
			continue
		}
		if p := opts.Previous; p != nil {
			if rs, ok := p.remotes[k]; ok && rs.acquire() {
				v.remotes[k] = rs
				continue
			}
		}
		v.remotes[k] = nil
		fresh = append(fresh, k)
	}
	ro := remoteOptions{
		log:       v.log,
		metrics:   opts.Metrics,
		now:       opts.Now,
		client:    jwksClient(opts.HTTPClient),
		retryBase: opts.retryBase,
	}
	sets := make([]*remoteSet, len(fresh))
	errs := make([]error, len(fresh))
	var wg sync.WaitGroup
	for i, k := range fresh {
		wg.Go(func() { sets[i], errs[i] = newRemoteSet(ctx, k, ro) })
	}
	wg.Wait()
	for i, k := range fresh {
		if sets[i] != nil {
			v.remotes[k] = sets[i]
		} else {
			delete(v.remotes, k)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i := range cfgs {
		c := &cfgs[i]
		if c.JWKSURL != "" {
			v.issuers[c.Issuer].remote = v.remotes[remoteKey{issuer: c.Issuer, url: c.JWKSURL, refresh: c.JWKSRefresh}]
		}
	}
	return nil
}

// Close stops the background refreshes this validator owns (remote sets
// still used by a newer validator keep running). Verify keeps working with
// the keys already loaded.
func (v *JWT) Close() {
	v.close.Do(func() {
		for _, rs := range v.remotes {
			if rs != nil {
				rs.release()
			}
		}
	})
}

// Ready returns nil when every issuer can verify tokens, or an error naming
// each issuer whose JWK Set has never loaded.
func (v *JWT) Ready() error {
	var errs []error
	for _, iss := range v.order {
		if iss.remote == nil {
			continue
		}
		_, loaded, _, _, lastErr := iss.remote.status()
		if !loaded {
			if lastErr == "" {
				lastErr = "no answer yet"
			}
			errs = append(errs, fmt.Errorf("validator: issuer %q: JWK Set never loaded: %s", iss.name, lastErr))
		}
	}
	return errors.Join(errs...)
}

// Status describes every issuer's keys, in configuration order (the
// gateway's issuer last).
func (v *JWT) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(v.order))
	for _, iss := range v.order {
		st := IssuerStatus{Issuer: iss.name, Source: iss.source, Ready: true}
		if iss.secret != nil {
			st.Keys = 1
		}
		if iss.static != nil {
			st.Keys += len(iss.static.keys)
		}
		if iss.remote != nil {
			n, loaded, ok, errAt, lastErr := iss.remote.status()
			st.Keys += n
			st.Ready = loaded
			st.LastRefresh, st.LastErrorAt, st.LastError = ok, errAt, lastErr
		}
		out = append(out, st)
	}
	return out
}

// Verify verifies a JWT and returns its Identity. Every refusal is a
// *TokenError (errors.Is(err, ErrInvalidToken)). A token verified before and
// still within its validity is served from the cache: the same *Identity,
// without allocating. Revocation is not checked here.
func (v *JWT) Verify(ctx context.Context, token string) (*Identity, error) {
	if len(token) > MaxTokenSize {
		return nil, invalid(ReasonMalformed, "the token is too large")
	}
	now := v.now()
	if v.cache != nil {
		if id, ok := v.cache.get(token, now); ok {
			return id, nil
		}
	}
	id, entry, terr := v.verify(ctx, token, now)
	if terr != nil {
		return nil, terr
	}
	if v.cache != nil {
		v.cache.put(token, entry, now)
	}
	return id, nil
}

func (v *JWT) verify(ctx context.Context, token string, now time.Time) (*Identity, cacheEntry, *TokenError) {
	var none cacheEntry
	tok, peeked, err := parseToken(token)
	if tok == nil || tok.Header == nil || errors.Is(err, jwt.ErrTokenMalformed) {
		return nil, none, invalidErr(ReasonMalformed, "the token is malformed", err)
	}
	alg, _ := tok.Header["alg"].(string)
	switch {
	case alg == "":
		return nil, none, invalid(ReasonMalformed, "the token has no alg")
	case strings.EqualFold(alg, "none"):
		return nil, none, invalid(ReasonAlgNotAllowed, "unsigned tokens are never accepted")
	}
	if _, ok := tok.Header["crit"]; ok {
		return nil, none, invalid(ReasonUnknownCrit, "the token has critical header parameters this server does not understand")
	}
	if err != nil {
		return nil, none, invalidErr(ReasonAlgNotAllowed, "the token's alg is not supported", err)
	}
	if len(peeked) == 0 { // a JSON null payload decodes without error
		return nil, none, invalid(ReasonMalformed, "the token has no claims")
	}
	issName, _ := peeked["iss"].(string)
	iss := v.issuers[issName]
	if iss == nil {
		return nil, none, invalid(ReasonUnknownIssuer, "the token's issuer is not trusted")
	}
	if !slices.Contains(iss.algs, alg) {
		return nil, none, invalid(ReasonAlgNotAllowed, "the token's alg is not allowed for its issuer")
	}
	kidV, hasKID := tok.Header["kid"]
	kid, ok := kidV.(string)
	if hasKID && !ok {
		return nil, none, invalid(ReasonMalformed, "the token's kid is not a string")
	}
	entry := cacheEntry{src: iss.remote}
	if iss.remote != nil {
		entry.epoch = iss.remote.epoch.Load()
	}
	key, terr := iss.keyFor(ctx, alg, kid, hasKID)
	if terr != nil {
		return nil, none, terr
	}
	// One decoding serves both the issuer lookup and the verification:
	// the signature over header.payload, then the registered claims with
	// the issuer's validator (alg was checked against its allow-list above).
	claims := peeked
	if err := verifySignature(tok, token[:strings.LastIndexByte(token, '.')], key); err != nil {
		return nil, none, parseError(err, claims)
	}
	if err := iss.claims.Validate(claims); err != nil {
		return nil, none, parseError(err, claims)
	}
	id, terr := v.identity(iss, token, claims)
	if terr != nil {
		return nil, none, terr
	}
	entry.id = id
	entry.until = id.ExpiresAt.Add(iss.leeway)
	if !id.NotBefore.IsZero() {
		entry.from = id.NotBefore.Add(-iss.leeway)
	}
	if !id.IssuedAt.IsZero() {
		if f := id.IssuedAt.Add(-iss.leeway); f.After(entry.from) {
			entry.from = f
		}
	}
	return id, entry, nil
}

// verifySignature checks tok's signature over signingInput with key, or
// with any key of a set.
func verifySignature(tok *jwt.Token, signingInput string, key any) error {
	var err error
	switch k := key.(type) {
	case jwt.VerificationKeySet:
		err = jwt.ErrTokenUnverifiable
		for _, kk := range k.Keys {
			if err = verifyWith(tok, signingInput, kk); err == nil {
				return nil
			}
		}
	default:
		err = verifyWith(tok, signingInput, k)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", jwt.ErrTokenSignatureInvalid, err)
	}
	return nil
}

// verifyWith checks tok's signature with one key: RS256/384/512 with an
// RSA key through verifyRSA, everything else through the alg's jwt method.
func verifyWith(tok *jwt.Token, signingInput string, key any) error {
	if pub, ok := key.(*rsa.PublicKey); ok {
		if handled, err := verifyRSA(tok.Method.Alg(), signingInput, tok.Signature, pub); handled {
			return err
		}
	}
	return tok.Method.Verify(signingInput, tok.Signature, key)
}

// keyFor selects the keys that may verify a token: the issuer's secret, the
// keys of its kid, or without a kid every key of its alg. A key that is not
// found makes a remote set refetch (rate-limited) and the lookup retry.
func (iss *issuer) keyFor(ctx context.Context, alg, kid string, hasKID bool) (any, *TokenError) {
	if iss.secret != nil {
		return iss.secret, nil
	}
	set, seen := iss.lookup(alg, kid, hasKID)
	if len(set) == 0 && !seen && iss.remote != nil {
		// Look again even when no refetch was allowed: one that finished
		// since the first lookup may have brought the key.
		iss.remote.refetch(ctx)
		set, seen = iss.lookup(alg, kid, hasKID)
	}
	switch {
	case len(set) == 1:
		return set[0], nil
	case len(set) > 1:
		return jwt.VerificationKeySet{Keys: set}, nil
	case seen:
		return nil, invalid(ReasonBadSignature, "the key named by the token's kid does not fit its alg")
	case iss.remote != nil && !iss.remote.loaded():
		return nil, &TokenError{Reason: ReasonKeysUnavailable, Description: "the issuer's keys are not available yet", Err: ErrKeysUnavailable}
	case hasKID:
		return nil, invalid(ReasonUnknownKID, "the token's kid is unknown")
	}
	return nil, invalid(ReasonUnknownKID, "no key of the token's issuer fits its alg")
}

func (iss *issuer) lookup(alg, kid string, hasKID bool) ([]jwt.VerificationKey, bool) {
	set, seen := iss.static.lookup(nil, alg, kid, hasKID)
	if iss.remote != nil {
		var seenRemote bool
		set, seenRemote = iss.remote.index().lookup(set, alg, kid, hasKID)
		seen = seen || seenRemote
	}
	return set, seen
}

// parseError maps the errors of jwt.Parser to reasons.
func parseError(err error, claims jwt.MapClaims) *TokenError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalidErr(ReasonMalformed, "the token is malformed", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalidErr(ReasonBadSignature, "the token's signature is invalid", err)
	case errors.Is(err, jwt.ErrInvalidType):
		return invalidErr(ReasonBadClaim, "a registered claim of the token has the wrong type", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		if _, ok := claims["exp"]; !ok {
			return invalidErr(ReasonMissingExp, "the token has no exp", err)
		}
		return invalidErr(ReasonWrongAudience, "the token has no aud", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalidErr(ReasonTokenExpired, "the token has expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalidErr(ReasonTokenNotYetValid, "the token is not valid yet", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalidErr(ReasonIATInFuture, "the token was issued in the future", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalidErr(ReasonWrongAudience, "the token is not meant for this audience", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalidErr(ReasonUnknownIssuer, "the token's issuer is not trusted", err)
	}
	return invalidErr(ReasonMalformed, "the token is not valid", err)
}

// identity builds the Identity of verified claims.
func (v *JWT) identity(iss *issuer, token string, c jwt.MapClaims) (*Identity, *TokenError) {
	id := &Identity{Method: MethodJWT, Issuer: iss.name, Claims: map[string]any(c), Gateway: iss.gateway}
	var terr *TokenError
	if id.Subject, terr = claimString(c, "sub"); terr != nil {
		return nil, terr
	}
	if id.TokenID, terr = claimString(c, "jti"); terr != nil {
		return nil, terr
	}
	if id.ACR, terr = claimString(c, "acr"); terr != nil {
		return nil, terr
	}
	sid, terr := claimString(c, "sid")
	if terr != nil {
		return nil, terr
	}
	if id.Roles, terr = claimList(c, iss.rolesClaim, ','); terr != nil {
		return nil, terr
	}
	if id.Scopes, terr = claimScopes(c, iss.scopesClaim); terr != nil {
		return nil, terr
	}
	if id.AMR, terr = claimList(c, "amr", ','); terr != nil {
		return nil, terr
	}
	switch at := c["auth_time"].(type) {
	case nil:
	case float64:
		if at < 0 || at >= 1<<40 {
			return nil, invalid(ReasonBadClaim, "the auth_time claim is out of range")
		}
		id.AuthTime = time.Unix(int64(at), 0)
	default:
		return nil, invalid(ReasonBadClaim, "the auth_time claim must be a number")
	}
	// The parser has checked these claims' types; exp is required.
	if exp, _ := c.GetExpirationTime(); exp != nil {
		id.ExpiresAt = exp.Time
	}
	if iat, _ := c.GetIssuedAt(); iat != nil {
		id.IssuedAt = iat.Time
	}
	if nbf, _ := c.GetNotBefore(); nbf != nil {
		id.NotBefore = nbf.Time
	}
	if iss.maxLifetime > 0 {
		if id.IssuedAt.IsZero() {
			return nil, invalid(ReasonMissingIAT, "the token has no iat")
		}
		if id.ExpiresAt.Sub(id.IssuedAt) > iss.maxLifetime {
			return nil, invalid(ReasonLifetimeTooLong, "the token's lifetime is longer than allowed")
		}
	}
	if id.TokenID != "" {
		id.HasJTI = true
	} else {
		sum := sha256.Sum256([]byte(token[:strings.LastIndexByte(token, '.')]))
		id.TokenID = "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
	}
	id.RevocationKey = store.TokenKey(id.Issuer, id.TokenID)
	if iss.gateway && sid != "" {
		id.SessionHandle = sid
		id.SessionRevocationKey = store.SessionKey(sid)
	}
	for _, name := range v.forward {
		cv, ok := lookupClaim(c, name)
		if !ok {
			continue
		}
		s, ok := renderClaim(cv)
		if !ok {
			continue
		}
		if hasControl(s) {
			return nil, invalid(ReasonClaimNotAllowed, "a forwarded claim holds a control character")
		}
		id.claimHeaders = append(id.claimHeaders, claimHeader{name: name, value: s})
	}
	id.ComputeHeaders()
	return id, nil
}
