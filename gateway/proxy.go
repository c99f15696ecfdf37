package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portcullis/portcullis/policy"
)

// route is a compiled route with its proxy.
type route struct {
	*policy.Route
	name   string
	target *url.URL // scheme and host of the upstream
	base   string   // the upstream URL's path, without a trailing slash
	proxy  *httputil.ReverseProxy
	// sem caps in-flight upstream requests; nil: no cap.
	sem chan struct{}
	// metrics are the route's metric children.
	metrics *routeMetrics
}

// transports keeps one pooled *http.Transport per route timeout, shared by
// every configuration generation so that a reload keeps warm upstream
// connections. The route timeout is the transport's ResponseHeaderTimeout:
// the upstream must start answering within it, then the body streams.
type transports struct {
	mu          sync.Mutex
	byTimeout   map[time.Duration]*http.Transport
	maxIdlePer  int
	dialTimeout time.Duration
}

func (t *transports) get(timeout time.Duration) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.byTimeout[timeout]; ok {
		return tr
	}
	if t.byTimeout == nil {
		t.byTimeout = map[time.Duration]*http.Transport{}
	}
	dial := t.dialTimeout
	if dial == 0 || timeout < dial {
		dial = timeout
	}
	tr := &http.Transport{
		Proxy: nil, // upstreams are reached directly, whatever HTTP_PROXY says
		DialContext: (&net.Dialer{
			Timeout:   dial,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    t.maxIdlePer,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	t.byTimeout[timeout] = tr
	return tr
}

func (t *transports) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byTimeout {
		tr.CloseIdleConnections()
	}
}

// newRoute builds the proxy of one compiled route.
func (g *Gateway) newRoute(pr *policy.Route) (*route, error) {
	u, err := url.Parse(pr.Config.Upstream)
	if err != nil {
		return nil, fmt.Errorf("routes[%d].upstream: %w", pr.Index, err)
	}
	rt := &route{
		Route:   pr,
		metrics: g.rmetrics.get(pr.Config.Name),
		name:    pr.Config.Name,
		target:  &url.URL{Scheme: u.Scheme, Host: u.Host},
		base:    strings.TrimSuffix(u.EscapedPath(), "/"),
	}
	if n := pr.Config.MaxConcurrent; n > 0 {
		rt.sem = make(chan struct{}, n)
	}
	rt.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      g.transports.get(pr.Config.Timeout),
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       zapErrorLog(g.log.Named("proxy")),
		BufferPool:     bufferPool{},
	}
	return rt, nil
}

// inheritCap makes rt share the in-flight count of the same route (same
// name, upstream and max_concurrent) in the previous configuration, so that
// a reload does not reset the cap: requests still in flight under the old
// configuration keep counting against it.
func (rt *route) inheritCap(old *state) {
	if rt.sem == nil || old == nil {
		return
	}
	for _, o := range old.routes {
		if o.name == rt.name && o.Config.Upstream == rt.Config.Upstream && cap(o.sem) == cap(rt.sem) {
			rt.sem = o.sem
			return
		}
	}
}

// rewrite builds the outgoing request. It runs after httputil has removed
// the hop-by-hop headers, including any the client named in Connection, so
// nothing set here can be removed by the client.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	rs := requestStateFrom(pr.In.Context())
	st, rt, out := rs.st, rs.route, pr.Out

	out.URL.Scheme = rt.target.Scheme
	out.URL.Host = rt.target.Host
	p := rt.base + rs.forwardPath
	out.URL.RawPath = p
	out.URL.Path, _ = url.PathUnescape(p) // canonical: cannot fail
	out.URL.RawQuery = pr.In.URL.RawQuery
	out.Host = ""
	if out.Body != nil && out.Body != http.NoBody {
		out.Body = clientBody{out.Body}
	}

	var plan []headerKV
	extra := 4 // X-Forwarded-For, -Proto and -Host, X-Request-Id
	if rs.identity != nil {
		plan = st.ident.plan(rs.identity, rs.memo)
		extra += len(plan)
	}
	if rs.assertion != "" {
		extra++
	}
	if g.tracing != nil {
		extra += 2 // traceparent, tracestate
	}
	h := st.ident.outgoing(out.Header, extra)
	out.Header = h
	if upgradesToH2C(h.Get("Upgrade")) {
		delete(h, "Upgrade")
		delete(h, "Connection")
	}
	removeCookies(h, st.cfg.Sessions.CookieName, st.cfg.Tokens.RefreshCookie)
	if !*rt.Config.ForwardAuthorization {
		delete(h, "Authorization")
	}
	g.setForwarded(pr, st, rs)
	setHeaders(h, plan)
	if rs.assertion != "" {
		h[st.ident.assertion] = []string{rs.assertion}
	}
	h["X-Request-Id"] = rs.requestIDv
	g.tracing.inject(out.Context(), h)
}

// upgradesToH2C reports whether an Upgrade value lists h2c among its
// protocols ("h2c", "foo/1, H2C"): such an upgrade never reaches an
// upstream, whatever else it offers.
func upgradesToH2C(v string) bool {
	if v == "" {
		return false
	}
	for _, p := range strings.Split(v, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
		if strings.EqualFold(name, "h2c") {
			return true
		}
	}
	return false
}

// setForwarded writes X-Forwarded-For/-Proto/-Host. Inbound values are kept
// (and extended) only from server.trusted_proxies; otherwise replaced.
func (g *Gateway) setForwarded(pr *httputil.ProxyRequest, st *state, rs *requestState) {
	in, h := pr.In, pr.Out.Header
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	client := rs.clientHost
	if rs.trusted {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			client = strings.Join(prior, ", ") + ", " + client
		}
		if p := in.Header.Get("X-Forwarded-Proto"); p != "" {
			proto = p
		}
		if f := in.Header.Values("Forwarded"); len(f) > 0 {
			h["Forwarded"] = f
		}
	} else {
		delete(h, "Forwarded")
	}
	host := in.Host
	if rs.trusted {
		if fh := in.Header.Get("X-Forwarded-Host"); fh != "" {
			host = fh
		}
	}
	v := []string{client, host} // one allocation; capped so neither can grow into the other
	h["X-Forwarded-For"] = v[0:1:1]
	h["X-Forwarded-Host"] = v[1:2:2]
	switch proto {
	case "http":
		h["X-Forwarded-Proto"] = protoHTTP
	case "https":
		h["X-Forwarded-Proto"] = protoHTTPS
	default:
		h["X-Forwarded-Proto"] = []string{proto}
	}
}

// Shared, read-only X-Forwarded-Proto values.
var (
	protoHTTP  = []string{"http"}
	protoHTTPS = []string{"https"}
)

// modifyResponse acts on the upstream's answer before it is sent: session
// issuance headers on issue_session routes, removed everywhere else.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	rs := requestStateFrom(resp.Request.Context())
	h := resp.Header
	delete(h, "X-Request-Id") // the client gets the gateway's, once
	create, update := h.Get("Portcullis-Session"), h.Get("Portcullis-Session-Update")
	if create == "" && update == "" {
		return nil
	}
	delete(h, "Portcullis-Session")
	delete(h, "Portcullis-Session-Update")
	if !rs.route.Config.IssueSession {
		g.log.Warn("upstream sent session headers on a route without issue_session; ignored",
			rs.logFields()...)
		return nil
	}
	return g.issueFromResponse(resp, rs, create, update)
}

// proxyError answers a failed upstream exchange.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rs := requestStateFrom(r.Context())
	var he *httpError
	if !errors.As(err, &he) {
		he = upstreamError(err)
	}
	rs.err = he
	writeError(w, he, rs.requestID)
}

// clientBody is the request body streamed upstream. A read error is the
// client's doing, not the upstream's (a chunk size that is not hex, a body
// cut short), so it reaches proxyError as a 400 rather than an upstream 502.
// It is answered, not just logged as a 499: a client that only half-closed
// its connection still reads the answer.
type clientBody struct{ io.ReadCloser }

var errBadBody = &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "the request body is malformed or incomplete", Reason: "bad-request-body"}

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		he := *errBadBody
		he.Err = err
		return n, &he
	}
	return n, err
}

// bufferPool lends httputil 32 KiB copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

type requestStateKey struct{}

// requestStateFrom is the typed getter of the per-request state.
func requestStateFrom(ctx context.Context) *requestState {
	rs, _ := ctx.Value(requestStateKey{}).(*requestState)
	return rs
}
