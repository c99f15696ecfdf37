// Package gateway is portcullis's HTTP side: configuration loading, the
// request pipeline (hygiene, routing, authentication, revocation, CSRF,
// authorisation, identity headers, proxy), session issuance by login
// services, the token endpoint, the admin API and the servers.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/mint"
	"github.com/portcullis/portcullis/policy"
	"github.com/portcullis/portcullis/store"
	"github.com/portcullis/portcullis/validator"
)

// Store is what the gateway itself needs of the store (sessions, families,
// health); the validator and the denylist declare their own parts.
type Store interface {
	CreateSession(ctx context.Context, n store.NewSession) (store.Created, error)
	SessionByID(ctx context.Context, id string) (store.Session, error)
	SessionByHandle(ctx context.Context, handle string) (store.Session, error)
	TouchSession(ctx context.Context, handle string, now time.Time, idle time.Duration) error
	UpdateSession(ctx context.Context, handle string, u store.Update, now time.Time) (store.Session, error)
	DeleteSession(ctx context.Context, handle string) (store.Session, error)
	ListSessions(ctx context.Context, subject string) ([]store.Session, error)
	DeleteSubjectSessions(ctx context.Context, subject string) ([]store.Session, error)
	Rotate(ctx context.Context, token string, now time.Time, o store.RotateOptions) (store.Rotated, error)
	Ping(ctx context.Context) error
}

var (
	_ Store = (*store.Memory)(nil)
	_ Store = (*store.Redis)(nil)
)

// Gateway is the main listener's handler. Its configuration-derived state is
// an immutable snapshot swapped atomically on reload; the store, the
// denylist, the metrics and the upstream connection pools outlive reloads.
type Gateway struct {
	state      atomic.Pointer[state]
	log        *zap.Logger
	accessLog  *zap.Logger
	store      Store
	deny       *denylist.Denylist
	metrics    *metrics.Metrics
	transports *transports
	now        func() time.Time
	ids        *requestIDs
	// runCtx lives as long as the gateway; background work of a state
	// (JWKS refreshers) is tied to it and to the state's own Close.
	runCtx   context.Context
	draining atomic.Bool
	// tracing is nil when tracing is off.
	tracing *tracing
	// rmetrics are the per-route metric children; noRoute's are for
	// requests answered before a route was chosen.
	rmetrics *routeMetricsSet
	noRoute  *routeMetrics
}

// Version is the gateway's version, reported in traces; cmd sets it.
var Version = "dev"

func buildVersion() string { return Version }

// Options are the long-lived dependencies of a Gateway.
type Options struct {
	Logger *zap.Logger
	// AccessLogger writes the access log (one line per request); defaults
	// to Logger named "access". cmd gives it a buffered writer.
	AccessLogger *zap.Logger
	Store        Store
	Deny         *denylist.Denylist
	Metrics      *metrics.Metrics
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// tracing is set by Run when tracing: is configured.
	tracing *tracing
}

// state is everything derived from one configuration.
type state struct {
	cfg      *Config
	table    *policy.Table
	routes   []*route // by policy.Route.Index
	jwt      *validator.JWT
	sessions *validator.Sessions
	ident    identityHeaders
	csrf     bool
	// tokens: nil when tokens: is off.
	signer *mint.Signer
	// assertion: nil when identity.assertion is off.
	asserter *mint.Asserter
	// keyring serves the public keys of signer and the asserter.
	keyring *mint.KeyRing
}

// New builds a Gateway for cfg. ctx bounds the background work it starts
// (JWKS refresh); cancel it after Close.
func New(ctx context.Context, cfg *Config, opts Options) (*Gateway, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.AccessLogger == nil {
		opts.AccessLogger = opts.Logger.Named("access")
	}
	rms := &routeMetricsSet{m: opts.Metrics}
	g := &Gateway{
		log:        opts.Logger,
		accessLog:  opts.AccessLogger.WithOptions(zap.WithCaller(false)),
		rmetrics:   rms,
		noRoute:    rms.get("-"),
		store:      opts.Store,
		deny:       opts.Deny,
		metrics:    opts.Metrics,
		now:        opts.Now,
		ids:        newRequestIDs(),
		runCtx:     ctx,
		tracing:    opts.tracing,
		transports: &transports{maxIdlePer: cfg.Server.UpstreamMaxIdlePerHost, dialTimeout: 10 * time.Second},
	}
	st, err := g.buildState(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	g.state.Store(st)
	return g, nil
}

// Reload builds the state of a new configuration and swaps it in; on any
// error the running state stays (STYLE: build new state, swap only on
// success).
func (g *Gateway) Reload(cfg *Config) error {
	old := g.state.Load()
	st, err := g.buildState(g.runCtx, cfg, old)
	if err != nil {
		g.metrics.Reloads.WithLabelValues("error").Inc()
		return err
	}
	g.state.Store(st)
	old.close()
	g.metrics.Reloads.WithLabelValues("ok").Inc()
	return nil
}

// Config returns the running configuration.
func (g *Gateway) Config() *Config { return g.state.Load().cfg }

// Close stops the background work of the running state.
func (g *Gateway) Close() {
	if st := g.state.Load(); st != nil {
		st.close()
	}
	g.transports.closeIdle()
}

func (st *state) close() {
	if st.jwt != nil {
		st.jwt.Close()
	}
}

func (g *Gateway) buildState(ctx context.Context, cfg *Config, old *state) (*state, error) {
	if cfg.routes == nil {
		return nil, errors.New("gateway: configuration was not validated (use LoadConfig)")
	}
	st := &state{
		cfg:   cfg,
		table: cfg.routes,
		ident: newIdentityHeaders(cfg.Identity),
		csrf:  cfg.Sessions.CSRFEnabled(),
	}
	now := g.now()

	// Keys the gateway signs with, and the key ring that serves them.
	var current []mintKey
	if cfg.Tokens.Enabled() {
		s, err := loadSigner(cfg.Tokens.SigningKey, "tokens.signing_key")
		if err != nil {
			return nil, err
		}
		st.signer = s
		current = append(current, mintKey{s, cfg.Tokens.AccessTTL})
	}
	if a := cfg.Identity.Assertion; a.Header != "" {
		s, err := loadSigner(a.Key, "identity.assertion.key")
		if err != nil {
			return nil, err
		}
		st.asserter = mint.NewAsserter(s, cfg.Tokens.Issuer, a.Audience, a.TTL, mint.AsserterOptions{
			Now: g.now, PerRequest: a.PerRequest,
			OnSign: func() { g.metrics.TokensIssued.WithLabelValues("assertion").Inc() },
		})
		current = append(current, mintKey{s, a.TTL})
	}
	previous, err := loadPublicKeys(cfg.Tokens.PreviousKeys, "tokens.previous_keys")
	if err != nil {
		return nil, err
	}
	st.keyring = newKeyRing(now, current, previous, old)

	var gw *validator.GatewayIssuer
	if st.signer != nil {
		gw = &validator.GatewayIssuer{
			Issuer:    cfg.Tokens.Issuer,
			Audiences: cfg.Tokens.Audiences,
			Keys:      st.keyring.Keys(now),
			Leeway:    30 * time.Second,
		}
	}
	forward := make([]string, 0, len(cfg.Identity.Headers))
	for claim := range cfg.Identity.Headers {
		forward = append(forward, claim)
	}
	var prev *validator.JWT
	if old != nil {
		prev = old.jwt
	}
	jv, err := validator.NewJWT(ctx, cfg.JWT, validator.JWTOptions{
		Logger:        g.log.Named("jwt"),
		Now:           g.now,
		Metrics:       g.metrics,
		ForwardClaims: forward,
		Gateway:       gw,
		Previous:      prev,
	})
	if err != nil {
		return nil, err
	}
	st.jwt = jv
	st.sessions = validator.NewSessions(g.store, cfg.Sessions, validator.SessionOptions{
		Logger: g.log.Named("sessions"), Now: g.now,
	})
	for _, pr := range cfg.routes.Routes() {
		rt, err := g.newRoute(pr)
		if err != nil {
			jv.Close()
			return nil, err
		}
		rt.inheritCap(old)
		st.routes = append(st.routes, rt)
	}
	return st, nil
}

// requestState is the per-request scratch space, pooled.
type requestState struct {
	st          *state
	start       time.Time
	requestID   string
	requestIDv  []string // []string{requestID}, shared by the response and upstream headers
	client      netip.Addr
	clientHost  string // the peer's address as in RemoteAddr, without port
	trusted     bool
	route       *route
	path        string // canonical escaped path (for logs)
	forwardPath string
	identity    *validator.Identity
	memo        *identityMemo // identity's memo (memoOf); nil for sessions
	fromCookie  bool
	assertion   string
	err         *httpError
	// fields is the access log line's scratch space.
	fields [16]zap.Field
}

var requestStates = sync.Pool{New: func() any { return new(requestState) }}

func (rs *requestState) logFields() []zap.Field {
	f := []zap.Field{zap.String("request_id", rs.requestID)}
	if rs.route != nil {
		f = append(f, zap.String("route", rs.route.name))
	}
	return f
}

// ServeHTTP is the pipeline. Every refusal is an error returned by serve and
// answered by writeError; nothing else picks a status.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs := requestStates.Get().(*requestState)
	*rs = requestState{st: g.state.Load(), start: g.now()}
	rw := newResponseWriter(w)
	var span trace.Span
	if g.tracing != nil {
		r, span = g.tracing.startRequest(r)
	}
	defer g.recoverAbort(rw, r, rs, span)

	rs.clientHost, rs.client = clientAddr(r)
	rs.trusted = trustedPeer(rs.st.cfg.trusted, rs.client)
	if id := r.Header.Get("X-Request-Id"); rs.trusted && validRequestID(id) {
		rs.requestID = id
	} else {
		rs.requestID = g.ids.next()
	}
	rs.requestIDv = []string{rs.requestID}
	rw.Header()["X-Request-Id"] = rs.requestIDv
	if len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent with Transfer-Encoding before
		// the handler runs, so such a request cannot be told apart: close
		// after answering any chunked request (RFC 9112 §6.3), so that bytes
		// a front end counted into the body are never read as a next request.
		rw.Header().Set("Connection", "close")
	}

	if err := g.serve(rw, r, rs); err != nil {
		he := classify(err)
		rs.err = he
		writeError(rw, he, rs.requestID)
	}
	g.finish(rw, r, rs)
	if span != nil {
		endRequest(span, rs, rw.status)
	}
	releaseResponseWriter(rw)
	requestStates.Put(rs)
}

// recoverAbort is deferred by ServeHTTP. httputil aborts a response whose
// body copy failed (the upstream cut it, or the client went away) by
// panicking with http.ErrAbortHandler, which would skip the access log
// line, the metrics and the span: it records them, then lets the panic go
// on so that net/http drops the connection and the client sees the cut.
func (g *Gateway) recoverAbort(rw *responseWriter, r *http.Request, rs *requestState, span trace.Span) {
	p := recover()
	if p == nil {
		return
	}
	if p == any(http.ErrAbortHandler) {
		if r.Context().Err() != nil {
			rs.err = &httpError{Status: statusClientClosed, Code: "client_closed_request", Reason: "client-closed"}
		} else {
			rs.err = &httpError{Status: rw.status, Reason: "upstream-aborted"}
		}
		g.finish(rw, r, rs)
		if span != nil {
			endRequest(span, rs, rw.status)
		}
	}
	panic(p)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rs *requestState) error {
	st := rs.st
	cfg := st.cfg

	// Hygiene, before routing and authentication.
	if n, size := headerSize(r); n > cfg.Server.MaxHeaderCount || size > cfg.Server.MaxHeaderBytes {
		return errHeaderTooLarge
	}
	if len(r.Header["Authorization"]) > 1 {
		return errTwoAuth
	}
	raw, ok := requestPath(r)
	if !ok {
		return errBadTarget
	}
	p, err := policy.Canonicalize(raw)
	if err != nil {
		return err
	}
	rs.path = p.String()
	if cookieMentions(r, cfg.Sessions.CookieName) > 1 && conflictingCookies(r, cfg.Sessions.CookieName) {
		return errTwoCookies
	}

	// The gateway's own endpoints on the main listener.
	own := rs.path
	if strings.IndexByte(own, '%') >= 0 {
		own, _ = url.PathUnescape(own) // so /%2Eportcullis/token is ours too
	}
	if strings.HasPrefix(own, "/.portcullis/") {
		return g.serveOwn(w, r, rs, own)
	}

	rt, err := st.table.Match(r.Host, r.Method, p)
	if err != nil {
		return err
	}
	route := st.routes[rt.Index]
	rs.route = route
	rs.forwardPath = rt.ForwardPath(p)

	if rt.Config.Auth != policy.AuthNone {
		if g.tracing != nil {
			ctx, span := g.tracing.span(r.Context(), "portcullis.auth", trace.SpanKindInternal)
			err := g.authenticate(r.WithContext(ctx), rs, rt, p)
			if err != nil {
				span.SetAttributes(attribute.String("portcullis.reason", classify(err).Reason))
			}
			span.End()
			if err != nil {
				return err
			}
		} else if err := g.authenticate(r, rs, rt, p); err != nil {
			return err
		}
	}
	return g.proxy(w, r, rs)
}

// authenticate runs authentication, revocation, CSRF and authorisation, in
// that order (issue #5: 401 invalid_token, revocation, 403, then step-up).
func (g *Gateway) authenticate(r *http.Request, rs *requestState, rt *policy.Route, p policy.Path) error {
	st, cfg := rs.st, rs.st.cfg
	ctx := r.Context()
	cred, err := validator.Extract(r, rt.Config.Auth, cfg.Sessions.CookieName)
	if err != nil {
		if errors.Is(err, validator.ErrNoCredential) && rt.Config.LoginURL != "" && policy.WantsHTML(r.Header.Get("Accept")) {
			return redirect(policy.RedirectURL(rt.Config.LoginURL, policy.ReturnTo(p, r.URL.RawQuery), nil), "login-redirect")
		}
		return err
	}
	var id *validator.Identity
	switch cred.Kind {
	case validator.CredentialJWT:
		id, err = st.jwt.Verify(ctx, cred.Value)
	default:
		id, err = st.sessions.Authenticate(ctx, cred.Value)
	}
	if err != nil {
		return err
	}
	rs.identity = id
	rs.memo = memoOf(id)
	rs.fromCookie = cred.FromCookie
	q := denylist.Query{Key: id.RevocationKey, SessionKey: id.SessionRevocationKey, Subject: id.Subject, IssuedAt: id.IssuedAt}
	if rs.memo != nil {
		q.Memo = &rs.memo.deny
	}
	if id.Gateway {
		q.SID = id.SessionHandle
	}
	if err := g.deny.Check(ctx, &q); err != nil {
		return err
	}
	if cred.FromCookie && st.csrf && !safeMethod(r.Method) && !sameOrigin(r, rs.trusted) {
		return errCSRF
	}
	d := rt.Decide(policy.Input{Subject: id.Subject, Roles: id.Roles, Scopes: id.Scopes, ACR: id.ACR, AuthTime: id.AuthTime}, g.now())
	if !d.Allow {
		return refusal(r, d, p)
	}
	if st.asserter != nil {
		tok, err := st.asserter.Assert(assertionKey(id, rt.Config.Name), assertionClaims(id, rt.Config.Name, rs.requestID))
		if err != nil {
			return fmt.Errorf("gateway: signing identity assertion: %w", err)
		}
		rs.assertion = tok
	}
	return nil
}

// refusal turns a negative decision into the client's answer.
func refusal(r *http.Request, d policy.Decision, p policy.Path) error {
	if d.StepUp == nil {
		return &httpError{Status: http.StatusForbidden, Code: "insufficient_scope", Description: "the credential lacks a required role or scope",
			Reason: d.Reason, Headers: [][2]string{{"WWW-Authenticate", bearerChallenge("error", "insufficient_scope", "error_description", "the credential lacks a required role or scope")}}}
	}
	c := d.StepUp
	extra := map[string][]string{}
	params := []string{"error", "insufficient_user_authentication", "error_description", c.Description}
	if len(c.ACRValues) > 0 {
		v := strings.Join(c.ACRValues, " ")
		params = append(params, "acr_values", v)
		extra["acr_values"] = []string{v}
	}
	if c.MaxAge > 0 {
		v := fmt.Sprint(int64(c.MaxAge / time.Second))
		params = append(params, "max_age", v)
		extra["max_age"] = []string{v}
	}
	if c.URL != "" && policy.WantsHTML(r.Header.Get("Accept")) {
		return redirect(policy.RedirectURL(c.URL, policy.ReturnTo(p, r.URL.RawQuery), extra), d.Reason)
	}
	return &httpError{Status: http.StatusUnauthorized, Code: "insufficient_user_authentication", Description: c.Description,
		Reason: d.Reason, Headers: [][2]string{{"WWW-Authenticate", bearerChallenge(params...)}}}
}

func redirect(location, reason string) *httpError {
	return &httpError{Status: http.StatusFound, Reason: reason, Headers: [][2]string{{"Location", location}}}
}

// proxy forwards the request, honouring the route's concurrency cap.
func (g *Gateway) proxy(w http.ResponseWriter, r *http.Request, rs *requestState) error {
	rt := rs.route
	if rt.sem != nil {
		select {
		case rt.sem <- struct{}{}:
			defer func() { <-rt.sem }()
		default:
			return errOverloaded
		}
	}
	rt.metrics.inflight.Inc()
	defer rt.metrics.inflight.Dec()
	ctx := context.WithValue(r.Context(), requestStateKey{}, rs)
	if g.tracing != nil {
		var span trace.Span
		ctx, span = g.tracing.span(ctx, "portcullis.upstream", trace.SpanKindClient)
		defer span.End()
	}
	rt.proxy.ServeHTTP(w, r.WithContext(ctx))
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin implements the CSRF rule: Origin, else Sec-Fetch-Site, else
// Referer must name the request's own scheme://host. Behind a trusted proxy
// that terminates TLS, X-Forwarded-Proto and X-Forwarded-Host name it.
func sameOrigin(r *http.Request, trusted bool) bool {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	self := scheme + "://" + strings.ToLower(host)
	if o := r.Header.Get("Origin"); o != "" {
		return strings.EqualFold(o, self)
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return strings.EqualFold(ref, self) || hasPrefixFold(ref, self+"/") || hasPrefixFold(ref, self+"?")
	}
	return false
}

// headerSize counts the header fields and the bytes of the request line
// and header block as sent. net/http enforces MaxHeaderBytes only with 4 KiB
// of slack; this makes server.max_header_bytes exact.
func headerSize(r *http.Request) (fields, size int) {
	size = len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len(r.Host) + 8
	for k, vs := range r.Header {
		fields += len(vs)
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	return fields, size
}

// requestPath is the path of the request target exactly as sent: the
// origin-form path, or the path of an absolute-form target. "*" and
// authority-form targets are refused.
func requestPath(r *http.Request) (string, bool) {
	uri := r.RequestURI
	if uri == "" || uri == "*" {
		return "", false
	}
	if uri[0] != '/' {
		i := strings.Index(uri, "://")
		if i < 0 {
			return "", false
		}
		rest := uri[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 || rest[j] == '?' {
			return "/", true
		}
		uri = rest[j:]
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return uri, true
}

// conflictingCookies reports two session cookies with different values.
func conflictingCookies(r *http.Request, name string) bool {
	cs := r.CookiesNamed(name)
	if len(cs) < 2 {
		return false
	}
	for _, c := range cs[1:] {
		if c.Value != cs[0].Value {
			return true
		}
	}
	return false
}
