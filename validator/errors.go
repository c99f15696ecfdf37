package validator

import (
	"errors"
)

// Sentinel errors the gateway maps to HTTP statuses.
var (
	// ErrNoCredential reports a request without a credential of the kind
	// its route accepts (401 with WWW-Authenticate: Bearer realm="portcullis").
	ErrNoCredential = errors.New("validator: no credential")
	// ErrInvalidToken reports a credential that is present but not valid
	// (401 error="invalid_token"). Every *TokenError matches it.
	ErrInvalidToken = errors.New("validator: invalid token")
	// ErrConflict reports ambiguous credentials: two Authorization headers,
	// two session cookies with different values, or a bearer token and a
	// session cookie that disagree (400).
	ErrConflict = errors.New("validator: conflicting credentials")
	// ErrStoreUnavailable reports that the session store could not answer
	// (503). The store's own error is wrapped alongside it.
	ErrStoreUnavailable = errors.New("validator: session store unavailable")
	// ErrKeysUnavailable reports a token of an issuer whose remote JWK Set
	// has never loaded: a technical failure (503), not a bad token. It comes
	// wrapped in a TokenError with ReasonKeysUnavailable.
	ErrKeysUnavailable = errors.New("validator: issuer keys not loaded")
)

// Reasons a credential is refused, as TokenError.Reason. They are stable
// kebab-case words meant for logs and metric labels.
const (
	ReasonMalformed        = "malformed"
	ReasonTokenExpired     = "token-expired"
	ReasonTokenNotYetValid = "token-not-yet-valid"
	ReasonIATInFuture      = "iat-in-future"
	ReasonBadSignature     = "bad-signature"
	ReasonAlgNotAllowed    = "alg-not-allowed"
	ReasonUnknownIssuer    = "unknown-issuer"
	ReasonWrongAudience    = "wrong-audience"
	ReasonUnknownKID       = "unknown-kid"
	ReasonKeysUnavailable  = "keys-unavailable"
	ReasonUnknownCrit      = "unknown-crit"
	ReasonLifetimeTooLong  = "lifetime-too-long"
	ReasonMissingExp       = "missing-exp"
	ReasonMissingIAT       = "missing-iat"
	ReasonBadClaim         = "bad-claim"
	ReasonClaimNotAllowed  = "claim-not-allowed"
	ReasonSessionUnknown   = "session-unknown"
	ReasonSessionExpired   = "session-expired"
	ReasonSessionIdle      = "session-idle"
)

// TokenError is a refused credential. It matches ErrInvalidToken with
// errors.Is. Description is safe to send to the client (it never contains
// the credential); Err, when set, is the underlying cause, for the log only.
type TokenError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Description is a short English sentence for error_description.
	Description string
	// Err is the underlying error, if any.
	Err error
}

// Error describes the refusal; like Description it never contains the
// credential.
func (e *TokenError) Error() string {
	msg := "validator: invalid token: " + e.Reason
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrInvalidToken.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// Unwrap returns the underlying cause.
func (e *TokenError) Unwrap() error { return e.Err }

func invalid(reason, description string) *TokenError {
	return &TokenError{Reason: reason, Description: description}
}

func invalidErr(reason, description string, err error) *TokenError {
	return &TokenError{Reason: reason, Description: description, Err: err}
}

// ReasonOf returns the Reason of a *TokenError in err's chain, or "" when
// there is none.
func ReasonOf(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}
