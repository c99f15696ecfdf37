// Package store keeps portcullis's shared state: opaque sessions, refresh-token
// families and the revocation denylist. It has two implementations of the same
// method set: Memory, for a single node with no Redis, and Redis, for several
// nodes sharing one Redis (single server, Sentinel or Cluster through go-redis's
// UniversalClient).
//
// The consumers (validator, denylist, gateway) declare the small interfaces they
// need; this package declares none of its own. Secrets never reach the store: a
// session ID or refresh token is kept only as its SHA-256, so a dump of the
// store yields nothing that authenticates.
package store

import (
	"errors"
	"strconv"
	"time"
)

// Sentinel errors. Any other error returned by a store method is a technical
// failure of the store (unreachable, timed out) and must not be read as
// "not found".
var (
	// ErrNotFound reports an unknown, expired or deleted session, family,
	// refresh token or revocation.
	ErrNotFound = errors.New("store: not found")
	// ErrReused reports a refresh token presented again after its reuse grace:
	// the store has already deleted the whole family when it returns this.
	ErrReused = errors.New("store: refresh token reused")
	// ErrReplayLimit reports a replay within the grace that would give the
	// family's current generation more than MaxGenerationTokens live refresh
	// tokens. The family stays as it is; Rotated.Session is the family.
	ErrReplayLimit = errors.New("store: too many refresh tokens replayed within the grace")
)

// MaxGenerationTokens bounds the refresh tokens live at once in a family: the
// one a rotation issued plus those issued to replays of the tokens it
// replaced, within the grace.
const MaxGenerationTokens = 64

// ModeTokens is Session.Mode for a refresh family: a session that mints access
// tokens through the token endpoint and is never itself a session credential.
const ModeTokens = "tokens"

// Session is one server-side session or refresh family. Times are kept with
// millisecond precision by the Redis store.
type Session struct {
	// Handle is the non-secret name of the session used by the admin API,
	// X-Auth-Session and the sid claim of minted access tokens.
	Handle string `json:"handle"`
	// Subject is the user the session belongs to.
	Subject    string            `json:"subject"`
	Roles      []string          `json:"roles,omitempty"`
	Scopes     []string          `json:"scopes,omitempty"`
	ACR        string            `json:"acr,omitempty"`
	AMR        []string          `json:"amr,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// AuthTime is when the user last authenticated; zero when unknown.
	AuthTime time.Time `json:"-"`
	// CreatedAt, LastSeenAt and ExpiresAt (the absolute end) of the session.
	CreatedAt  time.Time `json:"-"`
	LastSeenAt time.Time `json:"-"`
	ExpiresAt  time.Time `json:"-"`
	// Mode is "" for an opaque session and ModeTokens for a refresh family.
	Mode string `json:"mode,omitempty"`
	// Generation counts the refresh tokens of a family: 1 for the first.
	Generation int64 `json:"generation,omitempty"`
	// UpdatedAt is when the session's identity was last changed by an update;
	// zero if never. Access tokens of a family minted before it are stale.
	UpdatedAt time.Time `json:"-"`
}

// NewSession is what a caller supplies to create a session or a family. The
// store generates the secret, the handle and the timestamps.
type NewSession struct {
	Subject    string
	Roles      []string
	Scopes     []string
	ACR        string
	AMR        []string
	Attributes map[string]string
	AuthTime   time.Time
	Mode       string // "" or ModeTokens
	// TTL is the absolute lifetime (ExpiresAt = now + TTL).
	TTL time.Duration
	// Idle is how long the session (or, for a family, its current refresh
	// token) may go unused; 0 means no idle expiry.
	Idle time.Duration
	// MaxPerSubject > 0 evicts the subject's oldest sessions, atomically with
	// the creation, so that at most MaxPerSubject remain.
	MaxPerSubject int
}

// Update changes a session's identity; nil fields are left as they are.
type Update struct {
	Roles    *[]string
	Scopes   *[]string
	ACR      *string
	AMR      *[]string
	AuthTime *time.Time
}

// Created is the answer of CreateSession. Secret is the session ID for an
// opaque session or the first refresh token for a family; it is shown once and
// never stored.
type Created struct {
	Session Session
	Secret  string
	// Evicted lists the sessions deleted to honour MaxPerSubject.
	Evicted []Session
}

// RotateOptions are the rules for one refresh-token rotation.
type RotateOptions struct {
	// Grace is how long a replaced token may be presented again.
	Grace time.Duration
	// Idle is how long the new current token may go unused; 0: no idle expiry.
	Idle time.Duration
}

// Rotated is the answer of Rotate.
type Rotated struct {
	// Session is the family at the moment of the rotation.
	Session Session
	// Token is the refresh token the client must use next. It is new for
	// every call, replays included.
	Token string
	// Replayed is true when the presented token had already been replaced,
	// less than the grace ago. Token then joins the family's current
	// generation beside the token of that rotation: either may be rotated
	// next, and the first rotation retires them all.
	Replayed bool
}

// Revocation kinds.
const (
	// KindToken is a revoked JWT, by issuer and jti (or signing-input hash).
	KindToken = "token"
	// KindSession is a revoked session handle: every access token minted from
	// it (sid claim) is rejected.
	KindSession = "session"
)

// Revocation is one denylist entry. It lives until ExpiresAt, the expiry of
// the credential it revokes.
type Revocation struct {
	Kind string `json:"kind"`
	// Issuer is the token's iss (empty for KindSession).
	Issuer string `json:"issuer"`
	// ID is the jti, "sha256:<base64url>" of a jti-less token's signing input,
	// or the session handle for KindSession.
	ID        string    `json:"jti"`
	ExpiresAt time.Time `json:"-"`
}

// Key is the string the denylist's Bloom filter and the store index the
// revocation by. It is unambiguous for any issuer and ID.
func (r Revocation) Key() string {
	if r.Kind == KindSession {
		return SessionKey(r.ID)
	}
	return TokenKey(r.Issuer, r.ID)
}

// TokenKey is Revocation.Key of a KindToken entry.
func TokenKey(issuer, id string) string {
	return "t" + strconv.Itoa(len(issuer)) + ":" + issuer + id
}

// SessionKey is Revocation.Key of a KindSession entry.
func SessionKey(handle string) string {
	return "s:" + handle
}

// Cutoff kinds: "reject what was issued before" rules.
const (
	// CutoffSubject rejects a subject's JWTs issued before the cutoff
	// ("log out everywhere").
	CutoffSubject = "subject"
	// CutoffSession rejects access tokens minted from a session (sid) before
	// the cutoff (a permission change).
	CutoffSession = "session"
)

// Cutoff is a revoked-before rule. It lives until ExpiresAt, after which no
// token issued before Before can still be valid.
type Cutoff struct {
	Kind      string
	Name      string // the subject or the session handle
	Before    time.Time
	ExpiresAt time.Time
}

// Event is one change published to every node. Exactly one of Revocation
// and Cutoff is set.
type Event struct {
	Revocation *Revocation
	Cutoff     *Cutoff
	// PublishedAt is when the publishing node sent it (for the sync lag).
	PublishedAt time.Time
}
