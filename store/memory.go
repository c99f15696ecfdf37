package store

import (
	"cmp"
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryOptions configure a Memory store.
type MemoryOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SweepInterval is how often expired entries are dropped in the
	// background (they are also dropped when met); 0 means one minute.
	SweepInterval time.Duration
}

// Memory is the store of a single node: everything lives in this process,
// guarded by one mutex, and events are delivered to this process's
// subscribers only. Expired entries are dropped when met and by a sweep
// goroutine that Close stops.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex
	seq      uint64 // creation order, to break CreatedAt ties
	sessions map[string]*memSession
	subjects map[string]map[string]struct{} // subject -> handles
	pointers map[[32]byte]*memPointer       // SHA-256 of a refresh token -> pointer
	revs     map[string]Revocation          // Revocation.Key() -> entry
	revIDs   map[string]map[string]struct{} // Revocation.ID -> keys
	cutoffs  map[[2]string]Cutoff           // kind, name -> cutoff
	subs     map[*memSubscriber]struct{}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// memSession is a stored session or family.
type memSession struct {
	s         Session
	seq       uint64
	idHash    [32]byte  // SHA-256 of the session ID (opaque sessions)
	idleUntil time.Time // min(ExpiresAt, last use + idle)
	// current are the SHA-256 of the family's current refresh tokens: the
	// one its last rotation issued and any issued to replays since.
	current [][32]byte
	// pointers are the family's refresh-token pointers, oldest first.
	pointers [][32]byte
}

// memPointer leads from a refresh token to its family.
type memPointer struct {
	handle   string
	replaced time.Time // zero while the token is current
	until    time.Time // when the pointer is dropped
}

// memSubscriber is one Subscribe call's queue.
type memSubscriber struct {
	mu     sync.Mutex
	queue  []Event
	signal chan struct{} // capacity 1: "the queue is not empty"
}

// NewMemory returns an empty Memory store and starts its sweep goroutine;
// Close stops it.
func NewMemory(opts MemoryOptions) *Memory {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	interval := opts.SweepInterval
	if interval <= 0 {
		interval = time.Minute
	}
	m := &Memory{
		now:      now,
		sessions: make(map[string]*memSession),
		subjects: make(map[string]map[string]struct{}),
		pointers: make(map[[32]byte]*memPointer),
		revs:     make(map[string]Revocation),
		revIDs:   make(map[string]map[string]struct{}),
		cutoffs:  make(map[[2]string]Cutoff),
		subs:     make(map[*memSubscriber]struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go m.sweepLoop(interval)
	return m
}

func (m *Memory) sweepLoop(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep(m.now())
		}
	}
}

// sweep drops everything expired at now.
func (m *Memory) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, ms := range m.sessions {
		if !ms.live(now) {
			m.deleteLocked(h)
		}
	}
	for h, p := range m.pointers {
		if !now.Before(p.until) {
			m.dropPointerLocked(h, p)
		}
	}
	for k, r := range m.revs {
		if !now.Before(r.ExpiresAt) {
			m.dropRevocationLocked(k, r)
		}
	}
	for k, c := range m.cutoffs {
		if !now.Before(c.ExpiresAt) {
			delete(m.cutoffs, k)
		}
	}
}

func (ms *memSession) live(now time.Time) bool {
	return now.Before(ms.s.ExpiresAt) && now.Before(ms.idleUntil)
}

// lookupLocked returns the live session of handle at now, dropping it if it
// has expired.
func (m *Memory) lookupLocked(handle string, now time.Time) (*memSession, bool) {
	ms, ok := m.sessions[handle]
	if !ok {
		return nil, false
	}
	if !ms.live(now) {
		m.deleteLocked(handle)
		return nil, false
	}
	return ms, true
}

// deleteLocked removes a session or family, its refresh pointers and its
// index entry, and returns it.
func (m *Memory) deleteLocked(handle string) (*memSession, bool) {
	ms, ok := m.sessions[handle]
	if !ok {
		return nil, false
	}
	delete(m.sessions, handle)
	for _, h := range ms.pointers {
		delete(m.pointers, h)
	}
	if hs := m.subjects[ms.s.Subject]; hs != nil {
		delete(hs, handle)
		if len(hs) == 0 {
			delete(m.subjects, ms.s.Subject)
		}
	}
	return ms, true
}

// dropPointerLocked removes a refresh pointer.
func (m *Memory) dropPointerLocked(h [32]byte, p *memPointer) {
	delete(m.pointers, h)
	if ms, ok := m.sessions[p.handle]; ok {
		ms.pointers = slices.DeleteFunc(ms.pointers, func(x [32]byte) bool { return x == h })
	}
}

// liveOfSubjectLocked is the subject's live sessions, oldest first.
func (m *Memory) liveOfSubjectLocked(subject string, now time.Time) []*memSession {
	var out []*memSession
	for h := range m.subjects[subject] {
		if ms, ok := m.lookupLocked(h, now); ok {
			out = append(out, ms)
		}
	}
	slices.SortFunc(out, func(a, b *memSession) int {
		return cmp.Or(a.s.CreatedAt.Compare(b.s.CreatedAt), cmp.Compare(a.seq, b.seq))
	})
	return out
}

// CreateSession creates an opaque session, or a refresh family when n.Mode
// is ModeTokens, evicting the subject's oldest sessions beyond
// n.MaxPerSubject in the same step.
func (m *Memory) CreateSession(ctx context.Context, n NewSession) (Created, error) {
	if err := ctx.Err(); err != nil {
		return Created{}, fmt.Errorf("store: create session: %w", err)
	}
	if err := checkNew(n); err != nil {
		return Created{}, err
	}
	g := group(n.Subject)
	// Drawing secrets is the slow part; do it before taking the lock.
	secret, h := newSecret(g)
	ms := &memSession{}
	if n.Mode == ModeTokens {
		ms.current = [][32]byte{h}
	} else {
		ms.idHash = h
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	ms.s = newSessionValue(n, now)
	if n.Mode == ModeTokens {
		ms.s.Handle = newFamilyHandle(g)
	} else {
		ms.s.Handle = sessionHandle(h)
	}
	if _, taken := m.sessions[ms.s.Handle]; taken {
		return Created{}, fmt.Errorf("store: create session: handle collision")
	}
	ms.idleUntil = idleUntil(ms.s.ExpiresAt, now, n.Idle)
	m.seq++
	ms.seq = m.seq

	var evicted []Session
	if n.MaxPerSubject > 0 {
		live := m.liveOfSubjectLocked(n.Subject, now)
		for i := 0; i < len(live)-n.MaxPerSubject+1; i++ {
			old, _ := m.deleteLocked(live[i].s.Handle)
			evicted = append(evicted, old.s.clone())
		}
	}
	m.sessions[ms.s.Handle] = ms
	if m.subjects[n.Subject] == nil {
		m.subjects[n.Subject] = make(map[string]struct{})
	}
	m.subjects[n.Subject][ms.s.Handle] = struct{}{}
	if n.Mode == ModeTokens {
		m.addPointerLocked(ms, h)
	}
	return Created{Session: ms.s.clone(), Secret: secret, Evicted: evicted}, nil
}

// SessionByID returns the opaque session whose ID is id. An unknown,
// expired or deleted session, and any refresh family or refresh token, is
// ErrNotFound.
func (m *Memory) SessionByID(ctx context.Context, id string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	h := secretHash(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.lookupLocked(sessionHandle(h), m.now())
	if !ok || ms.s.Mode == ModeTokens || subtle.ConstantTimeCompare(ms.idHash[:], h[:]) != 1 {
		return Session{}, ErrNotFound
	}
	return ms.s.clone(), nil
}

// SessionByHandle returns the live session or family named handle.
func (m *Memory) SessionByHandle(ctx context.Context, handle string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.lookupLocked(handle, m.now())
	if !ok {
		return Session{}, ErrNotFound
	}
	return ms.s.clone(), nil
}

// TouchSession records a use of the opaque session at now: LastSeenAt
// becomes now and it ends at min(ExpiresAt, now+idle) unless used again
// (idle 0: at ExpiresAt). A family is kept alive by Rotate, not by this:
// touching one is ErrNotFound.
func (m *Memory) TouchSession(ctx context.Context, handle string, now time.Time, idle time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: touch session: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.lookupLocked(handle, now)
	if !ok || ms.s.Mode == ModeTokens {
		return ErrNotFound
	}
	ms.s.LastSeenAt = now
	ms.idleUntil = idleUntil(ms.s.ExpiresAt, now, idle)
	return nil
}

// UpdateSession changes the identity of a live session or family, sets
// UpdatedAt to now and returns the result.
func (m *Memory) UpdateSession(ctx context.Context, handle string, u Update, now time.Time) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, fmt.Errorf("store: update session: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms, ok := m.lookupLocked(handle, now)
	if !ok {
		return Session{}, ErrNotFound
	}
	u.apply(&ms.s, now)
	return ms.s.clone(), nil
}

// DeleteSession deletes a session or family (with every refresh token of
// it) and returns what it deleted.
func (m *Memory) DeleteSession(ctx context.Context, handle string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, fmt.Errorf("store: delete session: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.lookupLocked(handle, m.now()); !ok {
		return Session{}, ErrNotFound
	}
	ms, _ := m.deleteLocked(handle)
	return ms.s.clone(), nil
}

// ListSessions returns the subject's live sessions and families, oldest
// first.
func (m *Memory) ListSessions(ctx context.Context, subject string) ([]Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list sessions: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	live := m.liveOfSubjectLocked(subject, m.now())
	out := make([]Session, len(live))
	for i, ms := range live {
		out[i] = ms.s.clone()
	}
	return out, nil
}

// DeleteSubjectSessions deletes every session and family of the subject
// and returns the live ones it deleted, oldest first.
func (m *Memory) DeleteSubjectSessions(ctx context.Context, subject string) ([]Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: delete subject sessions: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	live := m.liveOfSubjectLocked(subject, m.now())
	out := make([]Session, len(live))
	for i, ms := range live {
		m.deleteLocked(ms.s.Handle)
		out[i] = ms.s.clone()
	}
	for h := range m.subjects[subject] {
		m.deleteLocked(h)
	}
	return out, nil
}

// Rotate exchanges a family's refresh token for a new one, atomically. The
// family's current generation is the token its last rotation issued plus
// any issued to replays since; each is "current" until the next rotation.
//   - a current token: a new token becomes the only current one
//     (Generation+1, LastSeenAt now), every token of the generation it ends
//     is replaced now, and the family lives until min(ExpiresAt, now+o.Idle);
//   - a token replaced less than o.Grace ago (parallel tabs, a retry after a
//     lost answer): a new token joins the current generation (Replayed), so
//     the caller gets a fresh pair and the next rotation still ends every
//     branch; ErrReplayLimit once the generation holds MaxGenerationTokens;
//   - a token replaced o.Grace ago or earlier: a reuse; the whole family is
//     deleted and ErrReused returned with it in Rotated.Session;
//   - anything else (unknown token, family deleted or ended): ErrNotFound.
//
// The Redis store follows the same rules.
func (m *Memory) Rotate(ctx context.Context, refreshToken string, now time.Time, o RotateOptions) (Rotated, error) {
	if err := ctx.Err(); err != nil {
		return Rotated{}, fmt.Errorf("store: rotate: %w", err)
	}
	h := secretHash(refreshToken)
	next, nextHash := newSecret(h[0])

	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pointers[h]
	if !ok {
		return Rotated{}, ErrNotFound
	}
	if !now.Before(p.until) {
		m.dropPointerLocked(h, p)
		return Rotated{}, ErrNotFound
	}
	ms, ok := m.lookupLocked(p.handle, now)
	if !ok || ms.s.Mode != ModeTokens {
		return Rotated{}, ErrNotFound
	}
	if !p.replaced.IsZero() {
		if now.Sub(p.replaced) >= o.Grace {
			m.deleteLocked(p.handle)
			return Rotated{Session: ms.s.clone()}, ErrReused
		}
		if len(ms.current) >= MaxGenerationTokens {
			return Rotated{Session: ms.s.clone()}, ErrReplayLimit
		}
		ms.current = append(ms.current, nextHash)
		m.addPointerLocked(ms, nextHash)
		return Rotated{Session: ms.s.clone(), Token: next, Replayed: true}, nil
	}
	if !slices.Contains(ms.current, h) {
		return Rotated{}, ErrNotFound
	}

	ms.s.Generation++
	ms.s.LastSeenAt = now
	ms.idleUntil = idleUntil(ms.s.ExpiresAt, now, o.Idle)
	// The generation's pointers stay as long as the family could still be
	// used through them, so that their reuse is detected.
	for _, c := range ms.current {
		if cp := m.pointers[c]; cp != nil {
			cp.replaced = now
			cp.until = ms.idleUntil
		}
	}
	ms.current = append(ms.current[:0], nextHash)
	m.addPointerLocked(ms, nextHash)
	// Drop the oldest pointers once expired (the sweep gets any other).
	for len(ms.pointers) > 0 {
		pp := m.pointers[ms.pointers[0]]
		if pp != nil && now.Before(pp.until) {
			break
		}
		delete(m.pointers, ms.pointers[0])
		ms.pointers = ms.pointers[1:]
	}
	return Rotated{Session: ms.s.clone(), Token: next}, nil
}

// addPointerLocked leads refresh token h to family ms, for as long as the
// family may be used.
func (m *Memory) addPointerLocked(ms *memSession, h [32]byte) {
	m.pointers[h] = &memPointer{handle: ms.s.Handle, until: ms.idleUntil}
	ms.pointers = append(ms.pointers, h)
}

// AddRevocation stores r until r.ExpiresAt (a later expiry of the same key
// wins) and delivers Event{Revocation} to this process's subscribers. An
// already expired r changes nothing.
func (m *Memory) AddRevocation(ctx context.Context, r Revocation) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add revocation: %w", err)
	}
	if err := checkRevocation(r); err != nil {
		return err
	}
	if r.Kind == KindSession {
		r.Issuer = ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if !now.Before(r.ExpiresAt) {
		return nil
	}
	key := r.Key()
	if old, ok := m.revs[key]; ok && old.ExpiresAt.After(r.ExpiresAt) {
		r.ExpiresAt = old.ExpiresAt
	}
	m.revs[key] = r
	if m.revIDs[r.ID] == nil {
		m.revIDs[r.ID] = make(map[string]struct{})
	}
	m.revIDs[r.ID][key] = struct{}{}
	m.publishLocked(Event{Revocation: &r, PublishedAt: now})
	return nil
}

func (m *Memory) dropRevocationLocked(key string, r Revocation) {
	delete(m.revs, key)
	if ks := m.revIDs[r.ID]; ks != nil {
		delete(ks, key)
		if len(ks) == 0 {
			delete(m.revIDs, r.ID)
		}
	}
}

// HasRevocation reports whether the revocation with this Key is live.
func (m *Memory) HasRevocation(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("store: has revocation: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.revs[key]
	return ok && m.now().Before(r.ExpiresAt), nil
}

// FindRevocation returns the live revocation whose ID is id (the one that
// lasts longest if several issuers revoked the same ID).
func (m *Memory) FindRevocation(ctx context.Context, id string) (Revocation, error) {
	if err := ctx.Err(); err != nil {
		return Revocation{}, fmt.Errorf("store: find revocation: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var best Revocation
	found := false
	for key := range m.revIDs[id] {
		r := m.revs[key]
		if now.Before(r.ExpiresAt) && (!found || betterRevocation(r, best)) {
			best, found = r, true
		}
	}
	if !found {
		return Revocation{}, ErrNotFound
	}
	return best, nil
}

// betterRevocation orders the revocations of one ID: the latest expiry,
// then the smallest key.
func betterRevocation(a, b Revocation) bool {
	if c := a.ExpiresAt.Compare(b.ExpiresAt); c != 0 {
		return c > 0
	}
	return a.Key() < b.Key()
}

// ScanRevocations calls fn for every revocation live at now and drops the
// expired ones. It stops at fn's first error and returns it.
func (m *Memory) ScanRevocations(ctx context.Context, now time.Time, fn func(Revocation) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: scan revocations: %w", err)
	}
	m.mu.Lock()
	live := make([]Revocation, 0, len(m.revs))
	for k, r := range m.revs {
		if now.Before(r.ExpiresAt) {
			live = append(live, r)
		} else {
			m.dropRevocationLocked(k, r)
		}
	}
	m.mu.Unlock()
	for _, r := range live {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// AddCutoff stores c until its ExpiresAt, merged with the cutoff of the
// same kind and name (the later Before and the later ExpiresAt win), and
// delivers Event{Cutoff} to this process's subscribers.
func (m *Memory) AddCutoff(ctx context.Context, c Cutoff) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: add cutoff: %w", err)
	}
	if err := checkCutoff(c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if !now.Before(c.ExpiresAt) {
		return nil
	}
	k := [2]string{c.Kind, c.Name}
	if old, ok := m.cutoffs[k]; ok && now.Before(old.ExpiresAt) {
		c = mergeCutoffs(old, c)
	}
	m.cutoffs[k] = c
	m.publishLocked(Event{Cutoff: &c, PublishedAt: now})
	return nil
}

// mergeCutoffs combines two cutoffs of one kind and name.
func mergeCutoffs(a, b Cutoff) Cutoff {
	if b.Before.After(a.Before) {
		a.Before = b.Before
	}
	if b.ExpiresAt.After(a.ExpiresAt) {
		a.ExpiresAt = b.ExpiresAt
	}
	return a
}

// ScanCutoffs calls fn for every cutoff live at now and drops the expired
// ones. It stops at fn's first error and returns it.
func (m *Memory) ScanCutoffs(ctx context.Context, now time.Time, fn func(Cutoff) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: scan cutoffs: %w", err)
	}
	m.mu.Lock()
	live := make([]Cutoff, 0, len(m.cutoffs))
	for k, c := range m.cutoffs {
		if now.Before(c.ExpiresAt) {
			live = append(live, c)
		} else {
			delete(m.cutoffs, k)
		}
	}
	m.mu.Unlock()
	for _, c := range live {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// publishLocked queues e for every subscriber.
func (m *Memory) publishLocked(e Event) {
	for s := range m.subs {
		s.mu.Lock()
		s.queue = append(s.queue, e)
		s.mu.Unlock()
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}

// Subscribe calls onSubscribed once, then onEvent, in order, for every
// revocation and cutoff added to this store until ctx is done; it returns
// ctx.Err(). Both callbacks run on the caller's goroutine.
func (m *Memory) Subscribe(ctx context.Context, onEvent func(Event), onSubscribed func()) error {
	s := &memSubscriber{signal: make(chan struct{}, 1)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
	}()
	if onSubscribed != nil {
		onSubscribed()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.signal:
		}
		s.mu.Lock()
		queue := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range queue {
			onEvent(e)
		}
	}
}

// Ping reports nil: the memory store is always reachable.
func (m *Memory) Ping(ctx context.Context) error { return ctx.Err() }

// Close stops the sweep goroutine. The store stays usable.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
	})
	return nil
}
