package e2e

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	h "github.com/portcullis/portcullis/test/internal/harness"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemo runs `portcullis demo` as a new user would, pastes its exports
// and checks that every printed command answers what the tour says.
func TestDemo(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(h.Binary(t), "demo", "--listen", freeAddr(t), "--admin", freeAddr(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	vars := map[string]string{}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "export "); ok {
				for _, kv := range strings.Fields(rest) {
					k, v, _ := strings.Cut(kv, "=")
					vars[k] = v
				}
			}
			if strings.HasPrefix(line, "# Health") {
				done <- nil
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the demo printed no tour within 60s")
	}
	gw, admin := vars["GW"], vars["ADMIN"]
	auth := func(v string) []string { return []string{"Authorization", "Bearer " + vars[v]} }
	for _, tc := range []struct {
		name    string
		url     string
		headers []string
		want    int
	}{
		{"public", gw + "/public/hello", nil, 200},
		{"no token", gw + "/api/orders", nil, 401},
		{"valid", gw + "/api/orders/42", auth("ALICE"), 200},
		{"revoked", gw + "/api/orders", auth("REVOKED"), 401},
		{"missing role", gw + "/admin", auth("ALICE"), 403},
		{"admin role", gw + "/admin", auth("ROOT"), 200},
		{"weak for step-up", gw + "/api/payments", auth("WEAK"), 401},
		{"stepped up", gw + "/api/payments", auth("MFA"), 200},
		{"session cookie", gw + "/account", []string{"Cookie", "__Host-portcullis=" + vars["SESSION"]}, 200},
		{"session bearer", gw + "/account", auth("SESSION"), 200},
		{"login service", gw + "/login?user=carol", nil, 200},
		{"readyz", admin + "/readyz", nil, 200},
	} {
		resp, body := h.Get(t, tc.url, tc.headers...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, resp.StatusCode, tc.want, body)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo did not stop cleanly on Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Fatal("demo did not stop within 30s of Ctrl-C")
	}
}
