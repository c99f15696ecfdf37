package fault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// reloadConfig is rendered in two valid variants, A and B, that both accept
// the steady load (/steady with a k1 token holding role user) and differ in
// routes (/toggle only in A), keys (k2 only in B) and policies (/policy
// needs admin in A, user in B; /probe goes to upstream "a" for role user
// in A, and to upstream "b" for role nobody in B).
const reloadConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
jwt:
  issuers:
    - issuer: "` + issuer + `"
      audiences: [api]
      algorithms: [ES256]
      keys: [{{.Keys}}]
log:
  access: false
routes:
  - name: steady
    path: /steady
    upstream: "{{.UpA}}"
    auth: jwt
    roles: [{{.SteadyRoles}}]
  - name: policy
    path: /policy
    upstream: "{{.UpA}}"
    auth: jwt
    roles: [{{.PolicyRoles}}]
  - name: probe
    path: /probe
    upstream: "{{.ProbeUp}}"
    auth: jwt
    roles: [{{.ProbeRoles}}]
{{.Toggle}}`

// invalidReload has two errors: an unknown key and a bad value.
const invalidReload = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
routes:
  - name: steady
    path: /steady
    upstream: "http://127.0.0.1:1"
    auth: bogus
    rolez: [user]
`

// named is an upstream answering its name.
func named(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(name))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHotReloadUnderLoad: 100 SIGHUP reloads alternating between two valid
// configurations while steady requests run: none of them fails, each
// reload's routes, keys and policies are visible right after it, and no
// request ever sees one configuration's route with the other's policy.
// Then an invalid configuration is logged as FILE:LINE: key: message and
// the running one stays.
func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	const reloads = 100
	dir := t.TempDir()
	k1 := h.NewES256(t, dir, "k1")
	k2 := h.NewES256(t, dir, "k2")
	upA, upB := named(t, "a"), named(t, "b")
	render := func(b bool) string {
		v := map[string]any{
			"UpA": upA, "Keys": fmt.Sprintf("%q", k1.Public), "SteadyRoles": "user", "PolicyRoles": "admin",
			"ProbeUp": upA, "ProbeRoles": "user",
			"Toggle": "  - name: toggle\n    path: /toggle\n    upstream: \"" + upA + "\"\n    auth: jwt\n",
		}
		if b {
			v["Keys"] = fmt.Sprintf("%q, %q", k1.Public, k2.Public)
			v["SteadyRoles"], v["PolicyRoles"] = "user, ops", "user"
			v["ProbeUp"], v["ProbeRoles"] = upB, "nobody"
			v["Toggle"] = ""
		}
		return h.Config(t, reloadConfig, v)
	}
	gw := start(t, dir, render(false))
	user := "Bearer " + token(t, k1, mint.Dev{Subject: "alice", Roles: []string{"user"}})
	rotated := "Bearer " + token(t, k2, mint.Dev{Subject: "alice", Roles: []string{"user"}})

	const workers = 3
	c := loadClient(workers)
	o := newOutcomes()
	stop := startLoad(t, workers, func(w, i int) {
		start := time.Now()
		if w == 0 {
			// /probe: A's route with A's policy (200 "a") or B's route with
			// B's policy (403); 200 "b" would be a mix.
			resp, body, err := get(c, gw.URL+"/probe", "Authorization", user)
			d := time.Since(start)
			switch {
			case err != nil:
				o.fail("probe error", d, err.Error())
			case resp.StatusCode == 200 && string(body) == "a", resp.StatusCode == 403:
				o.ok(fmt.Sprintf("probe %d", resp.StatusCode), d)
			default:
				o.fail(fmt.Sprintf("probe %d", resp.StatusCode), d, fmt.Sprintf("inconsistent answer %q", body))
			}
			return
		}
		resp, body, err := get(c, gw.URL+"/steady/x", "Authorization", user)
		d := time.Since(start)
		switch {
		case err != nil:
			o.fail("steady error", d, err.Error())
		case resp.StatusCode != 200 || string(body) != "a":
			o.fail(fmt.Sprintf("steady %d", resp.StatusCode), d, string(body))
		default:
			o.ok("steady 200", d)
		}
	})

	reloaded := func() int { return strings.Count(gw.Logs(), `"configuration reloaded"`) }
	for i := 1; i <= reloads; i++ {
		b := i%2 == 1
		h.ReplaceFile(t, gw.ConfigPath, render(b))
		gw.Signal(syscall.SIGHUP)
		h.Eventually(t, 10*time.Second, fmt.Sprintf("reload %d", i), func() bool { return reloaded() >= i })
		want := map[string]int{"/toggle": 200, "/steady rotated key": 401, "/policy": 403}
		if b {
			want = map[string]int{"/toggle": 404, "/steady rotated key": 200, "/policy": 200}
		}
		got := map[string]int{
			"/toggle":             status(gw.URL+"/toggle", "Authorization", user),
			"/steady rotated key": status(gw.URL+"/steady", "Authorization", rotated),
			"/policy":             status(gw.URL+"/policy", "Authorization", user),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("after reload %d (config %v): %s: %d, want %d", i, map[bool]string{false: "A", true: "B"}[b], k, got[k], v)
			}
		}
		if t.Failed() {
			break
		}
	}
	// Keep the load running a little after the last reload.
	n := o.total()
	h.Eventually(t, 10*time.Second, "more load after the last reload", func() bool { return o.total() >= n+50 })
	stop()
	o.check(t)
	if o.count("steady 200") < reloads || o.count("probe 200") == 0 || o.count("probe 403") == 0 {
		t.Errorf("too little load across the reloads: %s", o)
	}
	t.Logf("%d reloads under load: %s", reloads, o)
	if v := metric(t, gw, `portcullis_config_reloads_total{result="ok"}`); v != reloads {
		t.Errorf(`portcullis_config_reloads_total{result="ok"} = %v, want %d`, v, reloads)
	}

	t.Run("an invalid configuration is logged and the running one stays", func(t *testing.T) {
		h.ReplaceFile(t, gw.ConfigPath, invalidReload)
		gw.Signal(syscall.SIGHUP)
		h.Eventually(t, 10*time.Second, "the failed reload to be logged", func() bool {
			return strings.Contains(gw.Logs(), "configuration reload failed")
		})
		logs := gw.Logs()
		for _, want := range []string{
			fmt.Sprintf("%s:%d: routes[0].auth: must be one of", gw.ConfigPath, lineOf(t, invalidReload, "auth: bogus")),
			fmt.Sprintf("%s:%d: routes[0].rolez: unknown key", gw.ConfigPath, lineOf(t, invalidReload, "rolez:")),
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log does not say %q:\n%s", want, tail(logs, 5))
			}
		}
		// The last valid configuration (A) still serves, unchanged.
		for path, want := range map[string]int{"/steady": 200, "/toggle": 200, "/policy": 403} {
			if got := status(gw.URL+path, "Authorization", user); got != want {
				t.Errorf("%s after the failed reload: %d, want %d", path, got, want)
			}
		}
		if v := metric(t, gw, `portcullis_config_reloads_total{result="error"}`); v != 1 {
			t.Errorf(`portcullis_config_reloads_total{result="error"} = %v, want 1`, v)
		}
		if v := metric(t, gw, `portcullis_config_reloads_total{result="ok"}`); v != reloads {
			t.Errorf(`portcullis_config_reloads_total{result="ok"} = %v, want %d`, v, reloads)
		}
	})
}

// lineOf is the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not in the text", s)
	return 0
}
