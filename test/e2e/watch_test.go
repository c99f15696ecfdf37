package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	h "github.com/portcullis/portcullis/test/internal/harness"
)

const watchConfig = `
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
store:
  type: memory
routes:
{{- range .Routes}}
  - name: {{.}}
    path: /{{.}}
    upstream: "{{$.Up}}"
    auth: none
{{- end}}
`

// TestServeWatch: with --watch, a changed configuration file is applied
// without a signal; a broken one is refused and the running configuration
// stays, until a good one replaces it.
func TestServeWatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	up := h.NewUpstream(t)
	config := func(routes ...string) string {
		return h.Config(t, watchConfig, map[string]any{"Up": up.URL, "Routes": routes})
	}
	path := h.WriteFile(t, dir, "watch.yaml", config("a"))
	gw := h.StartServe(t, path, []string{"--watch", "--watch-interval", "20ms"})
	status := func(p string) int {
		resp, _ := h.Get(t, gw.URL+p)
		return resp.StatusCode
	}
	if got := status("/b"); got != http.StatusNotFound {
		t.Fatalf("GET /b before the change: %d, want 404", got)
	}
	rewrite := func(content string) { h.ReplaceFile(t, path, content) }

	rewrite(config("a", "b"))
	h.Eventually(t, 20*time.Second, "route /b after the file changed", func() bool { return status("/b") == http.StatusOK })

	rewrite(config("a", "b") + "unknown_key: 1\n")
	h.Eventually(t, 20*time.Second, "the broken file refused", func() bool {
		return strings.Contains(gw.Logs(), "configuration reload failed")
	})
	if a, b := status("/a"), status("/b"); a != http.StatusOK || b != http.StatusOK {
		t.Fatalf("after a broken file: /a %d, /b %d; want the running configuration kept", a, b)
	}

	rewrite(config("b"))
	h.Eventually(t, 20*time.Second, "route /a gone after a good file", func() bool { return status("/a") == http.StatusNotFound })
	if got := status("/b"); got != http.StatusOK {
		t.Fatalf("GET /b after the last change: %d", got)
	}
	if n := strings.Count(gw.Logs(), "configuration file changed; reloading"); n != 3 {
		t.Errorf("%d reloads logged for 3 changes of the file\n%s", n, gw.Logs())
	}
}
