package gateway

// Per-stage benchmarks of the gateway's own work (issue #10): the identity
// header plan, and the whole handler (ServeHTTP) on a public route, a JWT
// route with a cached token and a session route on the memory store, each
// next to a bare httputil.ReverseProxy with the same transport, so that the
// ratio is the gateway's cost. Two upstreams:
//
//   - "roundtripper": an http.RoundTripper that answers in process, without
//     a network: what remains is the gateway (and httputil's) own work;
//   - "loopback": a real httptest server on 127.0.0.1 through the route's
//     pooled *http.Transport, as in production.
//
// The access log is on and encodes JSON to io.Discard, as `serve` does to
// stderr, so its cost is counted; "jwt-cached-nolog" turns it off.
// go test -run '^$' -bench . -benchmem ./gateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/internal/logging"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/mint"
	"github.com/portcullis/portcullis/store"
	"github.com/portcullis/portcullis/validator"
)

// benchRevocations is the size of the revocation list loaded before every
// handler benchmark (the figure the load harness uses too), so that the
// Bloom filter has realistic contents.
const benchRevocations = 100000

const benchIssuer = "https://idp.bench/"

// benchConfig has one route per target. {{UP}} and {{KEY}} are replaced.
const benchConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
jwt:
  issuers:
    - issuer: "https://idp.bench/"
      audiences: [api]
      algorithms: [RS256]
      keys: ["{{KEY}}"]
log:
  access: {{ACCESS}}
routes:
  - name: public
    path: /public
    upstream: "{{UP}}"
    auth: none
  - name: api
    path: /api
    upstream: "{{UP}}"
    auth: jwt
    roles: [user]
  - name: app
    path: /app
    upstream: "{{UP}}"
    auth: session
    roles: [user]
`

// benchKeys is one RSA-2048 issuer key for every benchmark of the process.
var benchKeys = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// benchEnv is a Gateway with its dependencies and valid credentials.
type benchEnv struct {
	g       *Gateway
	token   string // RS256 JWT accepted on /api
	session string // session ID accepted on /app
}

// newBenchEnv builds a Gateway for upstream (a URL; with rt != nil every
// route's transport is replaced by rt). accessLog false sets log.access off.
func newBenchEnv(b *testing.B, upstream string, rt http.RoundTripper, accessLog bool) *benchEnv {
	b.Helper()
	key, err := benchKeys()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	keyPath := filepath.Join(dir, "idp.pub.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		b.Fatal(err)
	}
	yaml := strings.NewReplacer("{{UP}}", upstream, "{{KEY}}", keyPath, "{{ACCESS}}", fmt.Sprint(accessLog)).Replace(benchConfig)
	cfg, err := ParseConfig(filepath.Join(dir, "bench.yaml"), []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := metrics.New()
	st := store.NewMemory(store.MemoryOptions{})
	exp := time.Now().Add(time.Hour)
	for i := range benchRevocations {
		if err := st.AddRevocation(ctx, store.Revocation{Kind: store.KindToken, Issuer: benchIssuer, ID: fmt.Sprintf("rev-%06d", i), ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
	}
	deny, err := denylist.New(cfg.Revocation, st, denylist.Options{Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = deny.Run(ctx)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !deny.Ready() {
		if time.Now().After(deadline) {
			b.Fatal("denylist did not load within 30s")
		}
		time.Sleep(time.Millisecond)
	}

	g, err := New(ctx, cfg, Options{Logger: zap.NewNop(), AccessLogger: benchLogger(), Store: st, Deny: deny, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	if rt != nil {
		for _, r := range g.state.Load().routes {
			r.proxy.Transport = rt
		}
	}
	b.Cleanup(func() {
		g.Close()
		cancel()
		<-done
		_ = st.Close()
	})

	signer, err := mint.NewSigner(key, "")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := signer.MintDev(mint.Dev{Issuer: benchIssuer, Audience: []string{"api"}, Subject: "alice",
		Roles: []string{"user", "orders:read"}, Scope: "read write", ACR: "pwd", AMR: []string{"pwd", "otp"},
		AuthTime: time.Now().Unix(), TTL: time.Hour, JTI: "bench-jti-1"})
	if err != nil {
		b.Fatal(err)
	}
	created, err := st.CreateSession(ctx, store.NewSession{Subject: "bob", Roles: []string{"user"}, Scopes: []string{"read"},
		ACR: "pwd", AMR: []string{"pwd"}, AuthTime: time.Now(), TTL: time.Hour, Idle: 30 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{g: g, token: tok, session: created.Secret}
}

// benchLogger is serve's access logger writing to io.Discard.
func benchLogger() *zap.Logger {
	return zap.New(logging.AccessCore(zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named("access")
}

// benchRequest is a browser-like request as net/http's server builds it.
func benchRequest(target string, extra ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = "api.example.com"
	r.RemoteAddr = "203.0.113.7:51234"
	h := r.Header
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	h.Set("Accept", "application/json, text/plain, */*")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Accept-Language", "en-GB,en;q=0.9")
	h.Set("Connection", "keep-alive")
	h.Set("Cookie", "theme=dark; lang=en")
	h.Set("X-Auth-Subject", "mallory") // spoofed: stripped
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return r
}

// discardWriter is a reusable http.ResponseWriter that keeps only the
// status; its header map is cleared (not reallocated) between requests.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) reset()                      { clear(w.h); w.status = 0 }

// answerRT answers every request in process with 200 "ok", as a minimal
// upstream would, without a network.
type answerRT struct{}

func (answerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"2"}},
		Body:          io.NopCloser(strings.NewReader("ok")),
		ContentLength: 2,
		Request:       r,
	}, nil
}

// benchUpstream is a loopback upstream answering 200 "ok".
func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(s.Close)
	return s
}

// bareProxy is httputil.ReverseProxy with nothing but SetURL and
// SetXForwarded, the same transport as the gateway's routes (default
// timeout) and the same copy-buffer pool.
func bareProxy(b *testing.B, upstream string, rt http.RoundTripper) http.Handler {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	if rt == nil {
		tp := &transports{maxIdlePer: 256, dialTimeout: 10 * time.Second}
		b.Cleanup(tp.closeIdle)
		rt = tp.get(30 * time.Second)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport:  rt,
		BufferPool: bufferPool{},
	}
}

// benchServe runs h on r b.N times and fails unless every answer is 200.
func benchServe(b *testing.B, h http.Handler, r *http.Request) {
	b.Helper()
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm: caches, pools, upstream connection
	if w.status != http.StatusOK {
		b.Fatalf("status %d, want 200", w.status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d, want 200", w.status)
		}
	}
}

// BenchmarkServeHTTP is the whole pipeline per route, next to a bare
// reverse proxy, on an in-process and on a loopback upstream.
func BenchmarkServeHTTP(b *testing.B) {
	for _, upstream := range []string{"roundtripper", "loopback"} {
		b.Run(upstream, func(b *testing.B) {
			target, rt := "http://upstream.invalid", http.RoundTripper(answerRT{})
			if upstream == "loopback" {
				target, rt = benchUpstream(b).URL, nil
			}
			env := newBenchEnv(b, target, rt, true)
			b.Run("bare", func(b *testing.B) {
				benchServe(b, bareProxy(b, target, rt), benchRequest("/api/orders/42?page=2"))
			})
			b.Run("public", func(b *testing.B) {
				benchServe(b, env.g, benchRequest("/public/orders/42?page=2"))
			})
			b.Run("jwt-cached", func(b *testing.B) {
				benchServe(b, env.g, benchRequest("/api/orders/42?page=2", "Authorization", "Bearer "+env.token))
			})
			b.Run("session-memory", func(b *testing.B) {
				benchServe(b, env.g, benchRequest("/app/orders/42?page=2", "Cookie", "theme=dark; __Host-portcullis="+env.session+"; lang=en"))
			})
			if upstream == "roundtripper" {
				b.Run("jwt-cached-nolog", func(b *testing.B) {
					quiet := newBenchEnv(b, target, rt, false)
					benchServe(b, quiet.g, benchRequest("/api/orders/42?page=2", "Authorization", "Bearer "+quiet.token))
				})
			}
		})
	}
}

// BenchmarkIdentityHeaders is the identity header work of one request on
// a realistic header map, as rewrite does it: httputil's clone of the
// incoming headers, copied without every X-Auth-* the client sent into a
// map sized for the additions, then the verified identity's headers set.
// A session's Identity is new on every request, so its header values are
// prepared every time; a cached JWT's are prepared once.
func BenchmarkIdentityHeaders(b *testing.B) {
	ih := newIdentityHeaders(IdentityConfig{StripPrefix: "X-Auth-", Headers: map[string]string{"email": "X-Auth-Email"}})
	identity := func(method string) *validator.Identity {
		id := &validator.Identity{
			Method: method, Subject: "alice", Issuer: benchIssuer, TokenID: "bench-jti-1", HasJTI: true,
			Roles: []string{"user", "orders:read"}, Scopes: []string{"read", "write"}, ACR: "pwd", AMR: []string{"pwd", "otp"},
			AuthTime: time.Unix(1700000000, 0),
		}
		if method == validator.MethodSession {
			id.Issuer, id.TokenID, id.HasJTI, id.SessionHandle = "", "", false, "h-1"
		}
		id.ComputeHeaders()
		return id
	}
	in := benchRequest("/api/orders/42", "Authorization", "Bearer x.y.z", "X-Auth-Roles", "admin", "X_Auth_Acr", "mfa").Header
	for _, method := range []string{validator.MethodJWT, validator.MethodSession} {
		b.Run(method, func(b *testing.B) {
			id := identity(method)
			var h http.Header
			b.ReportAllocs()
			for b.Loop() {
				plan := ih.plan(id, memoOf(id))
				h = ih.outgoing(in.Clone(), 4+len(plan))
				setHeaders(h, plan)
			}
			if h.Get("X-Auth-Subject") != "alice" || h.Get("X-Auth-Acr") != "pwd" || h.Get("X-Auth-Roles") != "user,orders:read" {
				b.Fatalf("identity headers not applied: %v", h)
			}
			for k := range h {
				if strings.Contains(k, "_") {
					b.Fatalf("spoofed header %s kept", k)
				}
			}
		})
	}
}
