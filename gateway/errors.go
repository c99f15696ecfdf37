package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/policy"
	"github.com/portcullis/portcullis/validator"
)

// httpError is a refusal: what the client is told (Status, Code,
// Description, the headers) and what is logged (Reason, Err). It is the one
// place a status is chosen (STYLE: errors carry meaning, writeError picks
// the status).
type httpError struct {
	Status      int
	Code        string // JSON "error"
	Description string // JSON "error_description"; never a secret
	Reason      string // kebab-case, for logs and metrics
	// Headers set on the response (WWW-Authenticate, Allow, Retry-After,
	// Location, Set-Cookie).
	Headers [][2]string
	Err     error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *httpError) Unwrap() error { return e.Err }

// errStatusClientClosed is nginx's 499: the client went away; only logged.
const statusClientClosed = 499

var (
	errHeaderTooLarge = &httpError{Status: http.StatusRequestHeaderFieldsTooLarge, Code: "request_header_fields_too_large", Description: "request header fields too large", Reason: "header-too-large"}
	errBadTarget      = &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "request target not supported", Reason: "bad-target"}
	errTwoAuth        = &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "more than one Authorization header", Reason: "duplicate-authorization"}
	errTwoCookies     = &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "conflicting session cookies", Reason: "duplicate-session-cookie"}
	errCSRF           = &httpError{Status: http.StatusForbidden, Code: "csrf", Description: "cross-origin request with a session cookie", Reason: "csrf"}
	errOverloaded     = &httpError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "too many requests in flight for this route", Reason: "route-overloaded", Headers: [][2]string{{"Retry-After", "1"}}}
	errNotFound       = &httpError{Status: http.StatusNotFound, Code: "not_found", Description: "no route", Reason: "no-route"}
)

// bearerChallenge builds an RFC 6750 WWW-Authenticate value from
// parameter pairs; values are quoted with '"' and '\' escaped.
func bearerChallenge(params ...string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	for i := 0; i+1 < len(params); i += 2 {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(params[i])
		b.WriteString(`="`)
		for _, c := range []byte(params[i+1]) {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			if c < 0x20 || c == 0x7f {
				continue
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	return b.String()
}

// classify turns any error of the pipeline into an httpError.
func classify(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var pe *policy.PathError
	var me *policy.MethodNotAllowedError
	var te *validator.TokenError
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away (even while the store was being asked).
		return &httpError{Status: statusClientClosed, Code: "client_closed_request", Reason: "client-closed", Err: err}
	case errors.As(err, &me):
		return &httpError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Description: "method not allowed on this route",
			Reason: "method-not-allowed", Headers: [][2]string{{"Allow", me.Allow}}, Err: err}
	case errors.Is(err, policy.ErrBadPath):
		reason := "bad-path"
		if errors.As(err, &pe) && pe.Reason != "" {
			reason = pe.Reason
		}
		return &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "path not canonical", Reason: reason, Err: err}
	case errors.Is(err, policy.ErrNoRoute):
		return errNotFound
	case errors.Is(err, validator.ErrConflict):
		return &httpError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "ambiguous credentials", Reason: "credential-conflict", Err: err}
	case errors.Is(err, validator.ErrNoCredential):
		return &httpError{Status: http.StatusUnauthorized, Code: "unauthorized", Description: "authentication required", Reason: "no-credential",
			Headers: [][2]string{{"WWW-Authenticate", `Bearer realm="portcullis"`}}, Err: err}
	case errors.Is(err, validator.ErrKeysUnavailable):
		return &httpError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the issuer's keys are not available yet",
			Reason: "keys-unavailable", Headers: [][2]string{{"Retry-After", "5"}}, Err: err}
	case errors.Is(err, denylist.ErrRevoked):
		return invalidToken("token-revoked", "the credential has been revoked", err)
	case errors.Is(err, validator.ErrInvalidToken):
		reason, desc := "invalid-token", "the credential is not valid"
		if errors.As(err, &te) {
			reason, desc = te.Reason, te.Description
		}
		return invalidToken(reason, desc, err)
	case errors.Is(err, validator.ErrStoreUnavailable), errors.Is(err, denylist.ErrUnavailable):
		return storeDown(err)
	}
	return &httpError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error", Reason: "internal", Err: err}
}

func invalidToken(reason, desc string, err error) *httpError {
	return &httpError{Status: http.StatusUnauthorized, Code: "invalid_token", Description: desc, Reason: reason,
		Headers: [][2]string{{"WWW-Authenticate", bearerChallenge("error", "invalid_token", "error_description", desc)}}, Err: err}
}

func storeDown(err error) *httpError {
	return &httpError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the session store is unavailable",
		Reason: "store-unavailable", Headers: [][2]string{{"Retry-After", "2"}}, Err: err}
}

// upstreamError classifies a proxy failure: a timeout is 504, a client that
// went away 499, anything else 502.
func upstreamError(err error) *httpError {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return &httpError{Status: statusClientClosed, Code: "client_closed_request", Reason: "client-closed", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &httpError{Status: http.StatusGatewayTimeout, Code: "gateway_timeout", Description: "the upstream did not answer in time", Reason: "upstream-timeout", Err: err}
	}
	return &httpError{Status: http.StatusBadGateway, Code: "bad_gateway", Description: "the upstream is unreachable", Reason: "upstream-error", Err: err}
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	RequestID   string `json:"request_id,omitempty"`
}

// writeError sends he as the response: its headers and a JSON body. A 499 is
// only logged (nobody is listening) and the connection is aborted: with
// nothing written, net/http would complete the exchange with an empty 200,
// which a client that only half-closed its side would read as success.
// ServeHTTP's recoverAbort writes the access log line.
func writeError(w http.ResponseWriter, he *httpError, requestID string) {
	if he.Status == statusClientClosed {
		if rw, ok := w.(*responseWriter); ok {
			rw.status = statusClientClosed
		}
		panic(http.ErrAbortHandler)
	}
	h := w.Header()
	for _, kv := range he.Headers {
		h.Add(kv[0], kv[1])
	}
	if he.Status == http.StatusFound {
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(he.Status)
		return
	}
	body, _ := json.Marshal(errorBody{Error: he.Code, Description: he.Description, RequestID: requestID})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(he.Status)
	_, _ = w.Write(append(body, '\n'))
}
