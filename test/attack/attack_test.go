// Package attack is the attack suite: hostile requests sent to the real
// portcullis binary, built from this checkout, in front of a recording
// upstream. Every case asserts the exact status (and the WWW-Authenticate
// challenge and JSON error where SPEC defines them) and what the upstream
// saw: nothing at all for a refusal; for an accepted request exactly one
// request with the exact path, no spoofed identity header and no smuggled
// second request.
//
// Requests that Go's http.Client would normalise (paths, folded or
// duplicated headers, smuggling shapes, absolute-form targets) are written
// as raw bytes on a TCP connection. Go's HTTP server refuses several of them
// itself before the gateway's handler runs; each case records which layer
// answers ("net/http" or "gateway"), and the runner checks it: only the
// gateway's answers carry X-Request-Id and a JSON error body.
package attack

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const (
	adminToken = "attack-admin-token-5f1c9e"
	cookieName = "__Host-portcullis"
	issuer     = "https://idp.test/"
	rsaIssuer  = "https://rsa.test/"
)

// attackConfig is the gateway every category starts: one route per kind of
// policy an attacker would like to reach or bypass.
const attackConfig = `
server:
  listen: "127.0.0.1:0"
  max_header_bytes: 32768
{{.Server}}
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
{{.Store}}
jwt:
  issuers:
    - issuer: "` + issuer + `"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.ES}}"]
      max_lifetime: 24h
      leeway: 30s
    - issuer: "` + rsaIssuer + `"
      audiences: [api]
      algorithms: [RS256]
      keys: ["{{.RS}}"]
identity:
  headers: {email: X-Auth-Email}
revocation:
  resync_interval: 2s
routes:
  - name: public
    path: /public
    upstream: "{{.Up}}"
    auth: none
  - name: admin
    path: /admin
    upstream: "{{.Up}}"
    auth: jwt
    roles: [admin]
  - name: api
    path: /api
    upstream: "{{.Up}}"
    auth: jwt
  - name: scoped
    path: /scoped
    upstream: "{{.Up}}"
    auth: jwt
    scopes: [read, write]
  - name: app
    path: /app
    upstream: "{{.Up}}"
    auth: any
    login_url: "https://login.example.com/start"
  - name: pay
    path: /pay
    upstream: "{{.Up}}"
    auth: jwt
    step_up: {acr: [mfa], max_age: 5m, url: "https://login.example.com/mfa"}
  - name: files
    path: /files
    upstream: "{{.Up}}"
    auth: jwt
    allow_encoded_slash: true
  - name: svc
    path: /svc
    upstream: "{{.Up}}/base"
    strip_path: true
    auth: jwt
  - name: ws
    path: /ws
    upstream: "{{.Up}}"
    auth: jwt
  - name: readonly
    path: /ro
    methods: [GET]
    upstream: "{{.Up}}"
    auth: none
  - name: dead
    path: /dead
    upstream: "http://127.0.0.1:1"
    auth: none
  - name: slow
    path: /slow
    upstream: "{{.Up}}"
    auth: none
    timeout: 300ms
  - name: upload
    path: /upload
    upstream: "{{.Strict}}"
    auth: none
  - name: upload-auth
    path: /upload-auth
    upstream: "{{.Strict}}"
    auth: jwt
  - name: host-admin
    host: admin.example.com
    path: /
    upstream: "{{.Up}}"
    auth: jwt
    roles: [admin]
  - name: host-open
    host: open.example.com
    path: /
    upstream: "{{.Up}}"
    auth: none
`

// env is one running gateway with its upstream and keys.
type env struct {
	gw *h.Gateway
	up *h.Upstream
	// strict is the upstream of /upload and /upload-auth: it tells
	// complete requests from aborted ones.
	strict *strictUpstream
	es     h.Keys // the trusted ES256 issuer's key pair
	rs     h.Keys // the trusted RS256 issuer's key pair
	esKey  *ecdsa.PrivateKey
	rsKey  *rsa.PrivateKey
	evil   *ecdsa.PrivateKey // an attacker's key, trusted by nobody
	evilK  h.Keys
}

type options struct {
	server string // extra lines under server:
	store  string // the store: section body
}

// start runs a gateway with attackConfig. The upstream answers 200 "ok",
// except /ws (a WebSocket endpoint answering 101 and echoing lines) and
// /slow (never answers before the client goes away).
func start(t *testing.T, o options) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{up: h.NewUpstream(t), strict: newStrictUpstream(t)}
	e.es = h.NewES256(t, dir, "idp")
	e.rs = h.NewRS256(t, dir, "rsa")
	e.evilK = h.NewES256(t, dir, "evil")
	e.esKey = privateKey(t, e.es).(*ecdsa.PrivateKey)
	e.rsKey = privateKey(t, e.rs).(*rsa.PrivateKey)
	e.evil = privateKey(t, e.evilK).(*ecdsa.PrivateKey)
	e.up.Handle(upstreamHandler)
	if o.store == "" {
		o.store = "  type: memory"
	}
	cfg := h.Config(t, attackConfig, map[string]any{"ES": e.es.Public, "RS": e.rs.Public, "Up": e.up.URL, "Strict": e.strict.URL, "Server": o.server, "Store": o.store})
	e.gw = h.Start(t, dir, cfg)
	e.gw.WaitReady(t)
	return e
}

func privateKey(t *testing.T, k h.Keys) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/ws") && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := brw.ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(c, "echo: "+line)
		}
	case strings.HasPrefix(r.URL.Path, "/slow"):
		<-r.Context().Done()
	default:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}
}

// strictUpstream records a request only once its body has been read to
// the end without error; a request whose body broke off (the gateway
// aborted it) is counted apart. A complete request is recorded before the
// upstream answers, so before the gateway does; an aborted one may be
// noticed later, which is why the two are kept apart.
type strictUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	complete []h.Recorded
	aborted  []string // request-targets
}

func newStrictUpstream(t *testing.T) *strictUpstream {
	u := &strictUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		u.mu.Lock()
		if err != nil {
			u.aborted = append(u.aborted, r.RequestURI)
		} else {
			u.complete = append(u.complete, h.Recorded{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body})
		}
		u.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

// Complete returns the complete requests received since the last Reset.
func (u *strictUpstream) Complete() []h.Recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]h.Recorded(nil), u.complete...)
}

// Aborted returns the request-targets of every aborted request so far.
func (u *strictUpstream) Aborted() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.aborted...)
}

// Reset forgets the complete requests.
func (u *strictUpstream) Reset() {
	u.mu.Lock()
	u.complete = nil
	u.mu.Unlock()
}

// token mints a valid token of the ES256 issuer; d's empty iss, aud and sub
// get defaults.
func (e *env) token(t *testing.T, d mint.Dev) string {
	t.Helper()
	if d.Issuer == "" {
		d.Issuer = issuer
	}
	if d.Audience == nil {
		d.Audience = []string{"api"}
	}
	if d.Subject == "" {
		d.Subject = "alice"
	}
	return e.es.Token(t, d)
}

// claims are the payload of a valid token of the ES256 issuer, to be
// changed by a case.
func claims(mod func(c jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": issuer, "aud": "api", "sub": "alice", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "attack-jti"}
	if mod != nil {
		mod(c)
	}
	return c
}

// sign signs c with method and key; hdr entries are added to the JOSE
// header (a nil value removes the entry).
func sign(t *testing.T, method jwt.SigningMethod, key any, hdr map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range hdr {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signES signs c with the trusted ES256 key and its kid.
func (e *env) signES(t *testing.T, hdr map[string]any, c jwt.MapClaims) string {
	t.Helper()
	full := map[string]any{"kid": e.es.Signer.KeyID()}
	for k, v := range hdr {
		full[k] = v
	}
	return sign(t, jwt.SigningMethodES256, e.esKey, full, c)
}

var b64 = base64.RawURLEncoding

// assemble builds header.payload.signature from raw JSON values (any
// value is marshalled; a string or []byte is used as is).
func assemble(t *testing.T, header, payload any, sig []byte) string {
	t.Helper()
	enc := func(v any) string {
		switch x := v.(type) {
		case string:
			return b64.EncodeToString([]byte(x))
		case []byte:
			return b64.EncodeToString(x)
		}
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64.EncodeToString(data)
	}
	return enc(header) + "." + enc(payload) + "." + b64.EncodeToString(sig)
}

// get is a raw GET of target with Host gw.test and extra header lines.
func get(target string, headers ...string) string {
	return request("GET", target, headers...)
}

func request(method, target string, headers ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gw.test\r\n")
	for _, hl := range headers {
		b.WriteString(hl + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func bearer(tok string) string { return "Authorization: Bearer " + tok }

// answer is one response read from a raw connection.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// fromGateway reports whether the gateway's handler answered: it sets
// X-Request-Id on every response; Go's server does not on its own errors.
func (a answer) fromGateway() bool { return a.header.Get("X-Request-Id") != "" }

func (a answer) String() string {
	return fmt.Sprintf("%d %v %q", a.status, a.header, a.body)
}

// send writes a raw request on a new connection and reads one response.
func send(t *testing.T, addr, req string) answer {
	t.Helper()
	as := exchange(t, addr, req, 1)
	if len(as) == 0 {
		t.Fatalf("no response to %q", firstLine(req))
	}
	return as[0]
}

// exchange writes raw bytes on a new connection and reads up to max
// responses (0: until the server closes the connection).
func exchange(t *testing.T, addr, raw string, max int) []answer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []answer
	for max == 0 || len(out) < max {
		method := "GET"
		if strings.HasPrefix(raw, "HEAD ") {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, answer{status: resp.StatusCode, header: resp.Header, body: body})
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// Which layer answers a case.
const (
	byGateway = "" // the gateway's handler (the default)
	byNetHTTP = "net/http"
)

// rawCase is one attack: a raw request, the answer it must get, and what
// the upstream may see.
type rawCase struct {
	name   string
	req    string
	status int
	by     string // byGateway or byNetHTTP
	code   string // JSON "error" of a gateway refusal; "" checks only that there is one
	www    string // a substring WWW-Authenticate must hold (401 always needs a Bearer challenge)
	// uri: "" means the upstream must receive nothing; otherwise exactly one
	// request with exactly this request-target.
	uri   string
	check func(t *testing.T, a answer, got h.Recorded)
}

// run sends every case in order (they share the upstream's record).
func (e *env) run(t *testing.T, cases []rawCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.up.Reset()
			a := send(t, e.gw.Addr, tc.req)
			e.verify(t, tc, a)
		})
	}
}

func (e *env) verify(t *testing.T, tc rawCase, a answer) {
	t.Helper()
	if a.status != tc.status {
		t.Fatalf("status %d, want %d; answer %s", a.status, tc.status, a)
	}
	switch tc.by {
	case byNetHTTP:
		if a.fromGateway() {
			t.Errorf("answered by the gateway's handler, expected net/http to refuse it: %s", a)
		}
	default:
		if !a.fromGateway() {
			t.Errorf("answered by net/http, expected the gateway's handler: %s", a)
		}
		if a.status >= 400 {
			checkErrorBody(t, a, tc.code)
		}
	}
	wa := a.header.Get("WWW-Authenticate")
	if a.status == 401 && !strings.HasPrefix(wa, "Bearer ") {
		t.Errorf("401 without a Bearer challenge: %q", wa)
	}
	if tc.www != "" && !strings.Contains(wa, tc.www) {
		t.Errorf("WWW-Authenticate %q lacks %q", wa, tc.www)
	}
	if tok := presentedToken(tc.req); tok != "" && (bytes.Contains(a.body, []byte(tok)) || strings.Contains(fmt.Sprint(a.header), tok)) {
		t.Error("the answer echoes the token")
	}
	rs := e.up.Requests()
	if tc.uri == "" {
		if len(rs) != 0 {
			t.Fatalf("a refused request reached the upstream: %q", rs[0].RequestURI)
		}
		return
	}
	if len(rs) != 1 {
		t.Fatalf("the upstream received %d requests, want exactly 1", len(rs))
	}
	if rs[0].RequestURI != tc.uri {
		t.Errorf("upstream request-target %q, want %q", rs[0].RequestURI, tc.uri)
	}
	if tc.check != nil {
		tc.check(t, a, rs[0])
	}
}

// checkErrorBody checks SPEC's JSON error body: error (== code when given),
// and request_id equal to the X-Request-Id header.
func checkErrorBody(t *testing.T, a answer, code string) {
	t.Helper()
	if a.status == http.StatusFound {
		return
	}
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		RequestID   string `json:"request_id"`
	}
	if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error == "" {
		t.Errorf("body %q is not a JSON error", a.body)
		return
	}
	if code != "" && eb.Error != code {
		t.Errorf("JSON error %q, want %q", eb.Error, code)
	}
	if eb.RequestID == "" || eb.RequestID != a.header.Get("X-Request-Id") {
		t.Errorf("request_id %q differs from X-Request-Id %q", eb.RequestID, a.header.Get("X-Request-Id"))
	}
}

// presentedToken is the bearer token of a raw request, if any.
func presentedToken(req string) string {
	i := strings.Index(req, "Authorization: Bearer ")
	if i < 0 {
		return ""
	}
	rest := req[i+len("Authorization: Bearer "):]
	tok, _, _ := strings.Cut(rest, "\r\n")
	if len(tok) < 16 {
		return "" // too short to be told apart from ordinary text
	}
	return tok
}

// invalidToken is the answer to any token the gateway refuses.
func invalidToken(name, req string) rawCase {
	return rawCase{name: name, req: req, status: 401, code: "invalid_token", www: `Bearer error="invalid_token", error_description="`}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
