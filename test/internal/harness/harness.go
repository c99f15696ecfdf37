// Package harness runs the real portcullis binary against real upstreams
// for the end-to-end, attack and fault tests under test/. The binary is
// built once per test process; each gateway listens on free loopback ports
// that it reports in its startup log line, so there is no port race.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/portcullis/portcullis/mint"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Binary builds ./cmd/portcullis once per test process and returns its path.
// PORTCULLIS_E2E_RACE=1 builds it with the race detector.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "portcullis")
		args := []string{"build", "-o", binPath}
		if os.Getenv("PORTCULLIS_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/portcullis")
		cmd := exec.Command("go", args...)
		cmd.Dir = Root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Recorded is one request an Upstream received.
type Recorded struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       []byte
}

// Upstream is a real HTTP upstream that records every request and answers
// with its Handler (200 "ok" by default).
type Upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []Recorded
	handler  http.Handler
}

// NewUpstream starts a recording upstream on loopback.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, Recorded{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: body})
		h := u.handler
		u.mu.Unlock()
		if h != nil {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

// Handle replaces the answer of the upstream.
func (u *Upstream) Handle(h http.HandlerFunc) {
	u.mu.Lock()
	u.handler = h
	u.mu.Unlock()
}

// Requests returns a copy of what was received so far.
func (u *Upstream) Requests() []Recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Recorded(nil), u.requests...)
}

// Count is the number of requests received.
func (u *Upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

// Last returns the last request received; it fails the test if none.
func (u *Upstream) Last(t testing.TB) Recorded {
	t.Helper()
	rs := u.Requests()
	if len(rs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return rs[len(rs)-1]
}

// Reset forgets the recorded requests.
func (u *Upstream) Reset() {
	u.mu.Lock()
	u.requests = nil
	u.mu.Unlock()
}

// Gateway is a running portcullis serve process.
type Gateway struct {
	t          testing.TB
	cmd        *exec.Cmd
	ConfigPath string
	URL        string // http://127.0.0.1:port of the main listener
	AdminURL   string
	Addr       string // host:port of the main listener
	logs       *syncBuffer
	done       chan struct{}
	exitErr    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Config renders a configuration template: {{.Upstream}} and any Vars.
// Listen addresses default to 127.0.0.1:0 (reported by the gateway).
func Config(t testing.TB, tmpl string, vars map[string]any) string {
	t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New("cfg").Option("missingkey=error").Parse(tmpl)).Execute(&b, vars); err != nil {
		t.Fatalf("config template: %v", err)
	}
	return b.String()
}

// WriteFile writes content to a new file in a temporary directory.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReplaceFile replaces the file at path atomically, as an editor saves: a
// new file renamed over it, so a reader never sees half of it.
func ReplaceFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Start writes the configuration to dir and runs `portcullis serve` on it;
// it returns once both listeners accept and /healthz answers. extraEnv are
// KEY=VALUE pairs. The process is stopped (SIGTERM) at cleanup.
func Start(t testing.TB, dir, config string, extraEnv ...string) *Gateway {
	t.Helper()
	path := WriteFile(t, dir, fmt.Sprintf("portcullis-%d.yaml", time.Now().UnixNano()), config)
	return StartFile(t, path, extraEnv...)
}

// StartFile runs `portcullis serve --config path`.
func StartFile(t testing.TB, path string, extraEnv ...string) *Gateway {
	t.Helper()
	return StartServe(t, path, nil, extraEnv...)
}

// StartServe runs `portcullis serve --config path` with more serve flags.
func StartServe(t testing.TB, path string, flags []string, extraEnv ...string) *Gateway {
	t.Helper()
	bin := Binary(t)
	g := &Gateway{t: t, ConfigPath: path, logs: &syncBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(bin, append([]string{"serve", "--config", path}, flags...)...)
	g.cmd.Env = append(os.Environ(), extraEnv...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stdout = g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = g.logs.Write([]byte(line + "\n"))
			if !sent && strings.Contains(line, `"portcullis serving"`) {
				var m struct{ Listen, Admin string }
				if json.Unmarshal([]byte(line), &m) == nil {
					addrs <- [2]string{m.Listen, m.Admin}
					sent = true
				}
			}
		}
	}()
	go func() {
		g.exitErr = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() { // what the gateway saw, for a failure that may not repeat
			logs := g.logs.String()
			t.Logf("%s: the gateway's last log lines:\n%s", path, logs[max(0, len(logs)-8000):])
		}
	})
	select {
	case a := <-addrs:
		g.Addr = a[0]
		g.URL = "http://" + a[0]
		g.AdminURL = "http://" + a[1]
	case <-g.done:
		t.Fatalf("portcullis exited before serving: %v\nlogs:\n%s", g.exitErr, g.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("portcullis did not start within 60s\nlogs:\n%s", g.logs.String())
	}
	Eventually(t, 20*time.Second, "gateway /healthz", func() bool {
		resp, err := http.Get(g.AdminURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return g
}

// Logs returns everything the process logged so far.
func (g *Gateway) Logs() string { return g.logs.String() }

// Signal sends sig to the process.
func (g *Gateway) Signal(sig os.Signal) {
	if g.cmd.Process != nil {
		_ = g.cmd.Process.Signal(sig)
	}
}

// Done is closed when the process has exited.
func (g *Gateway) Done() <-chan struct{} { return g.done }

// ExitErr is the process's exit status (after Done).
func (g *Gateway) ExitErr() error { return g.exitErr }

// Stop sends SIGTERM and waits (killing it after 30s).
func (g *Gateway) Stop() {
	select {
	case <-g.done:
		return
	default:
	}
	g.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// WaitReady waits until /readyz answers 200.
func (g *Gateway) WaitReady(t testing.TB) {
	t.Helper()
	Eventually(t, 30*time.Second, "gateway /readyz 200", func() bool {
		resp, err := http.Get(g.AdminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// Admin calls the admin API with the bearer token; body is JSON (or "").
func (g *Gateway) Admin(t testing.TB, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, g.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// Session is the answer of POST /v1/sessions.
type Session struct {
	SessionID    string `json:"session_id"`
	RefreshToken string `json:"refresh_token"`
	Handle       string `json:"handle"`
	ExpiresAt    int64  `json:"expires_at"`
}

// CreateSession creates a session through the admin API (body is its JSON)
// and fails the test unless the answer is 201.
func (g *Gateway) CreateSession(t testing.TB, adminToken, body string) Session {
	t.Helper()
	code, data := g.Admin(t, adminToken, "POST", "/v1/sessions", body)
	if code != 201 {
		t.Fatalf("POST /v1/sessions: %d %s", code, data)
	}
	var s Session
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Eventually polls cond every few milliseconds until it holds or the
// deadline passes (then the test fails naming what was awaited).
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Keys is a test key pair written to files.
type Keys struct {
	Private, Public string // PEM file paths
	Signer          *mint.Signer
}

// NewES256 generates a P-256 key pair in dir.
func NewES256(t testing.TB, dir, name string) Keys {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeKeys(t, dir, name, k, &k.PublicKey)
}

// NewRS256 generates an RSA-2048 key pair in dir.
func NewRS256(t testing.TB, dir, name string) Keys {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return writeKeys(t, dir, name, k, &k.PublicKey)
}

func writeKeys(t testing.TB, dir, name string, priv any, pub any) Keys {
	t.Helper()
	pk8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pkix, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ks := Keys{
		Private: WriteFile(t, dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk8}))),
		Public:  WriteFile(t, dir, name+".pub.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}))),
	}
	s, err := mint.LoadSigner(ks.Private, "")
	if err != nil {
		t.Fatal(err)
	}
	ks.Signer = s
	return ks
}

// Token mints a JWT with d's claims (Now defaults to time.Now, TTL to 10m).
func (k Keys) Token(t testing.TB, d mint.Dev) string {
	t.Helper()
	if d.Now.IsZero() {
		d.Now = time.Now()
	}
	tok, err := k.Signer.MintDev(d)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Client is an HTTP client that does not follow redirects and keeps no
// cookies, so tests see exactly what the gateway answered.
func Client() *http.Client {
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Do sends a request built by the caller and returns status, headers, body.
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// Get is a GET with optional header pairs ("Name", "value", ...).
func Get(t testing.TB, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return Do(t, req)
}

// Raw writes a raw HTTP/1.1 request on a new connection to addr and
// returns everything read until the server closes the connection (send
// "Connection: close") or 5s of silence.
func Raw(t testing.TB, addr, request string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.String()
}

// Context is a context cancelled at test cleanup.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
