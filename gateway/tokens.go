package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/keys"
	"github.com/portcullis/portcullis/mint"
	"github.com/portcullis/portcullis/store"
	"github.com/portcullis/portcullis/validator"
)

// The gateway's own endpoints on the main listener.
const (
	tokenPath       = "/.portcullis/token"
	tokenRevokePath = "/.portcullis/token/revoke"
	logoutPath      = "/.portcullis/logout"
	jwksPath        = "/.portcullis/jwks.json"
)

// serveOwn dispatches /.portcullis/*, which no route can shadow;
// own is the canonical path, percent-decoded.
func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request, rs *requestState, own string) error {
	switch own {
	case tokenPath:
		return g.serveToken(w, r, rs)
	case tokenRevokePath:
		return g.serveTokenRevoke(w, r, rs)
	case logoutPath:
		return g.serveLogout(w, r, rs)
	case jwksPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed("GET, HEAD")
		}
		serveJWKS(w, rs.st, g.now())
		return nil
	}
	return errNotFound
}

func serveJWKS(w http.ResponseWriter, st *state, now time.Time) {
	doc := []byte(`{"keys":[]}`)
	if st.keyring != nil {
		doc = st.keyring.JWKS(now)
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	_, _ = w.Write(doc)
}

// oauthError is an RFC 6749 §5.2 error of the token endpoint.
func oauthError(code, desc string, err error) *httpError {
	return &httpError{Status: http.StatusBadRequest, Code: code, Description: desc, Reason: strings.ReplaceAll(code, "_", "-"), Err: err}
}

// parseForm reads an RFC 6749 form body: POST, form-encoded, at most
// 16 KiB, no repeated parameter.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return oauthError("invalid_request", "the body must be application/x-www-form-urlencoded", nil)
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return oauthError("invalid_request", "malformed form body", err)
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return oauthError("invalid_request", "parameter "+k+" is repeated", nil)
		}
	}
	return nil
}

// refreshCredential takes the refresh token from the parsed form's field or
// the refresh cookie, refusing ambiguity; the cookie is subject to CSRF.
func refreshCredential(r *http.Request, rs *requestState, field string) (token string, fromCookie bool, err error) {
	st := rs.st
	body := r.PostForm.Get(field)
	var cookie string
	if cs := r.CookiesNamed(st.cfg.Tokens.RefreshCookie); len(cs) > 0 {
		cookie = cs[0].Value
		for _, c := range cs[1:] {
			if c.Value != cookie {
				return "", false, oauthError("invalid_request", "conflicting refresh cookies", nil)
			}
		}
	}
	switch {
	case body != "" && cookie != "" && body != cookie:
		return "", false, oauthError("invalid_request", "refresh token in both the body and the cookie, differing", nil)
	case body != "":
		return body, false, nil
	case cookie != "":
		if st.csrf && !sameOrigin(r, rs.trusted) {
			return "", false, errCSRF
		}
		return cookie, true, nil
	}
	return "", false, oauthError("invalid_request", "missing "+field, nil)
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// serveToken is POST /.portcullis/token: refresh-token rotation (SPEC
// "Access tokens and refresh-token rotation").
func (g *Gateway) serveToken(w http.ResponseWriter, r *http.Request, rs *requestState) error {
	st := rs.st
	if st.signer == nil {
		return errNotFound
	}
	if err := parseForm(w, r); err != nil {
		return err
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
	case "":
		return oauthError("invalid_request", "missing grant_type", nil)
	default:
		return oauthError("unsupported_grant_type", "only grant_type=refresh_token is supported", nil)
	}
	token, fromCookie, err := refreshCredential(r, rs, "refresh_token")
	if err != nil {
		return err
	}
	ctx := r.Context()
	cfg := st.cfg.Tokens
	now := g.now()
	rot, err := g.store.Rotate(ctx, token, now, store.RotateOptions{Grace: cfg.ReuseGrace, Idle: cfg.RefreshIdle})
	switch {
	case errors.Is(err, store.ErrReused):
		g.metrics.RefreshReuse.Inc()
		g.log.Warn("refresh token reused after its grace: family revoked",
			zap.String("request_id", rs.requestID), zap.String("subject", rot.Session.Subject),
			zap.String("handle", rot.Session.Handle), zap.String("client", rs.client.String()))
		if err := g.endSession(ctx, rot.Session); err != nil {
			return storeDown(err)
		}
		return oauthError("invalid_grant", "the refresh token is not valid", err)
	case errors.Is(err, store.ErrReplayLimit):
		g.log.Warn("refresh token replayed too often within its grace: refused, family kept",
			zap.String("request_id", rs.requestID), zap.String("subject", rot.Session.Subject),
			zap.String("handle", rot.Session.Handle), zap.String("client", rs.client.String()),
			zap.Int("limit", store.MaxGenerationTokens))
		return oauthError("invalid_grant", "the refresh token is not valid", err)
	case errors.Is(err, store.ErrNotFound):
		return oauthError("invalid_grant", "the refresh token is not valid", err)
	case err != nil:
		return storeDown(err)
	}
	s := rot.Session
	access, _, err := st.signer.MintAccess(mint.Access{
		Issuer: cfg.Issuer, Audience: cfg.Audiences, Subject: s.Subject, SessionID: s.Handle,
		Roles: s.Roles, Scopes: s.Scopes, AMR: s.AMR, ACR: s.ACR, AuthTime: s.AuthTime,
		IssuedAt: g.issuedAt(now, s), TTL: cfg.AccessTTL,
	})
	if err != nil {
		return fmt.Errorf("gateway: minting access token: %w", err)
	}
	g.metrics.TokensIssued.WithLabelValues("access").Inc()
	g.metrics.TokensIssued.WithLabelValues("refresh").Inc() // a replay gets a fresh one too
	resp := tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(cfg.AccessTTL / time.Second)}
	if fromCookie {
		http.SetCookie(w, refreshCookie(cfg.RefreshCookie, rot.Token))
	} else {
		resp.RefreshToken = rot.Token
	}
	body, _ := json.Marshal(resp)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	_, _ = w.Write(body)
	return nil
}

// issuedAt is the iat of a minted access token: now in whole seconds, but
// never before a revoked-before cutoff that applies to it (a PATCH of the
// family, a subject revoke), so that a token minted just after a cutoff is
// not taken for one minted before it. Cutoffs are precise to the
// millisecond, iat to the second; iat may thus be up to a second ahead,
// well within any verifier's leeway.
func (g *Gateway) issuedAt(now time.Time, s store.Session) time.Time {
	iat := now.Truncate(time.Second)
	latest := s.UpdatedAt
	if c, ok := g.deny.Cutoff(store.CutoffSubject, s.Subject); ok && c.After(latest) {
		latest = c
	}
	if c, ok := g.deny.Cutoff(store.CutoffSession, s.Handle); ok && c.After(latest) {
		latest = c
	}
	if latest.After(iat) {
		iat = latest.Truncate(time.Second).Add(time.Second)
	}
	return iat
}

// serveTokenRevoke is POST /.portcullis/token/revoke (RFC 7009 style): a
// client ends its refresh family with its refresh token, from the body's
// "token" field or the refresh cookie (whose Path covers this URL). The
// answer is 200 whether or not the token was valid (RFC 7009 §2.2).
func (g *Gateway) serveTokenRevoke(w http.ResponseWriter, r *http.Request, rs *requestState) error {
	st := rs.st
	if st.signer == nil {
		return errNotFound
	}
	if err := parseForm(w, r); err != nil {
		return err
	}
	token, fromCookie, err := refreshCredential(r, rs, "token")
	if err != nil {
		return err
	}
	ctx := r.Context()
	// A rotation identifies the family (familyOf); the family is then
	// deleted whatever the rotation answered.
	s, err := g.familyOf(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return storeDown(err)
	default:
		if _, err := g.store.DeleteSession(ctx, s.Handle); err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeDown(err)
		}
		if err := g.endSession(ctx, s); err != nil {
			return storeDown(err)
		}
		g.log.Info("refresh family revoked by its client", zap.String("request_id", rs.requestID),
			zap.String("subject", s.Subject), zap.String("handle", s.Handle))
	}
	if fromCookie {
		http.SetCookie(w, expire(refreshCookie(st.cfg.Tokens.RefreshCookie, "")))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// familyOf finds the family of a refresh token presented for revocation.
// It rotates the token (the family dies right after, so the successor is
// never used); a reused token has already killed its family in the store.
func (g *Gateway) familyOf(ctx context.Context, token string) (store.Session, error) {
	st := g.state.Load()
	rot, err := g.store.Rotate(ctx, token, g.now(), store.RotateOptions{Grace: st.cfg.Tokens.ReuseGrace, Idle: st.cfg.Tokens.RefreshIdle})
	switch {
	case errors.Is(err, store.ErrReused):
		g.metrics.RefreshReuse.Inc()
		return rot.Session, g.endSession(ctx, rot.Session)
	case errors.Is(err, store.ErrReplayLimit):
		return rot.Session, nil // a live token of the family all the same
	}
	return rot.Session, err
}

// mintKey is a signing key and how long the tokens it signs live.
type mintKey struct {
	signer *mint.Signer
	ttl    time.Duration
}

// readPEM is a configured key: inline PEM, or the PEM file it names.
func readPEM(value string) ([]byte, error) {
	if strings.Contains(value, "-----BEGIN") {
		return []byte(value), nil
	}
	return os.ReadFile(value)
}

// loadSigner reads a private key given as a PEM file path or inline PEM.
func loadSigner(value, field string) (*mint.Signer, error) {
	data, err := readPEM(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	k, err := keys.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	s, err := mint.NewSigner(k, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if alg := s.Algorithm(); alg != "ES256" && alg != "EdDSA" {
		return nil, fmt.Errorf("%s: must be an ES256 (P-256) or EdDSA (Ed25519) key, got %s", field, alg)
	}
	return s, nil
}

// loadPublicKeys reads verification-only keys: PEM public keys or
// certificates, or private keys whose public half is taken; each entry a
// file path or inline PEM.
func loadPublicKeys(values []string, field string) ([]keys.Key, error) {
	var out []keys.Key
	for i, v := range values {
		data, err := readPEM(v)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if strings.Contains(string(data), "PRIVATE KEY") {
			s, err := keys.ParsePrivateKey(data)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
			}
			k, err := keys.NewKey(s.Public(), "", "")
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
			}
			out = append(out, k)
			continue
		}
		ks, err := keys.ParsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, ks...)
	}
	for i, k := range out {
		if k.Algorithm != "ES256" && k.Algorithm != "EdDSA" {
			return nil, fmt.Errorf("%s: key %d is %s; the gateway signs only with ES256 or EdDSA", field, i, k.Algorithm)
		}
	}
	return out, nil
}

// newKeyRing serves the current signing keys and tokens.previous_keys, and
// keeps the previous configuration's keys until the tokens they signed
// have expired.
func newKeyRing(now time.Time, current []mintKey, previous []keys.Key, old *state) *mint.KeyRing {
	var retain time.Duration
	ks := make([]keys.Key, 0, len(current)+len(previous))
	ks = append(ks, previous...)
	for _, k := range current {
		ks = append(ks, k.signer.Key())
		retain = max(retain, k.ttl)
	}
	var prev *mint.KeyRing
	if old != nil {
		prev = old.keyring
		for _, k := range []time.Duration{old.cfg.Tokens.AccessTTL, old.cfg.Identity.Assertion.TTL} {
			retain = max(retain, k)
		}
	}
	return mint.NewKeyRing(now, retain+time.Minute, prev, ks...)
}

// assertionKey is the cache key of an identity's assertion on a route: the
// whole token for a JWT, the session's identity for a session (a PATCH
// changes it, so the next request gets a fresh assertion).
func assertionKey(id *validator.Identity, route string) string {
	if id.Method == validator.MethodJWT {
		return route + "\x00" + id.RevocationKey
	}
	return strings.Join([]string{route, id.SessionHandle, id.RolesHeader(), id.ScopesHeader(), id.ACR, id.AMRHeader(), id.AuthTimeHeader()}, "\x00")
}

func assertionClaims(id *validator.Identity, route, requestID string) *mint.Assertion {
	a := &mint.Assertion{
		Subject: id.Subject, Roles: id.Roles, Scopes: id.Scopes, AMR: id.AMR, ACR: id.ACR, AuthTime: id.AuthTime,
		SessionID: id.SessionHandle, Route: route, RequestID: requestID, Method: id.Method,
	}
	if id.Method == validator.MethodJWT {
		a.TokenID = id.TokenID
	}
	return a
}
