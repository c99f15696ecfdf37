// Package validator turns a request's credential into a verified Identity.
//
// It has three parts, used by the gateway in this order:
//
//   - Extract picks the one credential a request carries for a route's auth
//     type (a bearer JWT, an opaque bearer or the session cookie) and refuses
//     ambiguous requests (two Authorization headers, disagreeing cookies).
//   - JWT verifies tokens of the configured issuers (PEM or JWK Set files,
//     remote JWK Sets refreshed in the background, HMAC secrets) and of the
//     gateway's own token issuer, and caches verified tokens until they expire.
//   - Sessions authenticates opaque session IDs against a SessionStore and
//     slides their idle expiry.
//
// Every failure of a credential is a *TokenError that matches ErrInvalidToken
// and carries a kebab-case Reason for logs and metrics and a Description that
// is safe to show the client: it never contains the credential. Revocation is
// not checked here: the gateway consults the denylist with the Identity's
// RevocationKey and SessionRevocationKey on every request.
//
// Package validator does not import package policy or package denylist.
package validator
