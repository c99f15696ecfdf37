package store

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checkNew reports what is wrong with a session to create.
func checkNew(n NewSession) error {
	var errs []error
	if n.Subject == "" {
		errs = append(errs, errors.New("subject is empty"))
	}
	if n.Mode != "" && n.Mode != ModeTokens {
		errs = append(errs, fmt.Errorf("mode must be empty or %q, got %q", ModeTokens, n.Mode))
	}
	if n.TTL <= 0 {
		errs = append(errs, fmt.Errorf("ttl must be > 0, got %s", n.TTL))
	}
	if n.Idle < 0 {
		errs = append(errs, fmt.Errorf("idle must be >= 0, got %s", n.Idle))
	}
	if n.MaxPerSubject < 0 {
		errs = append(errs, fmt.Errorf("max per subject must be >= 0, got %d", n.MaxPerSubject))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	return nil
}

// newSessionValue is the Session a creation at now produces, before its
// handle is known.
func newSessionValue(n NewSession, now time.Time) Session {
	s := Session{
		Subject:    n.Subject,
		Roles:      slices.Clone(n.Roles),
		Scopes:     slices.Clone(n.Scopes),
		ACR:        n.ACR,
		AMR:        slices.Clone(n.AMR),
		Attributes: maps.Clone(n.Attributes),
		AuthTime:   n.AuthTime,
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(n.TTL),
		Mode:       n.Mode,
	}
	if n.Mode == ModeTokens {
		s.Generation = 1
	}
	return s
}

// idleUntil is when a session last used at now ends for idleness: never
// after its absolute end, and at its absolute end when idle is 0.
func idleUntil(expires, now time.Time, idle time.Duration) time.Time {
	if idle <= 0 {
		return expires
	}
	if t := now.Add(idle); t.Before(expires) {
		return t
	}
	return expires
}

// apply changes s as u says and stamps UpdatedAt.
func (u Update) apply(s *Session, now time.Time) {
	if u.Roles != nil {
		s.Roles = slices.Clone(*u.Roles)
	}
	if u.Scopes != nil {
		s.Scopes = slices.Clone(*u.Scopes)
	}
	if u.ACR != nil {
		s.ACR = *u.ACR
	}
	if u.AMR != nil {
		s.AMR = slices.Clone(*u.AMR)
	}
	if u.AuthTime != nil {
		s.AuthTime = *u.AuthTime
	}
	s.UpdatedAt = now
}

// clone is a deep copy of s, so a caller cannot change a stored session.
func (s Session) clone() Session {
	s.Roles = slices.Clone(s.Roles)
	s.Scopes = slices.Clone(s.Scopes)
	s.AMR = slices.Clone(s.AMR)
	s.Attributes = maps.Clone(s.Attributes)
	return s
}

// checkRevocation reports what is wrong with a revocation to add.
func checkRevocation(r Revocation) error {
	switch {
	case r.Kind != KindToken && r.Kind != KindSession:
		return fmt.Errorf("store: add revocation: kind must be %q or %q, got %q", KindToken, KindSession, r.Kind)
	case r.ID == "":
		return errors.New("store: add revocation: id is empty")
	}
	return nil
}

// checkCutoff reports what is wrong with a cutoff to add.
func checkCutoff(c Cutoff) error {
	switch {
	case c.Kind != CutoffSubject && c.Kind != CutoffSession:
		return fmt.Errorf("store: add cutoff: kind must be %q or %q, got %q", CutoffSubject, CutoffSession, c.Kind)
	case c.Name == "":
		return errors.New("store: add cutoff: name is empty")
	}
	return nil
}

// parseKey is the inverse of Revocation.Key, without the expiry.
func parseKey(key string) (Revocation, bool) {
	if h, ok := strings.CutPrefix(key, "s:"); ok {
		return Revocation{Kind: KindSession, ID: h}, h != ""
	}
	rest, ok := strings.CutPrefix(key, "t")
	if !ok {
		return Revocation{}, false
	}
	n, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return Revocation{}, false
	}
	l, err := strconv.Atoi(n)
	if err != nil || l < 0 || l > len(rest) || strconv.Itoa(l) != n {
		return Revocation{}, false
	}
	return Revocation{Kind: KindToken, Issuer: rest[:l], ID: rest[l:]}, rest[l:] != ""
}

// ms is t in unix milliseconds, the store's time resolution; 0 for the zero
// time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}
