package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/store"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// AdminHandler serves the admin listener: /healthz, /readyz, /metrics and
// /.well-known/jwks.json without a token; /v1/* and /debug/pprof/* with
// the bearer admin.token (constant-time comparison), and not at all when no
// token is configured.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		serveJWKS(w, g.state.Load(), g.now())
	})

	v1 := http.NewServeMux()
	v1.HandleFunc("POST /v1/sessions", g.adminCreateSession)
	v1.HandleFunc("GET /v1/sessions", g.adminListSessions)
	v1.HandleFunc("PATCH /v1/sessions/{handle}", g.adminUpdateSession)
	v1.HandleFunc("DELETE /v1/sessions/{handle}", g.adminDeleteSession)
	v1.HandleFunc("POST /v1/revocations", g.adminRevoke)
	v1.HandleFunc("GET /v1/revocations/{jti}", g.adminGetRevocation)
	v1.HandleFunc("POST /v1/subjects/{subject}/revoke", g.adminRevokeSubject)
	v1.HandleFunc("/debug/pprof/", pprof.Index)
	v1.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	v1.HandleFunc("/debug/pprof/profile", pprof.Profile)
	v1.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	v1.HandleFunc("/debug/pprof/trace", pprof.Trace)
	v1.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, "not_found", "no such admin endpoint")
	})
	protected := g.requireAdmin(v1)
	mux.Handle("/v1/", protected)
	mux.Handle("/debug/", protected)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		adminError(w, http.StatusNotFound, "not_found", "no such admin endpoint")
	})
	return mux
}

// requireAdmin checks the bearer admin token in constant time (comparing
// SHA-256 digests, so not even the length leaks). With no token configured
// the protected endpoints do not exist.
func (g *Gateway) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := g.state.Load().cfg.Admin.Token
		if token == "" {
			adminError(w, http.StatusNotFound, "not_found", "the admin API is disabled: set admin.token")
			return
		}
		auths := r.Header.Values("Authorization")
		presented := ""
		if len(auths) == 1 {
			scheme, rest, ok := strings.Cut(auths[0], " ")
			if ok && strings.EqualFold(scheme, "Bearer") {
				presented = strings.TrimSpace(rest)
			}
		}
		want := sha256.Sum256([]byte(token))
		got := sha256.Sum256([]byte(presented))
		if presented == "" || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis-admin"`)
			adminError(w, http.StatusUnauthorized, "unauthorized", "a valid admin token is required")
			g.log.Warn("admin request without a valid token", zap.String("path", r.URL.Path), zap.String("client", clientHost(r)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type readiness struct {
	Status     string `json:"status"`
	Store      string `json:"store"`
	Revocation string `json:"revocation"`
	Keys       string `json:"keys"`
	Draining   bool   `json:"draining,omitempty"`
	Issuers    any    `json:"issuers,omitempty"`
}

// serveReady is /readyz: 200 when the store answers, the revocation filter
// has loaded and every issuer has keys; else 503. While draining, 503.
func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	st := g.state.Load()
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rd := readiness{Status: "ready", Store: "ok", Revocation: "ok", Keys: "ok", Issuers: st.jwt.Status()}
	ok := true
	if err := g.store.Ping(ctx); err != nil {
		rd.Store, ok = "unreachable", false
	}
	if !g.deny.Ready() {
		rd.Revocation, ok = "not loaded", false
	}
	if err := st.jwt.Ready(); err != nil {
		rd.Keys, ok = err.Error(), false
	}
	if g.draining.Load() {
		rd.Draining, ok = true, false
	}
	code := http.StatusOK
	if !ok {
		rd.Status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, rd)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

func adminError(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, errorBody{Error: errCode, Description: desc})
}

// adminFail answers an admin request that failed: a bad body names the
// field (400), a missing object is 404, a store failure 503.
func (g *Gateway) adminFail(w http.ResponseWriter, err error) {
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		adminError(w, http.StatusBadRequest, "invalid_request", fe.Error())
	case errors.Is(err, denylist.ErrInvalid):
		adminError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, store.ErrNotFound):
		adminError(w, http.StatusNotFound, "not_found", "no such session")
	default:
		g.log.Error("admin request failed", zap.Error(err))
		w.Header().Set("Retry-After", "2")
		adminError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the store is unavailable")
	}
}

func readBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return &fieldError{Msg: "reading the body: " + err.Error()}
	}
	if len(data) > maxAdminBody {
		return &fieldError{Msg: "the body is larger than 1 MiB"}
	}
	return decodeJSON(data, v)
}

type sessionView struct {
	Handle     string            `json:"handle"`
	Subject    string            `json:"subject"`
	Roles      []string          `json:"roles"`
	Scopes     []string          `json:"scopes"`
	ACR        string            `json:"acr"`
	AMR        []string          `json:"amr"`
	AuthTime   *int64            `json:"auth_time,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Mode       string            `json:"mode"`
	CreatedAt  int64             `json:"created_at"`
	LastSeenAt int64             `json:"last_seen_at"`
	ExpiresAt  int64             `json:"expires_at"`
}

func viewSession(s store.Session) sessionView {
	v := sessionView{
		Handle: s.Handle, Subject: s.Subject, Roles: nonNil(s.Roles), Scopes: nonNil(s.Scopes), ACR: s.ACR,
		AMR: nonNil(s.AMR), Attributes: s.Attributes, Mode: s.Mode,
		CreatedAt: s.CreatedAt.Unix(), LastSeenAt: s.LastSeenAt.Unix(), ExpiresAt: s.ExpiresAt.Unix(),
	}
	if v.Mode == "" {
		v.Mode = "session"
	}
	if !s.AuthTime.IsZero() {
		t := s.AuthTime.Unix()
		v.AuthTime = &t
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (g *Gateway) adminCreateSession(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	if err := readBody(r, &req); err != nil {
		g.adminFail(w, err)
		return
	}
	st := g.state.Load()
	n, err := st.newSession(req, g.now())
	if err != nil {
		g.adminFail(w, err)
		return
	}
	c, err := g.store.CreateSession(r.Context(), n)
	if err != nil {
		g.adminFail(w, err)
		return
	}
	for _, e := range c.Evicted {
		if err := g.endSession(r.Context(), e); err != nil {
			g.log.Warn("revoking an evicted family's access tokens", zap.String("handle", e.Handle), zap.Error(err))
		}
	}
	out := map[string]any{"handle": c.Session.Handle, "expires_at": c.Session.ExpiresAt.Unix()}
	if c.Session.Mode == store.ModeTokens {
		out["refresh_token"] = c.Secret
		g.metrics.TokensIssued.WithLabelValues("refresh").Inc()
	} else {
		out["session_id"] = c.Secret
		g.metrics.TokensIssued.WithLabelValues("session").Inc()
	}
	g.log.Info("session created by admin", zap.String("subject", c.Session.Subject), zap.String("handle", c.Session.Handle), zap.String("mode", c.Session.Mode))
	writeJSON(w, http.StatusCreated, out)
}

func (g *Gateway) adminListSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	subject := q.Get("subject")
	if subject == "" || len(q["subject"]) != 1 {
		g.adminFail(w, &fieldError{Field: "subject", Msg: "exactly one subject query parameter is required"})
		return
	}
	ss, err := g.store.ListSessions(r.Context(), subject)
	if err != nil {
		g.adminFail(w, err)
		return
	}
	out := make([]sessionView, 0, len(ss))
	for _, s := range ss {
		out = append(out, viewSession(s))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) adminUpdateSession(w http.ResponseWriter, r *http.Request) {
	var u sessionUpdate
	if err := readBody(r, &u); err != nil {
		g.adminFail(w, err)
		return
	}
	su, err := u.toStore()
	if err != nil {
		g.adminFail(w, err)
		return
	}
	s, err := g.updateSession(r.Context(), r.PathValue("handle"), su)
	if err != nil {
		g.adminFail(w, err)
		return
	}
	g.log.Info("session updated by admin", zap.String("handle", s.Handle), zap.String("subject", s.Subject))
	writeJSON(w, http.StatusOK, viewSession(s))
}

func (g *Gateway) adminDeleteSession(w http.ResponseWriter, r *http.Request) {
	s, err := g.store.DeleteSession(r.Context(), r.PathValue("handle"))
	if err != nil {
		g.adminFail(w, err)
		return
	}
	if err := g.endSession(r.Context(), s); err != nil {
		g.adminFail(w, err)
		return
	}
	g.log.Info("session deleted by admin", zap.String("handle", s.Handle), zap.String("subject", s.Subject))
	w.WriteHeader(http.StatusNoContent)
}

type revocationRequest struct {
	JTI       string `json:"jti"`
	Issuer    string `json:"issuer"`
	ExpiresAt *int64 `json:"expires_at"`
	Token     string `json:"token"`
}

type revocationView struct {
	JTI       string `json:"jti"`
	Issuer    string `json:"issuer"`
	ExpiresAt int64  `json:"expires_at"`
}

func (g *Gateway) adminRevoke(w http.ResponseWriter, r *http.Request) {
	var req revocationRequest
	if err := readBody(r, &req); err != nil {
		g.adminFail(w, err)
		return
	}
	var rev store.Revocation
	switch {
	case req.Token != "":
		if req.JTI != "" || req.Issuer != "" {
			g.adminFail(w, &fieldError{Field: "token", Msg: "give either token or jti and issuer, not both"})
			return
		}
		var err error
		rev, err = denylist.RevocationFromToken(req.Token)
		switch {
		case err == nil:
		case errors.Is(err, denylist.ErrNoExpiry) && req.ExpiresAt != nil:
		default:
			g.adminFail(w, &fieldError{Field: "token", Msg: "not a JWT with iss and exp (give expires_at for a token without exp)"})
			return
		}
		if req.ExpiresAt != nil {
			rev.ExpiresAt = time.Unix(*req.ExpiresAt, 0)
		}
	default:
		if req.JTI == "" {
			g.adminFail(w, &fieldError{Field: "jti", Msg: "is required (or give token)"})
			return
		}
		if req.Issuer == "" {
			g.adminFail(w, &fieldError{Field: "issuer", Msg: "is required with jti"})
			return
		}
		if req.ExpiresAt == nil {
			g.adminFail(w, &fieldError{Field: "expires_at", Msg: "is required with jti (unix seconds: the token's exp)"})
			return
		}
		for _, f := range []struct{ name, v string }{{"jti", req.JTI}, {"issuer", req.Issuer}} {
			if err := checkText(f.name, f.v, ""); err != nil {
				g.adminFail(w, err)
				return
			}
		}
		rev = store.Revocation{Kind: store.KindToken, Issuer: req.Issuer, ID: req.JTI, ExpiresAt: time.Unix(*req.ExpiresAt, 0)}
	}
	if err := g.deny.Revoke(r.Context(), rev); err != nil {
		g.adminFail(w, err)
		return
	}
	g.log.Info("token revoked by admin", zap.String("issuer", rev.Issuer), zap.String("jti", rev.ID), zap.Time("expires_at", rev.ExpiresAt))
	writeJSON(w, http.StatusCreated, revocationView{JTI: rev.ID, Issuer: rev.Issuer, ExpiresAt: rev.ExpiresAt.Unix()})
}

func (g *Gateway) adminGetRevocation(w http.ResponseWriter, r *http.Request) {
	rev, err := g.deny.Lookup(r.Context(), r.PathValue("jti"))
	if errors.Is(err, store.ErrNotFound) {
		adminError(w, http.StatusNotFound, "not_found", "no such revocation")
		return
	}
	if err != nil {
		g.adminFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, revocationView{JTI: rev.ID, Issuer: rev.Issuer, ExpiresAt: rev.ExpiresAt.Unix()})
}

// adminRevokeSubject is "log out everywhere": every JWT of the subject
// issued before now is rejected on every node, and every session and refresh
// family of the subject is deleted.
func (g *Gateway) adminRevokeSubject(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	if subject == "" {
		g.adminFail(w, &fieldError{Field: "subject", Msg: "is required"})
		return
	}
	ctx := r.Context()
	if err := g.deny.RevokeSubject(ctx, subject, g.now()); err != nil {
		g.adminFail(w, err)
		return
	}
	deleted, err := g.store.DeleteSubjectSessions(ctx, subject)
	if err != nil {
		g.adminFail(w, err)
		return
	}
	for _, s := range deleted {
		if err := g.endSession(ctx, s); err != nil {
			g.adminFail(w, err)
			return
		}
	}
	g.log.Info("subject logged out everywhere", zap.String("subject", subject), zap.Int("sessions_revoked", len(deleted)))
	writeJSON(w, http.StatusOK, map[string]int{"sessions_revoked": len(deleted)})
}
