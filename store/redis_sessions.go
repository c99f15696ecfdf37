package store

import (
	"cmp"
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateSession creates an opaque session, or a refresh family when n.Mode
// is ModeTokens, evicting the subject's oldest live sessions beyond
// n.MaxPerSubject in the same script.
func (r *Redis) CreateSession(ctx context.Context, n NewSession) (Created, error) {
	if err := checkNew(n); err != nil {
		return Created{}, err
	}
	g := group(n.Subject)
	secret, h := newSecret(g)
	now := fromMS(ms(r.now())) // Redis keeps milliseconds; answer what it keeps
	s := newSessionValue(n, now)
	s.AuthTime = fromMS(ms(s.AuthTime))
	var idHash []byte
	var current string
	if n.Mode == ModeTokens {
		s.Handle = newFamilyHandle(g)
		current = tokenName(h)
	} else {
		s.Handle = sessionHandle(h)
		idHash = h[:]
	}
	idle := idleUntil(s.ExpiresAt, now, n.Idle)
	fields, err := encodeRecord(s, idle, idHash, current)
	if err != nil {
		return Created{}, err
	}
	keys := []string{r.sessionKey(g, s.Handle), r.subjectKey(g, subjectHash(n.Subject))}
	if current != "" {
		keys = append(keys, r.pointerKey(g, current), r.pointersKey(g, s.Handle))
	}
	markField, markValue := fIDHash, any(idHash)
	if current != "" {
		markField, markValue = fCurrent, current
	}
	args := append([]any{
		r.tag(g), s.Handle, msArg(ms(now)), n.MaxPerSubject,
		msArg(ttlMS(idle, now)), msArg(ttlMS(s.ExpiresAt, now)), current, markField, markValue,
	}, fields...)

	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := createScript.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		return Created{}, r.fail("create session", err)
	}
	c := Created{Session: s, Secret: secret}
	for _, v := range res {
		rec, err := r.decodeFlat(v)
		if err != nil {
			return Created{}, err
		}
		c.Evicted = append(c.Evicted, rec.s)
	}
	return c, nil
}

// SessionByID returns the opaque session whose ID is id, with exactly one
// Redis command (HMGET of sessionFields); under load the reads of
// concurrent requests share pipelines (readBatcher). An unknown, expired or
// deleted session, and any refresh family or refresh token, is ErrNotFound.
func (r *Redis) SessionByID(ctx context.Context, id string) (Session, error) {
	h := secretHash(id)
	v, err := r.reads.read(ctx, r.sessionKey(h[0], sessionHandle(h)))
	if err != nil {
		return Session{}, r.fail("get session", err)
	}
	if len(v) != len(sessionFields) {
		r.countError()
		return Session{}, fmt.Errorf("store: get session: %d values for %d fields", len(v), len(sessionFields))
	}
	f := rawFromValues(v)
	// A missing key reads as every field missing: no ID hash.
	if f.mode != "" || subtle.ConstantTimeCompare([]byte(f.idHash), h[:]) != 1 {
		return Session{}, ErrNotFound
	}
	return r.liveSession(f)
}

// liveSession decodes a record; an expired one is ErrNotFound.
func (r *Redis) liveSession(f rawRecord) (Session, error) {
	rec, err := r.decodeRecord(f)
	if err != nil {
		return Session{}, err
	}
	if !rec.live(r.now()) {
		return Session{}, ErrNotFound
	}
	return rec.s, nil
}

// SessionByHandle returns the live session or family named handle.
func (r *Redis) SessionByHandle(ctx context.Context, handle string) (Session, error) {
	g, ok := handleGroup(handle)
	if !ok {
		return Session{}, ErrNotFound
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	f, err := r.client.HGetAll(ctx, r.sessionKey(g, handle)).Result()
	if err != nil {
		return Session{}, r.fail("get session", err)
	}
	if len(f) == 0 {
		return Session{}, ErrNotFound
	}
	return r.liveSession(rawFromMap(f))
}

// TouchSession records a use of the opaque session at now: LastSeenAt
// becomes now and the record expires at min(ExpiresAt, now+idle) unless
// used again (idle 0: at ExpiresAt). Touching a family is ErrNotFound.
func (r *Redis) TouchSession(ctx context.Context, handle string, now time.Time, idle time.Duration) error {
	g, ok := handleGroup(handle)
	if !ok {
		return ErrNotFound
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := touchScript.Run(ctx, r.client, []string{r.sessionKey(g, handle)},
		msArg(ms(now)), msArg(max(idle.Milliseconds(), 0))).Int()
	if err != nil {
		return r.fail("touch session", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// UpdateSession changes the identity of a live session or family, sets
// UpdatedAt to now and returns the result.
func (r *Redis) UpdateSession(ctx context.Context, handle string, u Update, now time.Time) (Session, error) {
	g, ok := handleGroup(handle)
	if !ok {
		return Session{}, ErrNotFound
	}
	fields, err := encodeUpdate(u)
	if err != nil {
		return Session{}, err
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := updateScript.Run(ctx, r.client, []string{r.sessionKey(g, handle)},
		append([]any{msArg(ms(now))}, fields...)...).Result()
	if isNil(err) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, r.fail("update session", err)
	}
	rec, err := r.decodeFlat(res)
	if err != nil {
		return Session{}, err
	}
	return rec.s, nil
}

// DeleteSession deletes a session or family (with every refresh token of
// it) and returns what it deleted.
func (r *Redis) DeleteSession(ctx context.Context, handle string) (Session, error) {
	g, ok := handleGroup(handle)
	if !ok {
		return Session{}, ErrNotFound
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := deleteScript.Run(ctx, r.client, []string{r.sessionKey(g, handle)}, r.tag(g), handle).Result()
	if isNil(err) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, r.fail("delete session", err)
	}
	rec, err := r.decodeFlat(res)
	if err != nil {
		return Session{}, err
	}
	if !rec.live(r.now()) {
		return Session{}, ErrNotFound
	}
	return rec.s, nil
}

// ListSessions returns the subject's live sessions and families, oldest
// first.
func (r *Redis) ListSessions(ctx context.Context, subject string) ([]Session, error) {
	return r.subjectScript(ctx, "list sessions", listScript.Run, subject)
}

// DeleteSubjectSessions deletes every session and family of the subject
// and returns the live ones it deleted, oldest first.
func (r *Redis) DeleteSubjectSessions(ctx context.Context, subject string) ([]Session, error) {
	return r.subjectScript(ctx, "delete subject sessions", deleteSubjectScript.Run, subject)
}

// subjectScript runs a script over the subject's index and returns the live
// sessions it answers, oldest first.
func (r *Redis) subjectScript(ctx context.Context, op string, run scriptRunner, subject string) ([]Session, error) {
	g := group(subject)
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := run(ctx, r.client, []string{r.subjectKey(g, subjectHash(subject))}, r.tag(g)).Slice()
	if err != nil {
		return nil, r.fail(op, err)
	}
	now := r.now()
	out := make([]Session, 0, len(res))
	for _, v := range res {
		rec, err := r.decodeFlat(v)
		if err != nil {
			return nil, err
		}
		if rec.live(now) {
			out = append(out, rec.s)
		}
	}
	slices.SortStableFunc(out, func(a, b Session) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.Handle, b.Handle))
	})
	return out, nil
}

// Rotate exchanges a family's refresh token for a new one in one script
// (one round trip), by the rules of Memory.Rotate. Racing callers presenting
// the same token get one rotation: the first script rotates, the others
// find the token replaced and, within the grace, join the new generation.
func (r *Redis) Rotate(ctx context.Context, refreshToken string, now time.Time, o RotateOptions) (Rotated, error) {
	h := secretHash(refreshToken)
	name := tokenName(h)
	next, nextHash := newSecret(h[0])
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	res, err := rotateScript.Run(ctx, r.client, []string{r.pointerKey(h[0], name)},
		r.tag(h[0]), tokenName(nextHash), msArg(ms(now)),
		msArg(max(o.Grace.Milliseconds(), 0)), msArg(max(o.Idle.Milliseconds(), 0)), name, MaxGenerationTokens).Slice()
	if err != nil {
		return Rotated{}, r.fail("rotate", err)
	}
	status, _ := res[0].(string)
	if status == "absent" || len(res) != 2 {
		return Rotated{}, ErrNotFound
	}
	rec, err := r.decodeFlat(res[1])
	if err != nil {
		return Rotated{}, err
	}
	switch status {
	case "rotated":
		return Rotated{Session: rec.s, Token: next}, nil
	case "replayed":
		return Rotated{Session: rec.s, Token: next, Replayed: true}, nil
	case "full":
		return Rotated{Session: rec.s}, ErrReplayLimit
	case "reused":
		return Rotated{Session: rec.s}, ErrReused
	}
	return Rotated{}, fmt.Errorf("store: rotate: unexpected script status %q", status)
}
