package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// Revocation end to end (issue #4): several real gateway processes share
// one real redis-server; revocations made on one node must reach the others
// through pub/sub, survive partitions and Redis restarts, and cost no Redis
// command on the hot path.

const revIssuer = "https://idp.test/"

const revConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
  type: redis
  redis:
    addrs: ["{{.Redis}}"]
    timeout: 500ms
jwt:
  issuers:
    - issuer: "` + revIssuer + `"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
revocation:
  resync_interval: {{.Resync}}
routes:
  - name: api
    path: /api
    upstream: "{{.Up}}"
    auth: jwt
  - name: account
    path: /acct
    upstream: "{{.Up}}"
    auth: session
`

// revEnv is an identity provider's key and one upstream shared by the
// gateway nodes of a test.
type revEnv struct {
	dir  string
	keys h.Keys
	up   *h.Upstream
}

func newRevEnv(t *testing.T) *revEnv {
	t.Helper()
	dir := t.TempDir()
	return &revEnv{dir: dir, keys: h.NewES256(t, dir, "idp"), up: h.NewUpstream(t)}
}

// node starts one gateway on the Redis at redisAddr and waits until it is
// ready (revocations loaded).
func (e *revEnv) node(t *testing.T, redisAddr, resync string) *h.Gateway {
	t.Helper()
	cfg := h.Config(t, revConfig, map[string]any{"Redis": redisAddr, "Key": e.keys.Public, "Up": e.up.URL, "Resync": resync})
	gw := h.Start(t, e.dir, cfg)
	gw.WaitReady(t)
	return gw
}

func (e *revEnv) nodes(t *testing.T, n int, redisAddr, resync string) []*h.Gateway {
	t.Helper()
	out := make([]*h.Gateway, n)
	for i := range out {
		out[i] = e.node(t, redisAddr, resync)
	}
	return out
}

// token mints a JWT of the test issuer; Subject defaults to "alice".
func (e *revEnv) token(t *testing.T, d mint.Dev) string {
	t.Helper()
	d.Issuer, d.Audience = revIssuer, []string{"api"}
	if d.Subject == "" {
		d.Subject = "alice"
	}
	return e.keys.Token(t, d)
}

type revAnswer struct {
	JTI       string `json:"jti"`
	Issuer    string `json:"issuer"`
	ExpiresAt int64  `json:"expires_at"`
}

// revPost calls POST /v1/revocations and checks the 201 answer.
func revPost(t *testing.T, gw *h.Gateway, body string) revAnswer {
	t.Helper()
	code, data := gw.Admin(t, adminToken, "POST", "/v1/revocations", body)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/revocations: %d %s", code, data)
	}
	var a revAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("POST /v1/revocations answer %s: %v", data, err)
	}
	return a
}

func revRevokeJTI(t *testing.T, gw *h.Gateway, jti string, exp int64) revAnswer {
	t.Helper()
	return revPost(t, gw, fmt.Sprintf(`{"jti":%q,"issuer":%q,"expires_at":%d}`, jti, revIssuer, exp))
}

func revRevokeToken(t *testing.T, gw *h.Gateway, tok string) revAnswer {
	t.Helper()
	return revPost(t, gw, fmt.Sprintf(`{"token":%q}`, tok))
}

// revWantStatus fails unless GET path with the bearer token answers want.
func revWantStatus(t *testing.T, gw *h.Gateway, path, tok string, want int, what string) {
	t.Helper()
	resp, body := h.Get(t, gw.URL+path, "Authorization", bearer(tok))
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d (%s)", what, resp.StatusCode, want, body)
	}
}

// revRejectsWithin polls every node for every token (concurrently, every
// 2 ms) until each answers 401, and returns the time from start until the
// last one did; it fails the test if any takes longer than bound.
func revRejectsWithin(t *testing.T, pc *http.Client, nodes []*h.Gateway, toks []string, start time.Time, bound time.Duration, what string) time.Duration {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		worst time.Duration
		errs  []string
	)
	for i, g := range nodes {
		for j, tok := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := h.PollStatus(pc, g.URL+"/api", tok, http.StatusUnauthorized, start, start.Add(bound), 2*time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				worst = max(worst, d)
				if err == nil && d > bound {
					err = fmt.Errorf("took %s", d)
				}
				if err != nil {
					errs = append(errs, fmt.Sprintf("node %d, token %d: %v", i, j, err))
				}
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%s: not rejected everywhere within %s: %s", what, bound, strings.Join(errs, "; "))
	}
	return worst
}

// revMetric returns one sample of the node's /metrics ("name{labels}").
func revMetric(t *testing.T, gw *h.Gateway, name string) float64 {
	t.Helper()
	v, ok := scrape(t, gw)[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// revHousekeeping names the commands that are not about requests: the
// test's own INFO, the subscription and its health pings, and the handshake
// of a new pool connection (HELLO, CLIENT SETINFO, AUTH, SELECT), which a
// loaded machine may make go-redis dial at any moment.
func revHousekeeping(name string) bool {
	switch name {
	case "info", "ping", "hello", "client", "auth", "select",
		"subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe":
		return true
	}
	return false
}

// TestRevocationPropagatesToEveryNode: three nodes; each of 100 tokens is
// revoked on the first node and the other two are polled until they reject
// it. The clock starts when the POST /v1/revocations is sent.
// Not parallel: the figure is taken without the other tests of this
// package competing for the CPU.
func TestRevocationPropagatesToEveryNode(t *testing.T) {
	rs := redistest.Start(t)
	e := newRevEnv(t)
	nodes := e.nodes(t, 3, rs.Addr(), "1m")
	a, others := nodes[0], nodes[1:]
	pc := h.PollClient()
	keeper := e.token(t, mint.Dev{Subject: "keeper"})

	const n = 100
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	lat := make([]time.Duration, 0, n)
	revoked := make([]string, 0, n)
	for i := range n {
		jti := fmt.Sprintf("prop-%03d", i)
		tok := e.token(t, mint.Dev{Subject: fmt.Sprintf("user-%d", i), JTI: jti, Now: exp.Add(-mint.DefaultDevTTL)})
		for j, g := range others {
			if code, err := h.StatusOf(pc, g.URL+"/api", tok); err != nil || code != http.StatusOK {
				t.Fatalf("token %d before revocation on node %d: %d %v", i, j+1, code, err)
			}
		}
		start := time.Now()
		var got revAnswer
		if i%2 == 0 {
			got = revRevokeJTI(t, a, jti, exp.Unix())
		} else {
			got = revRevokeToken(t, a, tok)
		}
		lat = append(lat, revRejectsWithin(t, pc, others, []string{tok}, start, time.Second, fmt.Sprintf("token %d", i)))
		want := revAnswer{JTI: jti, Issuer: revIssuer, ExpiresAt: exp.Unix()}
		if got != want {
			t.Fatalf("token %d: POST answer %+v, want %+v", i, got, want)
		}
		revoked = append(revoked, tok)
	}
	t.Logf("FIGURE revocation propagation to 2 other nodes (from POST sent to both answering 401; poll every 2ms): p50=%s p99=%s max=%s n=%d",
		h.Percentile(lat, 50).Round(10*time.Microsecond), h.Percentile(lat, 99).Round(10*time.Microsecond),
		h.Percentile(lat, 100).Round(10*time.Microsecond), len(lat))

	t.Run("GET /v1/revocations/{jti} on another node, whichever form revoked it", func(t *testing.T) {
		for i := range n {
			jti := fmt.Sprintf("prop-%03d", i)
			code, data := others[i%2].Admin(t, adminToken, "GET", "/v1/revocations/"+jti, "")
			var got revAnswer
			if code != 200 || json.Unmarshal(data, &got) != nil {
				t.Fatalf("GET %s: %d %s", jti, code, data)
			}
			if want := (revAnswer{JTI: jti, Issuer: revIssuer, ExpiresAt: exp.Unix()}); got != want {
				t.Fatalf("GET %s: %+v, want %+v", jti, got, want)
			}
		}
		if code, data := a.Admin(t, adminToken, "GET", "/v1/revocations/never-revoked", ""); code != 404 {
			t.Fatalf("unknown jti: %d %s", code, data)
		}
	})

	t.Run("a jti-less token revoked by {token}: its jti is the hash key", func(t *testing.T) {
		now := time.Now()
		tok, err := e.keys.Signer.Sign(jwt.MapClaims{"iss": revIssuer, "aud": "api", "sub": "nojti", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range others {
			revWantStatus(t, g, "/api", tok, 200, "a jti-less token before revocation")
		}
		sum := sha256.Sum256([]byte(tok[:strings.LastIndexByte(tok, '.')]))
		wantJTI := "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
		start := time.Now()
		got := revRevokeToken(t, a, tok)
		revRejectsWithin(t, pc, others, []string{tok}, start, time.Second, "a jti-less token")
		if want := (revAnswer{JTI: wantJTI, Issuer: revIssuer, ExpiresAt: now.Add(5 * time.Minute).Unix()}); got != want {
			t.Fatalf("POST answer %+v, want %+v", got, want)
		}
		code, data := others[0].Admin(t, adminToken, "GET", "/v1/revocations/"+wantJTI, "")
		if code != 200 || !strings.Contains(string(data), `"jti":"`+wantJTI+`"`) {
			t.Fatalf("GET /v1/revocations/<hash key>: %d %s", code, data)
		}
	})

	t.Run("revoked tokens get invalid_token and never reach the upstream; others pass", func(t *testing.T) {
		for _, g := range nodes {
			e.up.Reset()
			for _, tok := range []string{revoked[0], revoked[n-1]} {
				resp, body := h.Get(t, g.URL+"/api", "Authorization", bearer(tok))
				if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Fatalf("revoked token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
				}
			}
			if e.up.Count() != 0 {
				t.Fatal("a revoked token reached the upstream")
			}
			revWantStatus(t, g, "/api", keeper, 200, "a token never revoked")
		}
	})
}

// TestRevocationReachesAPartitionedNode: node B reaches Redis through a
// proxy that the test cuts. While cut, B serves valid JWTs and cannot learn
// of a revocation made on A; once the cut ends, B rejects the token within
// resync_interval plus a few seconds.
func TestRevocationReachesAPartitionedNode(t *testing.T) {
	t.Parallel()
	const resync = 2 * time.Second
	rs := redistest.Start(t)
	proxy := h.NewTCPProxy(t, rs.Addr())
	e := newRevEnv(t)
	a := e.node(t, rs.Addr(), resync.String())
	b := e.node(t, proxy.Addr(), resync.String())
	h.Eventually(t, 10*time.Second, "B subscribed to revocations", func() bool {
		return revMetric(t, b, "portcullis_revocation_subscribed") == 1
	})
	pc := h.PollClient()

	valid := e.token(t, mint.Dev{Subject: "val"})
	early := e.token(t, mint.Dev{Subject: "early"})
	late := e.token(t, mint.Dev{Subject: "late"})
	revRevokeToken(t, a, early)
	revRejectsWithin(t, pc, []*h.Gateway{b}, []string{early}, time.Now(), time.Second, "a token revoked before the cut")
	revWantStatus(t, b, "/api", late, 200, "B before the cut")

	proxy.Cut()
	h.Eventually(t, 10*time.Second, "B to notice the cut (portcullis_revocation_subscribed 0)", func() bool {
		return revMetric(t, b, "portcullis_revocation_subscribed") == 0
	})
	revRevokeToken(t, a, late)
	revWantStatus(t, a, "/api", late, 401, "A right after revoking")
	// The cut lasts until B has failed a periodic resync, so that B's
	// recovery below is the retry path, not a lucky scheduled resync.
	const resyncFailed = "resync from the store failed"
	failedBefore := strings.Count(b.Logs(), resyncFailed)
	h.Eventually(t, 3*resync+5*time.Second, "B to fail a resync during the cut", func() bool {
		for range 5 {
			revWantStatus(t, b, "/api", valid, 200, "B during the cut, a valid JWT")
		}
		return strings.Count(b.Logs(), resyncFailed) > failedBefore
	})
	revWantStatus(t, b, "/api", early, 401, "B during the cut, a token it knew revoked")
	revWantStatus(t, b, "/api", late, 200, "B during the cut, the token revoked meanwhile (B cannot know: the cut is real)")
	if resp, _ := h.Get(t, b.AdminURL+"/readyz"); resp.StatusCode != 503 {
		t.Fatalf("B /readyz during the cut: %d, want 503", resp.StatusCode)
	}

	proxy.Restore()
	start := time.Now()
	bound := resync + 3*time.Second
	took := revRejectsWithin(t, pc, []*h.Gateway{b}, []string{late}, start, bound, "the token revoked during the cut, on B")
	t.Logf("FIGURE partitioned node rejects a token revoked during the cut: %s after the cut ended (resync_interval=%s, bound %s)",
		took.Round(time.Millisecond), resync, bound)
	revWantStatus(t, b, "/api", valid, 200, "B after the cut, a valid JWT")
	b.WaitReady(t)

	h.Eventually(t, 15*time.Second, "B subscribed again", func() bool {
		return revMetric(t, b, "portcullis_revocation_subscribed") == 1
	})
	after := e.token(t, mint.Dev{Subject: "after"})
	start = time.Now()
	revRevokeToken(t, a, after)
	revRejectsWithin(t, pc, []*h.Gateway{b}, []string{after}, start, time.Second, "a revocation after the cut (pub/sub again)")
}

// TestRevocationsSurviveRedisRestart: Redis with appendonly restarts; the
// revocations survive, the nodes reconnect by themselves, and a node
// started (or restarted) afterwards rejects what was revoked before.
func TestRevocationsSurviveRedisRestart(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t, "--appendonly", "yes")
	e := newRevEnv(t)
	a, b := e.node(t, rs.Addr(), "1m"), e.node(t, rs.Addr(), "1m")
	pc := h.PollClient()
	both := []*h.Gateway{a, b}

	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	byJTI := e.token(t, mint.Dev{JTI: "restart-jti", Now: exp.Add(-mint.DefaultDevTTL)})
	byToken := e.token(t, mint.Dev{JTI: "restart-token"})
	oldSam := e.token(t, mint.Dev{Subject: "sam", Now: time.Now().Add(-time.Minute)})
	valid := e.token(t, mint.Dev{Subject: "vic"})
	for _, tok := range []string{byJTI, byToken, oldSam, valid} {
		revWantStatus(t, b, "/api", tok, 200, "before any revocation")
	}

	start := time.Now()
	revRevokeJTI(t, a, "restart-jti", exp.Unix())
	revRevokeToken(t, b, byToken)
	if code, body := a.Admin(t, adminToken, "POST", "/v1/subjects/sam/revoke", ""); code != 200 {
		t.Fatalf("subject revoke: %d %s", code, body)
	}
	cutoff := time.Now()
	for _, tok := range []string{byJTI, byToken, oldSam} {
		revRejectsWithin(t, pc, both, []string{tok}, start, time.Second, "before the restart")
	}

	rs.Restart(t)
	a.WaitReady(t)
	b.WaitReady(t)

	t.Run("the nodes reconnect by themselves", func(t *testing.T) {
		fresh := e.token(t, mint.Dev{Subject: "fay"})
		revWantStatus(t, a, "/api", fresh, 200, "A after the restart")
		revRevokeToken(t, b, fresh)
		// A learns it by pub/sub or by the resync that follows its new
		// subscription; either way only once it has reconnected.
		h.Eventually(t, 15*time.Second, "A to reject a token revoked on B after the restart", func() bool {
			code, err := h.StatusOf(pc, a.URL+"/api", fresh)
			return err == nil && code == 401
		})
		for _, g := range both {
			h.Eventually(t, 15*time.Second, "subscribed again", func() bool {
				return revMetric(t, g, "portcullis_revocation_subscribed") == 1
			})
		}
		next := e.token(t, mint.Dev{Subject: "gus"})
		start := time.Now()
		revRevokeToken(t, a, next)
		revRejectsWithin(t, pc, []*h.Gateway{b}, []string{next}, start, time.Second, "a revocation after the restart")
	})

	t.Run("the revocations are still in Redis", func(t *testing.T) {
		for _, jti := range []string{"restart-jti", "restart-token"} {
			if code, data := b.Admin(t, adminToken, "GET", "/v1/revocations/"+jti, ""); code != 200 || !strings.Contains(string(data), `"jti":"`+jti+`"`) {
				t.Fatalf("GET /v1/revocations/%s after the restart: %d %s", jti, code, data)
			}
		}
	})

	later := e.token(t, mint.Dev{Subject: "sam", Now: cutoff.Add(time.Second)})
	check := func(t *testing.T, g *h.Gateway) {
		for _, tok := range []string{byJTI, byToken, oldSam} {
			revWantStatus(t, g, "/api", tok, 401, "a token revoked before this node started")
		}
		revWantStatus(t, g, "/api", valid, 200, "a valid token")
		revWantStatus(t, g, "/api", later, 200, "sam's token issued after the log-out")
	}
	t.Run("a node started after the restart rejects what was revoked before", func(t *testing.T) {
		check(t, e.node(t, rs.Addr(), "1m"))
	})
	t.Run("a restarted node rejects what was revoked before it started", func(t *testing.T) {
		a.Stop()
		a2 := h.StartFile(t, a.ConfigPath)
		a2.WaitReady(t)
		check(t, a2)
	})
}

// TestRevocationHotPathCostsNoRedisCommand: INFO commandstats around many
// JWT requests to a node: a token that is not revoked costs no Redis
// command. A session request in the same window shows the measure sees
// per-request commands.
func TestRevocationHotPathCostsNoRedisCommand(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	e := newRevEnv(t)
	gw := e.node(t, rs.Addr(), "10m")
	h.Eventually(t, 10*time.Second, "subscribed to revocations", func() bool {
		return revMetric(t, gw, "portcullis_revocation_subscribed") == 1
	})
	pc := h.PollClient()

	exp := time.Now().Add(time.Hour).Unix()
	for i := range 50 { // a filter with entries, as in production
		revRevokeJTI(t, gw, fmt.Sprintf("other-%d", i), exp)
	}
	toks := make([]string, 20)
	for i := range toks {
		toks[i] = e.token(t, mint.Dev{Subject: fmt.Sprintf("hot-%d", i)})
		revWantStatus(t, gw, "/api", toks[i], 200, "warm-up")
	}
	revokedTok := e.token(t, mint.Dev{Subject: "gone"})
	revRevokeToken(t, gw, revokedTok)
	sess := createSession(t, gw, `{"subject":"sid"}`)

	const rounds = 25
	before := h.RedisCommandStats(t, rs.Addr())
	for range rounds {
		for _, tok := range toks {
			if code, err := h.StatusOf(pc, gw.URL+"/api", tok); err != nil || code != 200 {
				t.Fatalf("JWT request: %d %v", code, err)
			}
		}
	}
	after := h.RedisCommandStats(t, rs.Addr())
	n := rounds * len(toks)
	data := h.CountDelta(before, after, revHousekeeping)
	t.Logf("FIGURE redis commands per JWT request (non-revoked, steady state): %.3f (n=%d; data-command deltas: %s; all deltas incl. housekeeping: %s)",
		float64(h.Sum(data))/float64(n), n, h.FormatCounts(data), h.FormatCounts(h.CountDelta(before, after, nil)))
	if len(data) != 0 {
		t.Errorf("%d JWT requests cost Redis data commands: %s", n, h.FormatCounts(data))
	}

	before = h.RedisCommandStats(t, rs.Addr())
	for range rounds {
		if code, err := h.StatusOf(pc, gw.URL+"/api", revokedTok); err != nil || code != 401 {
			t.Fatalf("revoked JWT: %d %v", code, err)
		}
	}
	after = h.RedisCommandStats(t, rs.Addr())
	t.Logf("FIGURE redis commands per revoked-JWT request (revocation known to the node): %.3f (n=%d; %s)",
		float64(h.Sum(h.CountDelta(before, after, revHousekeeping)))/rounds, rounds, h.FormatCounts(h.CountDelta(before, after, revHousekeeping)))

	before = h.RedisCommandStats(t, rs.Addr())
	if resp, _ := h.Get(t, gw.URL+"/acct", withCookie(sess.SessionID)...); resp.StatusCode != 200 {
		t.Fatalf("session request: %d", resp.StatusCode)
	}
	after = h.RedisCommandStats(t, rs.Addr())
	if d := h.CountDelta(before, after, revHousekeeping); len(d) == 0 {
		t.Error("a session request showed no Redis command: the measure is blind")
	} else {
		t.Logf("control: one session request costs %s", h.FormatCounts(d))
	}
}

// TestLogOutEverywhereAcrossNodes: POST /v1/subjects/{s}/revoke on one node
// rejects the subject's older JWTs on the others, with no Redis command on
// the hot path, and a token issued afterwards is accepted.
func TestLogOutEverywhereAcrossNodes(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	e := newRevEnv(t)
	nodes := e.nodes(t, 3, rs.Addr(), "10m")
	a, others := nodes[0], nodes[1:]
	for _, g := range nodes {
		h.Eventually(t, 10*time.Second, "subscribed to revocations", func() bool {
			return revMetric(t, g, "portcullis_revocation_subscribed") == 1
		})
	}
	pc := h.PollClient()

	old1 := e.token(t, mint.Dev{Subject: "erin", Now: time.Now().Add(-time.Minute)})
	old2 := e.token(t, mint.Dev{Subject: "erin"})
	bystander := e.token(t, mint.Dev{Subject: "frank"})
	for _, g := range others {
		for _, tok := range []string{old1, old2, bystander} {
			revWantStatus(t, g, "/api", tok, 200, "before the log-out")
		}
	}

	start := time.Now()
	code, body := a.Admin(t, adminToken, "POST", "/v1/subjects/erin/revoke", "")
	if code != 200 || !strings.Contains(string(body), `"sessions_revoked":0`) {
		t.Fatalf("POST /v1/subjects/erin/revoke: %d %s", code, body)
	}
	cutoff := time.Now()
	took := revRejectsWithin(t, pc, others, []string{old1, old2}, start, time.Second, "erin's older JWTs")
	t.Logf("log out everywhere reached both other nodes %s after the POST was sent", took.Round(100*time.Microsecond))

	newer := e.token(t, mint.Dev{Subject: "erin", Now: cutoff.Add(time.Second)})
	before := h.RedisCommandStats(t, rs.Addr())
	const rounds = 20
	for range rounds {
		for _, g := range others {
			for _, c := range []struct {
				tok  string
				want int
			}{{old1, 401}, {old2, 401}, {newer, 200}, {bystander, 200}} {
				if code, err := h.StatusOf(pc, g.URL+"/api", c.tok); err != nil || code != c.want {
					t.Fatalf("after the log-out: %d %v, want %d", code, err, c.want)
				}
			}
		}
	}
	after := h.RedisCommandStats(t, rs.Addr())
	data := h.CountDelta(before, after, revHousekeeping)
	t.Logf("FIGURE redis commands per JWT request under a subject cutoff: %.3f (n=%d; %s)",
		float64(h.Sum(data))/float64(rounds*2*4), rounds*2*4, h.FormatCounts(data))
	if len(data) != 0 {
		t.Errorf("requests under a subject cutoff cost Redis data commands: %s", h.FormatCounts(data))
	}
}
