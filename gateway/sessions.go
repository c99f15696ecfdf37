package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/store"
	"github.com/portcullis/portcullis/validator"
)

// sessionRequest is the body of POST /v1/sessions and the value of the
// Portcullis-Session response header.
type sessionRequest struct {
	Subject    string            `json:"subject"`
	Roles      []string          `json:"roles"`
	Scopes     []string          `json:"scopes"`
	ACR        string            `json:"acr"`
	AMR        []string          `json:"amr"`
	AuthTime   *int64            `json:"auth_time"`
	TTL        string            `json:"ttl"`
	Attributes map[string]string `json:"attributes"`
	Mode       string            `json:"mode"`
}

// sessionUpdate is the body of PATCH /v1/sessions/{handle} and the value of
// the Portcullis-Session-Update response header.
type sessionUpdate struct {
	Roles    *[]string `json:"roles"`
	Scopes   *[]string `json:"scopes"`
	ACR      *string   `json:"acr"`
	AMR      *[]string `json:"amr"`
	AuthTime *int64    `json:"auth_time"`
}

// fieldError is a bad request body, naming the field.
type fieldError struct {
	Field string
	Msg   string
}

func (e *fieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// decodeJSON decodes exactly one JSON object into v, refusing unknown fields
// and trailing data; errors name the field.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				return &fieldError{Msg: "the body must be a JSON object"}
			}
			return &fieldError{Field: field, Msg: "must be " + jsonKind(te.Type.String())}
		case errors.As(err, &se):
			return &fieldError{Msg: fmt.Sprintf("malformed JSON at offset %d", se.Offset)}
		case errors.Is(err, io.EOF):
			return &fieldError{Msg: "the body must be a JSON object"}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &fieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Msg: "unknown field"}
		}
		return &fieldError{Msg: "malformed JSON"}
	}
	if dec.More() {
		return &fieldError{Msg: "trailing data after the JSON object"}
	}
	return nil
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.Contains(goType, "int"):
		return "an integer (unix seconds)"
	case goType == "string" || goType == "*string":
		return "a string"
	}
	return "of type " + goType
}

// checkText refuses characters that a header cannot carry or that would
// change a list's meaning when forwarded.
func checkText(field, v string, forbidden string) error {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return &fieldError{Field: field, Msg: "must not contain control characters"}
		}
	}
	if forbidden != "" && strings.ContainsAny(v, forbidden) {
		return &fieldError{Field: field, Msg: fmt.Sprintf("must not contain %q", forbidden)}
	}
	return nil
}

func checkList(field string, vs []string, forbidden string) error {
	for i, v := range vs {
		if v == "" {
			return &fieldError{Field: fmt.Sprintf("%s[%d]", field, i), Msg: "must not be empty"}
		}
		if err := checkText(fmt.Sprintf("%s[%d]", field, i), v, forbidden); err != nil {
			return err
		}
	}
	return nil
}

// newSession validates a session request against the configuration and
// turns it into a store.NewSession.
func (st *state) newSession(req sessionRequest, now time.Time) (store.NewSession, error) {
	cfg := st.cfg
	if req.Subject == "" {
		return store.NewSession{}, &fieldError{Field: "subject", Msg: "is required"}
	}
	if len(req.Subject) > 256 {
		return store.NewSession{}, &fieldError{Field: "subject", Msg: "must be at most 256 bytes"}
	}
	for _, err := range []error{
		checkText("subject", req.Subject, ""),
		checkList("roles", req.Roles, ","),
		checkList("scopes", req.Scopes, " "),
		checkText("acr", req.ACR, ""),
		checkList("amr", req.AMR, ","),
	} {
		if err != nil {
			return store.NewSession{}, err
		}
	}
	for k, v := range req.Attributes {
		if err := checkText("attributes."+k, v, ""); err != nil {
			return store.NewSession{}, err
		}
	}
	n := store.NewSession{
		Subject: req.Subject, Roles: req.Roles, Scopes: req.Scopes, ACR: req.ACR, AMR: req.AMR,
		Attributes: req.Attributes, AuthTime: now,
	}
	if req.AuthTime != nil {
		n.AuthTime = time.Unix(*req.AuthTime, 0)
	}
	maxTTL := cfg.Sessions.AbsoluteTimeout
	switch req.Mode {
	case "", "session":
		n.Idle = cfg.Sessions.IdleTimeout
		n.MaxPerSubject = cfg.Sessions.MaxPerSubject
	case store.ModeTokens:
		if st.signer == nil {
			return store.NewSession{}, &fieldError{Field: "mode", Msg: `"tokens" needs tokens.signing_key in the configuration`}
		}
		n.Mode = store.ModeTokens
		n.Idle = cfg.Tokens.RefreshIdle
		n.MaxPerSubject = cfg.Sessions.MaxPerSubject
		maxTTL = cfg.Tokens.RefreshTTL
	default:
		return store.NewSession{}, &fieldError{Field: "mode", Msg: `must be "session" or "tokens"`}
	}
	n.TTL = maxTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return store.NewSession{}, &fieldError{Field: "ttl", Msg: `must be a positive Go duration such as "12h"`}
		}
		if d > maxTTL {
			return store.NewSession{}, &fieldError{Field: "ttl", Msg: fmt.Sprintf("must not exceed %s", maxTTL)}
		}
		n.TTL = d
	}
	return n, nil
}

// update validates a session update.
func (u sessionUpdate) toStore() (store.Update, error) {
	var out store.Update
	if u.Roles != nil {
		if err := checkList("roles", *u.Roles, ","); err != nil {
			return out, err
		}
		out.Roles = u.Roles
	}
	if u.Scopes != nil {
		if err := checkList("scopes", *u.Scopes, " "); err != nil {
			return out, err
		}
		out.Scopes = u.Scopes
	}
	if u.ACR != nil {
		if err := checkText("acr", *u.ACR, ""); err != nil {
			return out, err
		}
		out.ACR = u.ACR
	}
	if u.AMR != nil {
		if err := checkList("amr", *u.AMR, ","); err != nil {
			return out, err
		}
		out.AMR = u.AMR
	}
	if u.AuthTime != nil {
		t := time.Unix(*u.AuthTime, 0)
		out.AuthTime = &t
	}
	if out == (store.Update{}) {
		return out, &fieldError{Msg: "nothing to update: give any of roles, scopes, acr, amr, auth_time"}
	}
	return out, nil
}

// updateSession applies an update and, for a refresh family, rejects the
// access tokens minted before it on every node, so the client refreshes and
// gets the new identity.
func (g *Gateway) updateSession(ctx context.Context, handle string, u store.Update) (store.Session, error) {
	now := g.now()
	s, err := g.store.UpdateSession(ctx, handle, u, now)
	if err != nil {
		return s, err
	}
	if s.Mode == store.ModeTokens {
		before := s.UpdatedAt
		if before.IsZero() {
			before = now
		}
		if err := g.deny.RevokeSessionBefore(ctx, s.Handle, before); err != nil {
			return s, fmt.Errorf("revoking access tokens minted before the update: %w", err)
		}
	}
	return s, nil
}

// endSession deletes a session; for a refresh family it also revokes, on
// every node, the access tokens minted from it (by sid).
func (g *Gateway) endSession(ctx context.Context, s store.Session) error {
	if s.Mode != store.ModeTokens {
		return nil
	}
	st := g.state.Load()
	return g.deny.Revoke(ctx, store.Revocation{
		Kind:      store.KindSession,
		ID:        s.Handle,
		ExpiresAt: g.now().Add(st.cfg.Tokens.AccessTTL + time.Minute),
	})
}

func sessionCookie(name, value string) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

func refreshCookie(name, value string) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: tokenPath, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
}

func expire(c *http.Cookie) *http.Cookie {
	c.Value, c.MaxAge = "", -1
	return c
}

// issueFromResponse handles Portcullis-Session and Portcullis-Session-Update
// on an issue_session route.
func (g *Gateway) issueFromResponse(resp *http.Response, rs *requestState, create, update string) error {
	ctx := resp.Request.Context()
	st := rs.st
	log := g.log.With(rs.logFields()...)
	if create != "" {
		var req sessionRequest
		if err := decodeJSON([]byte(create), &req); err != nil {
			log.Warn("upstream sent an invalid Portcullis-Session header", zap.Error(err))
			return &httpError{Status: http.StatusBadGateway, Code: "bad_gateway", Description: "the upstream sent an invalid session", Reason: "bad-session-header", Err: err}
		}
		n, err := st.newSession(req, g.now())
		if err != nil {
			log.Warn("upstream sent an invalid Portcullis-Session header", zap.Error(err))
			return &httpError{Status: http.StatusBadGateway, Code: "bad_gateway", Description: "the upstream sent an invalid session", Reason: "bad-session-header", Err: err}
		}
		c, err := g.store.CreateSession(ctx, n)
		if err != nil {
			return storeDown(err)
		}
		if n.Mode == store.ModeTokens {
			resp.Header.Add("Set-Cookie", refreshCookie(st.cfg.Tokens.RefreshCookie, c.Secret).String())
			g.metrics.TokensIssued.WithLabelValues("refresh").Inc()
		} else {
			resp.Header.Add("Set-Cookie", sessionCookie(st.cfg.Sessions.CookieName, c.Secret).String())
			g.metrics.TokensIssued.WithLabelValues("session").Inc()
		}
		resp.Header.Set("Cache-Control", "no-store")
		log.Info("session created by login service", zap.String("subject", c.Session.Subject),
			zap.String("handle", c.Session.Handle), zap.String("mode", c.Session.Mode), zap.Int("evicted", len(c.Evicted)))
		for _, e := range c.Evicted {
			if err := g.endSession(ctx, e); err != nil {
				log.Warn("revoking an evicted family's access tokens", zap.String("handle", e.Handle), zap.Error(err))
			}
		}
	}
	if update != "" {
		handle := ""
		if id := rs.identity; id != nil && id.Method == validator.MethodSession {
			handle = id.SessionHandle
		} else if c, err := resp.Request.Cookie(st.cfg.Sessions.CookieName); err == nil {
			id, err := st.sessions.Authenticate(ctx, c.Value)
			if err != nil && errors.Is(err, validator.ErrStoreUnavailable) {
				return storeDown(err)
			}
			if err == nil {
				handle = id.SessionHandle
			}
		}
		if handle == "" {
			log.Warn("Portcullis-Session-Update without a session on the request; ignored")
			return nil
		}
		var u sessionUpdate
		if err := decodeJSON([]byte(update), &u); err != nil {
			log.Warn("upstream sent an invalid Portcullis-Session-Update header", zap.Error(err))
			return &httpError{Status: http.StatusBadGateway, Code: "bad_gateway", Description: "the upstream sent an invalid session update", Reason: "bad-session-header", Err: err}
		}
		if u.AuthTime == nil && (u.ACR != nil || u.AMR != nil) {
			t := g.now().Unix() // a step-up just happened
			u.AuthTime = &t
		}
		su, err := u.toStore()
		if err != nil {
			log.Warn("upstream sent an invalid Portcullis-Session-Update header", zap.Error(err))
			return &httpError{Status: http.StatusBadGateway, Code: "bad_gateway", Description: "the upstream sent an invalid session update", Reason: "bad-session-header", Err: err}
		}
		if _, err := g.updateSession(ctx, handle, su); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				log.Warn("Portcullis-Session-Update for a session that no longer exists; ignored", zap.String("handle", handle))
				return nil
			}
			return storeDown(err)
		}
		log.Info("session updated by login service", zap.String("handle", handle))
	}
	return nil
}

// serveLogout is POST /.portcullis/logout: delete the caller's session and
// clear the cookie.
func (g *Gateway) serveLogout(w http.ResponseWriter, r *http.Request, rs *requestState) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed("POST")
	}
	st := rs.st
	cred, err := validator.Extract(r, "session", st.cfg.Sessions.CookieName)
	if err != nil && !errors.Is(err, validator.ErrNoCredential) {
		return err
	}
	if err == nil {
		if cred.FromCookie && st.csrf && !sameOrigin(r, rs.trusted) {
			return errCSRF
		}
		id, err := st.sessions.Authenticate(r.Context(), cred.Value)
		switch {
		case err == nil:
			s, err := g.store.DeleteSession(r.Context(), id.SessionHandle)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return storeDown(err)
			}
			if err == nil {
				if err := g.endSession(r.Context(), s); err != nil {
					return storeDown(err)
				}
			}
			rs.identity = id
		case errors.Is(err, validator.ErrStoreUnavailable):
			return err
		}
	}
	http.SetCookie(w, expire(sessionCookie(st.cfg.Sessions.CookieName, "")))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func methodNotAllowed(allow string) *httpError {
	return &httpError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Description: "method not allowed",
		Reason: "method-not-allowed", Headers: [][2]string{{"Allow", allow}}}
}
