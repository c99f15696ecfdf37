// Package demo is `portcullis demo`: a self-contained tour on a fresh
// machine. It generates a signing key, starts a built-in echo upstream,
// runs the gateway with the memory store and a demo configuration, creates
// a session and a revoked token through the real admin API, and prints
// ready-to-paste curl commands with the answer each should give.
package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/gateway"
	"github.com/portcullis/portcullis/mint"
)

// Options of the demo.
type Options struct {
	// Listen and Admin are the gateway's addresses; default 127.0.0.1:8080
	// and 127.0.0.1:9090.
	Listen, Admin string
	Logger        *zap.Logger
	// Ready, if set, receives the printed tour's facts once it is printed
	// (for tests).
	Ready func(Tour)
}

// Tour is what the demo prints: its addresses and credentials.
type Tour struct {
	Base, Admin, AdminToken                    string
	Valid, AdminRole, Revoked, Weak, SteppedUp string
	RevokedJTI, Session, CookieName, Issuer    string
}

const issuer = "https://demo.portcullis.local/"

// Run runs the demo until ctx is done.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:8080"
	}
	if opts.Admin == "" {
		opts.Admin = "127.0.0.1:9090"
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	for _, a := range []string{opts.Listen, opts.Admin} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("demo: %s is not free (%w); choose others with --listen and --admin", a, err)
		}
		ln.Close()
	}
	dir, err := os.MkdirTemp("", "portcullis-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("demo: generating key: %w", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err := os.WriteFile(filepath.Join(dir, "key.pub.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	signer, err := mint.NewSigner(key, "")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: echo upstream: %w", err)
	}
	echo := &http.Server{Handler: http.HandlerFunc(echoHandler), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = echo.Serve(upstream) }()
	defer echo.Close()

	adminToken := randomString(24)
	cfgPath := filepath.Join(dir, "demo.yaml")
	var cfg bytes.Buffer
	if err := configTemplate.Execute(&cfg, map[string]string{
		"Listen": opts.Listen, "Admin": opts.Admin, "AdminToken": adminToken,
		"Upstream": "http://" + upstream.Addr().String(), "Issuer": issuer,
	}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	listening := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- gateway.Run(ctx, cfgPath, gateway.RunOptions{
			Logger:    opts.Logger,
			Listening: func(_, _ net.Addr) { close(listening) },
		})
	}()
	select {
	case err := <-runErr:
		return fmt.Errorf("demo: gateway: %w", err)
	case <-listening:
	}

	tour, err := prepare(ctx, signer, opts, adminToken)
	if err != nil {
		return err
	}
	if err := tourTemplate.Execute(out, tour); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if opts.Ready != nil {
		opts.Ready(tour)
	}
	return <-runErr
}

// prepare mints the tour's tokens and uses the real admin API to create a
// session and revoke a token.
func prepare(ctx context.Context, s *mint.Signer, opts Options, adminToken string) (Tour, error) {
	t := Tour{
		Base: "http://" + opts.Listen, Admin: "http://" + opts.Admin, AdminToken: adminToken,
		CookieName: "__Host-portcullis", Issuer: issuer,
	}
	now := time.Now()
	tok := func(sub string, roles []string, acr string, authTime int64, jti string) (string, error) {
		return s.MintDev(mint.Dev{Issuer: issuer, Audience: []string{"demo"}, Subject: sub, Roles: roles,
			ACR: acr, AuthTime: authTime, TTL: time.Hour, JTI: jti, Now: now})
	}
	var err error
	if t.Valid, err = tok("alice", []string{"user"}, "pwd", now.Unix(), ""); err != nil {
		return t, err
	}
	if t.AdminRole, err = tok("root", []string{"admin"}, "pwd", now.Unix(), ""); err != nil {
		return t, err
	}
	t.RevokedJTI = "demo-revoked-" + randomString(6)
	if t.Revoked, err = tok("mallory", []string{"user"}, "pwd", now.Unix(), t.RevokedJTI); err != nil {
		return t, err
	}
	if t.Weak, err = tok("alice", []string{"user"}, "pwd", now.Add(-time.Hour).Unix(), ""); err != nil {
		return t, err
	}
	if t.SteppedUp, err = tok("alice", []string{"user"}, "mfa", now.Unix(), ""); err != nil {
		return t, err
	}
	var created struct {
		SessionID string `json:"session_id"`
	}
	if err := adminCall(ctx, t, "POST", "/v1/sessions", `{"subject":"bob","roles":["user"],"acr":"pwd","amr":["pwd"],"ttl":"1h"}`, &created); err != nil {
		return t, err
	}
	t.Session = created.SessionID
	body := fmt.Sprintf(`{"jti":%q,"issuer":%q,"expires_at":%d}`, t.RevokedJTI, issuer, now.Add(time.Hour).Unix())
	if err := adminCall(ctx, t, "POST", "/v1/revocations", body, nil); err != nil {
		return t, err
	}
	return t, nil
}

func adminCall(ctx context.Context, t Tour, method, path, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, t.Admin+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("demo: admin %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// echoHandler is the built-in upstream: it answers with what it received,
// so the tour shows the identity headers the gateway forwarded. On /login
// it acts as a login service and asks the gateway for a session.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/login") {
		user := r.URL.Query().Get("user")
		if user == "" {
			user = "carol"
		}
		sess, _ := json.Marshal(map[string]any{"subject": user, "roles": []string{"user"}, "acr": "pwd", "amr": []string{"pwd"}})
		w.Header().Set("Portcullis-Session", string(sess))
	}
	headers := map[string]string{}
	var names []string
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.HasPrefix(k, "X-") {
			headers[k] = strings.Join(r.Header[k], ", ")
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"upstream": "echo", "method": r.Method, "path": r.URL.EscapedPath(), "headers": headers})
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("demo: crypto/rand failed"))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var configTemplate = template.Must(template.New("config").Parse(`# generated by portcullis demo
server:
  listen: "{{.Listen}}"
admin:
  listen: "{{.Admin}}"
  token: "{{.AdminToken}}"
store:
  type: memory
jwt:
  issuers:
    - issuer: "{{.Issuer}}"
      audiences: [demo]
      algorithms: [ES256]
      keys: [key.pub.pem]
revocation:
  bloom_capacity: 100000
routes:
  - name: public
    path: /public
    upstream: "{{.Upstream}}"
    auth: none
  - name: login
    path: /login
    upstream: "{{.Upstream}}"
    auth: none
    issue_session: true
  - name: orders
    path: /api/orders
    upstream: "{{.Upstream}}"
    auth: jwt
  - name: account
    path: /account
    upstream: "{{.Upstream}}"
    auth: session
  - name: admin
    path: /admin
    upstream: "{{.Upstream}}"
    auth: any
    roles: [admin]
  - name: payments
    path: /api/payments
    upstream: "{{.Upstream}}"
    auth: jwt
    step_up: {acr: [mfa], max_age: 5m}
`))

var tourTemplate = template.Must(template.New("tour").Parse(`
portcullis demo is running: gateway {{.Base}}, admin {{.Admin}} (memory store, generated ES256 key,
built-in echo upstream that answers with the identity headers it received). Ctrl-C stops it.

Paste these into another shell first (tokens are valid for an hour, for this run only):

export GW={{.Base}} ADMIN={{.Admin}} ADMIN_TOKEN={{.AdminToken}}
export ALICE={{.Valid}}
export ROOT={{.AdminRole}}
export REVOKED={{.Revoked}}
export WEAK={{.Weak}}
export MFA={{.SteppedUp}}
export SESSION={{.Session}}

# 1. A public route: no credential needed                                    -> 200
curl -i $GW/public/hello

# 2. A JWT route without a token                                             -> 401, WWW-Authenticate: Bearer realm="portcullis"
curl -i $GW/api/orders

# 3. With alice's token: the upstream sees X-Auth-Subject: alice             -> 200
curl -i -H "Authorization: Bearer $ALICE" $GW/api/orders/42

# 4. A client-supplied identity header is stripped, never forwarded           -> 200, X-Auth-Subject is still alice
curl -i -H "Authorization: Bearer $ALICE" -H 'X-Auth-Subject: admin' $GW/api/orders

# 5. A revoked token (jti {{.RevokedJTI}}, revoked through the admin API)     -> 401 error="invalid_token"
curl -i -H "Authorization: Bearer $REVOKED" $GW/api/orders

# 6. A roles route: alice lacks "admin"                                       -> 403 error="insufficient_scope"
curl -i -H "Authorization: Bearer $ALICE" $GW/admin
#    ...a token with the admin role                                          -> 200
curl -i -H "Authorization: Bearer $ROOT" $GW/admin

# 7. A step-up route (acr mfa within 5m): a password login an hour old        -> 401 error="insufficient_user_authentication"
curl -i -H "Authorization: Bearer $WEAK" $GW/api/payments
#    ...after MFA                                                            -> 200
curl -i -H "Authorization: Bearer $MFA" $GW/api/payments

# 8. An opaque session (created with POST /v1/sessions), by cookie             -> 200, X-Auth-Method: session
curl -i -H "Cookie: {{.CookieName}}=$SESSION" $GW/account
#    ...or as a bearer token                                                 -> 200
curl -i -H "Authorization: Bearer $SESSION" $GW/account

# 9. A login service behind an issue_session route creates a session           -> 200 and Set-Cookie: {{.CookieName}}=...
curl -i "$GW/login?user=carol"

# 10. Admin API: promote bob's session to admin; his next request passes step 6 -> 200
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN/v1/sessions?subject=bob"
#     (take the handle from the answer)
#     curl -i -X PATCH -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"roles":["admin"]}' $ADMIN/v1/sessions/<handle>
#     curl -i -H "Cookie: {{.CookieName}}=$SESSION" $GW/admin

# 11. Admin API, "log out everywhere": alice's tokens issued before now die  -> 200 {"sessions_revoked":0}
curl -i -X POST -H "Authorization: Bearer $ADMIN_TOKEN" $ADMIN/v1/subjects/alice/revoke
#     ...then step 3 again                                                   -> 401 error="invalid_token"
curl -i -H "Authorization: Bearer $ALICE" $GW/api/orders/42

# 12. Admin API: revoke one token by value (its iss, jti and exp are read)   -> 201; then step 6b answers 401
curl -i -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d "{\"token\":\"$ROOT\"}" $ADMIN/v1/revocations

# Health, readiness and metrics
curl -s $ADMIN/readyz; curl -s $ADMIN/metrics | grep '^portcullis_'
`))
