package validator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis/portcullis/store"
)

// fakeStore is an in-memory SessionStore that counts calls.
type fakeStore struct {
	mu       sync.Mutex
	byID     map[string]*store.Session
	err      error // returned by SessionByID when set
	touchErr error
	reads    int
	touches  int
}

var _ SessionStore = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{byID: map[string]*store.Session{}} }

func (f *fakeStore) SessionByID(_ context.Context, id string) (store.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return store.Session{}, f.err
	}
	s, ok := f.byID[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return *s, nil
}

func (f *fakeStore) TouchSession(_ context.Context, handle string, now time.Time, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touches++
	if f.touchErr != nil {
		return f.touchErr
	}
	for _, s := range f.byID {
		if s.Handle == handle {
			s.LastSeenAt = now
		}
	}
	return nil
}

func (f *fakeStore) add(s store.Session) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	f.mu.Lock()
	f.byID[id] = &s
	f.mu.Unlock()
	return id
}

func (f *fakeStore) counts() (reads, touches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads, f.touches
}

func aliceSession() store.Session {
	return store.Session{
		Handle:     "h-alice",
		Subject:    "alice",
		Roles:      []string{"user", "admin"},
		Scopes:     []string{"read", "write"},
		ACR:        "mfa",
		AMR:        []string{"pwd", "otp"},
		AuthTime:   t0.Add(-time.Hour),
		CreatedAt:  t0.Add(-2 * time.Hour),
		LastSeenAt: t0.Add(-time.Second),
		ExpiresAt:  t0.Add(10 * time.Hour),
		Attributes: map[string]string{"tenant": "acme"},
	}
}

func newSessions(t testing.TB, st SessionStore, idle time.Duration) (*Sessions, *fakeClock) {
	t.Helper()
	clk := newClock()
	return NewSessions(st, SessionsConfig{IdleTimeout: idle}, SessionOptions{Now: clk.Now}), clk
}

func TestSessionAuthenticate(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	id := st.add(aliceSession())
	s, _ := newSessions(t, st, 0)
	got, err := s.Authenticate(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != MethodSession || got.Subject != "alice" || got.SessionHandle != "h-alice" || got.ACR != "mfa" ||
		!got.IssuedAt.Equal(t0.Add(-2*time.Hour)) || !got.ExpiresAt.Equal(t0.Add(10*time.Hour)) {
		t.Fatalf("identity = %+v", got)
	}
	if got.RolesHeader() != "user,admin" || got.ScopesHeader() != "read write" || got.AMRHeader() != "pwd,otp" ||
		got.AuthTimeHeader() != "1749996400" {
		t.Fatalf("headers %q %q %q %q", got.RolesHeader(), got.ScopesHeader(), got.AMRHeader(), got.AuthTimeHeader())
	}
	if v, ok := got.ClaimHeader("tenant"); !ok || v != "acme" {
		t.Fatalf("ClaimHeader(tenant) = %q, %v", v, ok)
	}
	if got.RevocationKey != "" || got.TokenID != "" || got.Issuer != "" {
		t.Fatalf("JWT fields on a session: %+v", got)
	}
}

func TestSessionRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(s *store.Session)
		reason string
	}{
		{"expired", func(s *store.Session) { s.ExpiresAt = t0 }, ReasonSessionExpired},
		{"idle", func(s *store.Session) { s.LastSeenAt = t0.Add(-31 * time.Minute) }, ReasonSessionIdle},
		{"refresh family", func(s *store.Session) { s.Mode = store.ModeTokens }, ReasonSessionUnknown},
		{"control char in subject", func(s *store.Session) { s.Subject = "a\nb" }, ReasonClaimNotAllowed},
		{"comma in a role", func(s *store.Session) { s.Roles = []string{"a,b"} }, ReasonClaimNotAllowed},
		{"space in a scope", func(s *store.Session) { s.Scopes = []string{"a b"} }, ReasonClaimNotAllowed},
		{"control char in an attribute", func(s *store.Session) { s.Attributes = map[string]string{"x": "\x00"} }, ReasonClaimNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newFakeStore()
			sess := aliceSession()
			tt.mod(&sess)
			s, _ := newSessions(t, st, 0)
			_, err := s.Authenticate(t.Context(), st.add(sess))
			wantReason(t, err, tt.reason)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		st := newFakeStore()
		s, _ := newSessions(t, st, 0)
		_, err := s.Authenticate(t.Context(), strings.Repeat("A", 43))
		wantReason(t, err, ReasonSessionUnknown)
	})
}

func TestSessionBadIDNoStoreCall(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	s, _ := newSessions(t, st, 0)
	for _, id := range []string{
		"",
		strings.Repeat("A", 42),
		strings.Repeat("A", 44),
		strings.Repeat("A", 42) + "=",
		strings.Repeat("A", 42) + "B", // non-canonical: low bits set
		strings.Repeat("A", 41) + "+A",
		strings.Repeat("A", 41) + ".A",
		jwtLike,
	} {
		_, err := s.Authenticate(t.Context(), id)
		wantReason(t, err, ReasonMalformed)
	}
	if reads, _ := st.counts(); reads != 0 {
		t.Fatalf("%d store reads for malformed IDs", reads)
	}
}

func TestSessionStoreDown(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	down := errors.New("dial tcp 127.0.0.1:6379: connection refused")
	st.err = down
	s, _ := newSessions(t, st, 0)
	_, err := s.Authenticate(t.Context(), strings.Repeat("A", 43))
	if !errors.Is(err, ErrStoreUnavailable) || !errors.Is(err, down) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v", err)
	}
}

// TestSessionTouchThrottle drives a session with an injected clock and
// counts the last-seen writes.
func TestSessionTouchThrottle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		idle       time.Duration
		every      time.Duration // request interval
		span       time.Duration
		wantTouchs int
	}{
		{30 * time.Minute, 10 * time.Second, 10 * time.Minute, 10}, // min(1m, 3m) = 1m
		{5 * time.Minute, 10 * time.Second, 5 * time.Minute, 10},   // min(1m, 30s) = 30s
		{30 * time.Minute, 2 * time.Minute, 20 * time.Minute, 10},  // every request is a minute past
	}
	for _, tt := range tests {
		st := newFakeStore()
		sess := aliceSession()
		sess.LastSeenAt = t0
		sess.ExpiresAt = t0.Add(24 * time.Hour)
		id := st.add(sess)
		s, clk := newSessions(t, st, tt.idle)
		n := int(tt.span / tt.every)
		for range n {
			clk.Advance(tt.every)
			if _, err := s.Authenticate(t.Context(), id); err != nil {
				t.Fatalf("idle %s: %v", tt.idle, err)
			}
		}
		reads, touches := st.counts()
		if reads != n || touches != tt.wantTouchs {
			t.Errorf("idle %s, a request every %s for %s: %d reads, %d touches; want %d, %d",
				tt.idle, tt.every, tt.span, reads, touches, n, tt.wantTouchs)
		}
	}
}

// TestSessionSlidingIdle: a session used more often than its idle timeout
// never expires for idleness; one left alone does.
func TestSessionSlidingIdle(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	sess := aliceSession()
	sess.LastSeenAt = t0
	id := st.add(sess)
	s, clk := newSessions(t, st, 5*time.Minute)
	for range 24 { // two hours, a request every 5 minutes
		clk.Advance(5 * time.Minute)
		if _, err := s.Authenticate(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(5*time.Minute + time.Second)
	_, err := s.Authenticate(t.Context(), id)
	wantReason(t, err, ReasonSessionIdle)
}

func TestSessionTouchFailureIsLogged(t *testing.T) {
	t.Parallel()
	st := newFakeStore()
	st.touchErr = errors.New("timeout")
	sess := aliceSession()
	sess.LastSeenAt = t0.Add(-2 * time.Minute)
	id := st.add(sess)
	core, logs := observer.New(zapcore.DebugLevel)
	clk := newClock()
	s := NewSessions(st, SessionsConfig{}, SessionOptions{Now: clk.Now, Logger: zap.New(core)})
	if _, err := s.Authenticate(t.Context(), id); err != nil {
		t.Fatalf("a failed touch is fatal: %v", err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries", len(entries))
	}
	for _, f := range entries[0].Context {
		if strings.Contains(f.String, id) || (f.Interface != nil && strings.Contains(toString(f.Interface), id)) {
			t.Fatal("the session ID is in the log")
		}
	}
}

func toString(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	return ""
}
