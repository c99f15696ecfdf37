package validator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/store"
)

// SessionIDLength is the length of a session ID: 256 random bits in
// unpadded base64url.
const SessionIDLength = 43

// SessionStore is what Sessions needs from the store.
type SessionStore interface {
	// SessionByID returns the session whose ID (the secret) is id, or
	// store.ErrNotFound.
	SessionByID(ctx context.Context, id string) (store.Session, error)
	// TouchSession records use of the session at now, extending its idle
	// expiry by idle.
	TouchSession(ctx context.Context, handle string, now time.Time, idle time.Duration) error
}

// SessionOptions are the dependencies of Sessions. Every field is optional.
type SessionOptions struct {
	// Logger receives failed touches; nil: no logging.
	Logger *zap.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Sessions authenticates opaque session IDs.
type Sessions struct {
	st         SessionStore
	idle       time.Duration
	touchEvery time.Duration
	log        *zap.Logger
	now        func() time.Time
}

// NewSessions returns a session authenticator. cfg gets its defaults (on a
// copy); it is expected to be valid.
func NewSessions(st SessionStore, cfg SessionsConfig, opts SessionOptions) *Sessions {
	cfg.SetDefaults()
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sessions{
		st:         st,
		idle:       cfg.IdleTimeout,
		touchEvery: TouchInterval(cfg.IdleTimeout),
		log:        opts.Logger.Named("sessions"),
		now:        opts.Now,
	}
}

// TouchInterval is how often a session's last-seen time is written at most:
// min(1 minute, idle/10).
func TouchInterval(idle time.Duration) time.Duration {
	return min(time.Minute, idle/10)
}

// ValidSessionID reports whether id has the shape of a session ID: 43
// characters of canonical unpadded base64url.
func ValidSessionID(id string) bool {
	if len(id) != SessionIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if b64Value(id[i]) < 0 {
			return false
		}
	}
	// 43 characters carry 258 bits: the last one's two low bits are zero.
	return b64Value(id[len(id)-1])&3 == 0
}

func b64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// Authenticate looks up a session ID and returns its Identity. A malformed
// ID is refused without a store call; an unknown, expired or idle session,
// or a refresh family (never a session credential), is a *TokenError; a
// failing store is ErrStoreUnavailable (wrapping the store's error). When the
// session was last seen at least TouchInterval ago, its last-seen time is
// written (a failure is logged, not returned).
func (s *Sessions) Authenticate(ctx context.Context, id string) (*Identity, error) {
	if !ValidSessionID(id) {
		return nil, invalid(ReasonMalformed, "the session ID is malformed")
	}
	sess, err := s.st.SessionByID(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, invalid(ReasonSessionUnknown, "the session is unknown")
		}
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	if sess.Mode != "" {
		return nil, invalid(ReasonSessionUnknown, "the session is unknown")
	}
	now := s.now()
	if !now.Before(sess.ExpiresAt) {
		return nil, invalid(ReasonSessionExpired, "the session has expired")
	}
	seen := now.Sub(sess.LastSeenAt)
	if seen > s.idle {
		return nil, invalid(ReasonSessionIdle, "the session has expired for inactivity")
	}
	ident, terr := sessionIdentity(&sess)
	if terr != nil {
		return nil, terr
	}
	if seen >= s.touchEvery {
		if err := s.st.TouchSession(ctx, sess.Handle, now, s.idle); err != nil {
			s.log.Warn("could not record session use", zap.String("handle", sess.Handle), zap.Error(err))
		}
	}
	return ident, nil
}

// sessionIdentity builds a session's Identity, refusing values its headers
// could not carry.
func sessionIdentity(s *store.Session) (*Identity, *TokenError) {
	bad := hasControl(s.Subject) || hasControl(s.Handle) || hasControl(s.ACR)
	for _, r := range s.Roles {
		bad = bad || r == "" || hasControl(r) || strings.IndexByte(r, ',') >= 0
	}
	for _, a := range s.AMR {
		bad = bad || a == "" || hasControl(a) || strings.IndexByte(a, ',') >= 0
	}
	for _, sc := range s.Scopes {
		bad = bad || sc == "" || hasControl(sc) || strings.IndexByte(sc, ' ') >= 0
	}
	for _, v := range s.Attributes {
		bad = bad || hasControl(v)
	}
	if bad {
		return nil, invalid(ReasonClaimNotAllowed, "the session holds a value a header cannot represent")
	}
	id := &Identity{
		Method:        MethodSession,
		Subject:       s.Subject,
		SessionHandle: s.Handle,
		Roles:         s.Roles,
		Scopes:        s.Scopes,
		ACR:           s.ACR,
		AMR:           s.AMR,
		AuthTime:      s.AuthTime,
		IssuedAt:      s.CreatedAt,
		ExpiresAt:     s.ExpiresAt,
		Attributes:    s.Attributes,
	}
	id.ComputeHeaders()
	return id, nil
}
