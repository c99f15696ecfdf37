package fault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

const redisConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
store:
  type: redis
  redis:
    addrs: ["{{.Redis}}"]
    timeout: {{.StoreTimeout}}
jwt:
  issuers:
    - issuer: "` + issuer + `"
      audiences: [api]
      algorithms: [ES256]
      keys: ["{{.Key}}"]
revocation:
  resync_interval: 1s
log:
  access: false
routes:
  - name: jwt
    path: /jwt
    upstream: "{{.Up}}"
    auth: jwt
  - name: account
    path: /acct
    upstream: "{{.Up}}"
    auth: session
  - name: admin-area
    path: /admin-area
    upstream: "{{.Up}}"
    auth: any
    roles: [admin]
`

// okUpstream answers 200 "ok" and counts what it received; unlike the
// harness's recording upstream it keeps nothing, for long load runs.
func okUpstream(t *testing.T) (url string, count *atomic.Int64) {
	t.Helper()
	count = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, count
}

// startRedisNode starts a gateway on the Redis at addr, verifying tokens
// of keys, proxying to up.
func startRedisNode(t *testing.T, addr, storeTimeout string, keys h.Keys, up string) *h.Gateway {
	t.Helper()
	dir := t.TempDir()
	gw := start(t, dir, h.Config(t, redisConfig, map[string]any{
		"Redis": addr, "StoreTimeout": storeTimeout, "Key": keys.Public, "Up": up,
	}))
	gw.WaitReady(t)
	return gw
}

func createSession(t *testing.T, gw *h.Gateway, body string) h.Session {
	t.Helper()
	return gw.CreateSession(t, adminToken, body)
}

func token(t *testing.T, keys h.Keys, d mint.Dev) string {
	t.Helper()
	d.Issuer = issuer
	d.Audience = []string{"api"}
	return keys.Token(t, d)
}

// TestRedisDownDuringLoad: concurrent JWT and session requests while Redis
// is stopped, restarted, frozen (SIGSTOP) and thawed. JWT routes never
// notice; session routes answer 503 with Retry-After while Redis is away and
// 200 again once it is back, without any help; no request takes longer
// than its store timeouts plus a margin.
func TestRedisDownDuringLoad(t *testing.T) {
	t.Parallel()
	const storeTimeout = 250 * time.Millisecond
	// A session request makes at most two store calls (lookup, then the
	// throttled last-seen write), each bounded by store.redis.timeout.
	limit := 2*storeTimeout + margin

	rs := redistest.Start(t, "--appendonly", "yes")
	dir := t.TempDir()
	keys := h.NewES256(t, dir, "idp")
	up, _ := okUpstream(t)
	gw := startRedisNode(t, rs.Addr(), storeTimeout.String(), keys, up)
	sess := createSession(t, gw, `{"subject":"alice","roles":["user"],"ttl":"1h"}`)
	tok := token(t, keys, mint.Dev{Subject: "bob"})

	const workers = 4
	c := loadClient(workers)
	o := newOutcomes()
	stop := startLoad(t, workers, func(w, i int) {
		kind, url, hdr := "jwt", gw.URL+"/jwt", []string{"Authorization", "Bearer " + tok}
		if (w+i)%2 == 1 {
			kind, url, hdr = "session", gw.URL+"/acct", []string{"Cookie", cookieName + "=" + sess.SessionID}
		}
		start := time.Now()
		resp, _, err := get(c, url, hdr...)
		d := time.Since(start)
		switch {
		case err != nil:
			o.fail(kind+" error", d, err.Error())
		case d > limit:
			o.fail(fmt.Sprintf("%s %d", kind, resp.StatusCode), d, fmt.Sprintf("slower than %s", limit))
		case resp.StatusCode == 200:
			o.ok(kind+" 200", d)
		case kind == "session" && resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
			o.ok("session 503", d)
		default:
			o.fail(fmt.Sprintf("%s %d", kind, resp.StatusCode), d, "unexpected status")
		}
	})
	await := func(what, key string, atLeast int) {
		t.Helper()
		h.Eventually(t, 30*time.Second, fmt.Sprintf("%s (%q >= %d; now %s)", what, key, atLeast, o), func() bool {
			return o.count(key) >= atLeast
		})
	}

	await("load running with Redis up", "session 200", 20)
	await("load running with Redis up", "jwt 200", 20)

	// Stopped: connections refused.
	rs.Stop(t)
	jwtOK := o.count("jwt 200")
	await("session routes answer 503 while Redis is stopped", "session 503", 10)
	await("JWT routes keep serving while Redis is stopped", "jwt 200", jwtOK+20)
	if code := status(gw.AdminURL + "/readyz"); code != 503 {
		t.Errorf("/readyz with Redis stopped: %d, want 503", code)
	}
	rs.Restart(t)
	await("session routes serve again after Redis restarts", "session 200", o.count("session 200")+20)
	gw.WaitReady(t)

	// Frozen: connections accepted, never answered; only timeouts help.
	pid := redisPid(t, rs.Addr())
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	jwtOK = o.count("jwt 200")
	await("session routes answer 503 while Redis is frozen", "session 503", o.count("session 503")+10)
	await("JWT routes keep serving while Redis is frozen", "jwt 200", jwtOK+20)
	thaw()
	await("session routes serve again after Redis thaws", "session 200", o.count("session 200")+20)

	stop()
	o.check(t)
	t.Logf("Redis stopped, restarted, frozen and thawed under load: %s (limit %s)", o, limit)
}

// TestRedisCrashWithAppendOnly: Redis with appendonly is killed (SIGKILL,
// no shutdown) and restarted. No session, session change or revocation
// acknowledged before the crash is lost: the running node and a node
// started afterwards (whose Bloom filter loads from Redis) agree, and
// revocation sync between nodes resumes by itself.
func TestRedisCrashWithAppendOnly(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t, "--appendonly", "yes")
	dir := t.TempDir()
	keys := h.NewES256(t, dir, "idp")
	up, _ := okUpstream(t)
	a := startRedisNode(t, rs.Addr(), "500ms", keys, up)

	alice := createSession(t, a, `{"subject":"alice","roles":["user"],"ttl":"1h"}`)
	if code, body := a.Admin(t, adminToken, "PATCH", "/v1/sessions/"+alice.Handle, `{"roles":["user","admin"]}`); code != 200 {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	gone := createSession(t, a, `{"subject":"carol","ttl":"1h"}`)
	if code, body := a.Admin(t, adminToken, "DELETE", "/v1/sessions/"+gone.Handle, ""); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	revoked := token(t, keys, mint.Dev{Subject: "bob", JTI: "jti-revoked"})
	if code, body := a.Admin(t, adminToken, "POST", "/v1/revocations", `{"token":"`+revoked+`"}`); code != 201 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	everywhere := token(t, keys, mint.Dev{Subject: "mallory", Now: time.Now().Add(-time.Minute)})
	if code, body := a.Admin(t, adminToken, "POST", "/v1/subjects/mallory/revoke", ""); code != 200 {
		t.Fatalf("subject revoke: %d %s", code, body)
	}
	good := token(t, keys, mint.Dev{Subject: "dave"})

	rs.Kill(t)
	rs.Restart(t)
	a.WaitReady(t)
	b := startRedisNode(t, rs.Addr(), "500ms", keys, up)

	cookie := []string{"Cookie", cookieName + "=" + alice.SessionID}
	for _, gw := range []struct {
		name string
		gw   *h.Gateway
	}{{"running node", a}, {"node started after the crash", b}} {
		for _, tc := range []struct {
			what    string
			path    string
			headers []string
			want    int
		}{
			{"the session", "/acct", cookie, 200},
			{"the session's PATCHed role", "/admin-area", cookie, 200},
			{"the deleted session", "/acct", []string{"Cookie", cookieName + "=" + gone.SessionID}, 401},
			{"the revoked token", "/jwt", []string{"Authorization", "Bearer " + revoked}, 401},
			{"the token of a subject logged out everywhere", "/jwt", []string{"Authorization", "Bearer " + everywhere}, 401},
			{"a valid token", "/jwt", []string{"Authorization", "Bearer " + good}, 200},
		} {
			if got := status(gw.gw.URL+tc.path, tc.headers...); got != tc.want {
				t.Errorf("%s after the crash: %s: status %d, want %d", gw.name, tc.what, got, tc.want)
			}
		}
	}

	// Sync resumed: a revocation on the new node reaches the old one.
	later := token(t, keys, mint.Dev{Subject: "erin", JTI: "jti-later"})
	if got := status(a.URL+"/jwt", "Authorization", "Bearer "+later); got != 200 {
		t.Fatalf("before revocation: %d", got)
	}
	if code, body := b.Admin(t, adminToken, "POST", "/v1/revocations", `{"token":"`+later+`"}`); code != 201 {
		t.Fatalf("revoke on B: %d %s", code, body)
	}
	h.Eventually(t, 5*time.Second, "the node that lived through the crash to reject a revocation made on the other", func() bool {
		return status(a.URL+"/jwt", "Authorization", "Bearer "+later) == 401
	})
}
