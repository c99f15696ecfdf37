// Package denylist revokes stateless JWTs (and the access tokens minted from
// a session) on every node within milliseconds, while a token that is not
// revoked costs no store round trip.
//
// Each node holds a Bloom filter of the keys of every live revocation
// (store.Revocation.Key) and the "revoked before" cutoffs of subjects and
// sessions. Check tests the filter: a miss is a definite "not revoked"; a hit
// is confirmed in the store (a false positive is refuted there). Revocations
// and cutoffs are written to the store, which publishes them to every node;
// Run subscribes to them and, on start, after every (re)subscription and
// every resync_interval, rebuilds the filter from the store so that a node
// that missed messages catches up and expired entries leave the filter.
package denylist

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/store"
)

// Sentinel errors.
var (
	// ErrRevoked reports a revoked token, session or a token issued before a
	// cutoff of its subject or session. The gateway answers 401.
	ErrRevoked = errors.New("denylist: revoked")
	// ErrUnavailable reports that the store could not answer (or that the
	// revocations are not loaded yet) and fail_mode is closed, or that a
	// write to the store failed. The gateway answers 503.
	ErrUnavailable = errors.New("denylist: store unavailable")
	// ErrInvalid reports an unusable argument: an unknown kind, an empty ID,
	// a missing expiry, a malformed token. The admin API answers 400.
	ErrInvalid = errors.New("denylist: invalid argument")
	// ErrNoExpiry reports a token without an exp claim given to
	// RevocationFromToken: the caller must supply the expiry itself.
	ErrNoExpiry = errors.New("denylist: token has no exp claim, expires_at is required")
)

// Reasons attached to ErrRevoked (errors.Is(err, ErrRevoked) holds for all).
// They are allocated once so that a rejection costs no allocation.
var (
	errRevokedConfirmed = fmt.Errorf("%w: in the revocation list", ErrRevoked)
	errSubjectCutoff    = fmt.Errorf("%w: issued before the subject's revocation cutoff", ErrRevoked)
	errSessionCutoff    = fmt.Errorf("%w: issued before the session's revocation cutoff", ErrRevoked)
	errNotLoaded        = fmt.Errorf("%w: revocations not loaded yet", ErrUnavailable)
)

// Writer persists revocations and cutoffs and publishes them to every node.
type Writer interface {
	// AddRevocation keeps r until r.ExpiresAt and publishes it.
	AddRevocation(ctx context.Context, r store.Revocation) error
	// AddCutoff keeps c until c.ExpiresAt and publishes it.
	AddCutoff(ctx context.Context, c store.Cutoff) error
}

// Reader answers point queries about revocations.
type Reader interface {
	// HasRevocation reports whether a live revocation has this key.
	HasRevocation(ctx context.Context, key string) (bool, error)
	// FindRevocation returns the live revocation with this ID, or
	// store.ErrNotFound.
	FindRevocation(ctx context.Context, id string) (store.Revocation, error)
}

// Scanner lists every live revocation and cutoff, for a full rebuild.
type Scanner interface {
	ScanRevocations(ctx context.Context, now time.Time, fn func(store.Revocation) error) error
	ScanCutoffs(ctx context.Context, now time.Time, fn func(store.Cutoff) error) error
}

// Subscriber delivers the events published by every node, this one included.
type Subscriber interface {
	// Subscribe blocks until ctx is done, reconnecting as needed; it calls
	// onSubscribed after each successful (re)subscription.
	Subscribe(ctx context.Context, onEvent func(store.Event), onSubscribed func()) error
}

// Store is everything the denylist needs from the shared store
// (store.Memory and store.Redis implement it).
type Store interface {
	Writer
	Reader
	Scanner
	Subscriber
}

// Options are the optional dependencies of New.
type Options struct {
	// Logger (named by the caller, e.g. "denylist") defaults to
	// zap.NewNop(). Tokens are never logged; jti values and session handles
	// only at debug level.
	Logger *zap.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// Metrics defaults to a fresh metrics.New() (not served anywhere).
	Metrics *metrics.Metrics
}

// Query is what Check needs to know about one credential.
type Query struct {
	// Key is the validator's Identity.RevocationKey
	// (store.TokenKey(iss, tokenID)); "" for a session identity.
	Key string
	// SessionKey is Identity.SessionRevocationKey (store.SessionKey(sid))
	// for a token minted by the gateway; else "".
	SessionKey string
	// Subject is checked against the subject cutoffs (log out everywhere).
	Subject string
	// SID is the session handle checked against the session cutoffs, for a
	// token minted by the gateway; else "".
	SID string
	// IssuedAt is the token's iat; zero means unknown, and such a token is
	// rejected whenever its subject or session has a cutoff.
	IssuedAt time.Time
	// Memo, when not nil, is the credential's own Memo: the same for every
	// Check of the same Key and SessionKey, such as one kept with a cached
	// verified token.
	Memo *Memo
}

// Memo lets Check skip the Bloom filter for a credential checked over and
// over, such as a cached JWT. It remembers that the filter did not hold the
// credential's keys, and the generation of the filter it asked. Every change
// to the filter (a revocation added by this node or another, a rebuild)
// starts a new generation, so a remembered miss is used only while it is
// still the filter's answer: revocation is checked on every request at the
// cost of one comparison, without touching the filter's memory, which for
// the default capacity is 1.8 MB read at ten random places. Cutoffs are
// checked on every request regardless. The zero Memo remembers nothing;
// a Memo is safe for concurrent use.
type Memo struct {
	gen atomic.Uint64 // the filter generation of the remembered miss; 0: none
}

// filterGenerations numbers filter generations across every Denylist of the
// process, so that a Memo filled by one is never valid for another.
var filterGenerations atomic.Uint64

// Bounds of the local caches of store answers.
const (
	// maxConfirmed bounds the cache of confirmed revocations.
	maxConfirmed = 1 << 14
	// maxRefuted bounds the cache of refuted Bloom hits (false positives).
	maxRefuted = 1 << 14
)

// cutoff is a revoked-before rule in memory.
type cutoff struct {
	before, expires time.Time
}

// Denylist is one node's view of the revocations. Its methods are safe for
// concurrent use. Create it with New and keep it in sync with Run.
type Denylist struct {
	cfg      Config
	st       Store
	log      *zap.Logger
	now      func() time.Time
	m        *metrics.Metrics
	failOpen bool

	hitTrue, hitFalse, hitUnknown prometheus.Counter

	// resyncEvery, retryMin and retryMax pace Run; tests shorten them.
	resyncEvery, retryMin, retryMax time.Duration

	ready   atomic.Bool
	trigger chan struct{} // resync requests from onSubscribed; capacity 1

	// mu guards the filter and the cutoffs: Check holds it for reading,
	// additions and the swap of a rebuilt filter for writing (a Bloom filter
	// Add during a Test is a data race).
	mu       sync.RWMutex
	filter   *bloom.BloomFilter
	fgen     uint64 // the filter's generation (see Memo); changes with it
	entries  uint   // distinct keys added since (and by) the last rebuild
	subjects map[string]cutoff
	sessions map[string]cutoff
	// While a rebuild runs, every addition is also recorded here and
	// replayed into the new filter before the swap.
	rebuilding     bool
	pendingKeys    []string
	pendingCutoffs []store.Cutoff

	// rebuildMu makes rebuilds run one at a time.
	rebuildMu sync.Mutex
	lastCount uint // live entries seen by the last rebuild (rebuildMu)

	// cacheMu guards the caches of store answers for Bloom hits.
	cacheMu sync.Mutex
	// confirmed maps a key to its revocation's expiry; a zero expiry (a
	// store confirmation, whose expiry is unknown) lasts until the next
	// rebuild. Revocations never end before their expiry, so an entry can
	// only become stale by expiring.
	confirmed map[string]time.Time
	// refuted holds Bloom hits the store said are not revoked. Any addition
	// (event, Revoke, rebuild) may revoke one, so every addition clears it
	// and bumps gen; a store answer is cached only if gen did not move while
	// it was asked.
	refuted map[string]struct{}
	gen     uint64
}

// New checks cfg (after SetDefaults on a copy) and returns a Denylist that
// is not Ready until Run has loaded the revocations from st once.
func New(cfg Config, st Store, opts Options) (*Denylist, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("denylist: invalid config: %w", err)
	}
	if st == nil {
		return nil, errors.New("denylist: nil store")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	d := &Denylist{
		cfg:         cfg,
		st:          st,
		log:         opts.Logger,
		now:         opts.Now,
		m:           opts.Metrics,
		failOpen:    cfg.FailMode == FailOpen,
		hitTrue:     opts.Metrics.BloomHits.WithLabelValues("true"),
		hitFalse:    opts.Metrics.BloomHits.WithLabelValues("false"),
		hitUnknown:  opts.Metrics.BloomHits.WithLabelValues("unknown"),
		resyncEvery: cfg.ResyncInterval,
		retryMin:    100 * time.Millisecond,
		retryMax:    min(cfg.ResyncInterval, 5*time.Second),
		trigger:     make(chan struct{}, 1),
		filter:      newFilter(cfg.BloomCapacity, cfg.BloomFPRate),
		fgen:        filterGenerations.Add(1),
		subjects:    map[string]cutoff{},
		sessions:    map[string]cutoff{},
		confirmed:   map[string]time.Time{},
		refuted:     map[string]struct{}{},
	}
	d.m.FilterEntries.Set(0)
	return d, nil
}

// Ready reports whether the revocations have been loaded from the store at
// least once. Until then Check answers ErrUnavailable (fail_mode closed).
func (d *Denylist) Ready() bool { return d.ready.Load() }

// Check returns nil if the credential described by q may be used, ErrRevoked
// if it is revoked or issued before a cutoff, and ErrUnavailable if a Bloom
// hit could not be confirmed because the store failed and fail_mode is
// closed (with fail_mode open such a hit is let through and counted). Until
// the first load Check answers ErrUnavailable in fail_mode closed.
//
// A credential that is neither in the filter nor under a cutoff costs no
// store call and no allocation.
func (d *Denylist) Check(ctx context.Context, q *Query) error {
	if q == nil {
		return nil
	}
	if !d.failOpen && !d.ready.Load() {
		return errNotLoaded
	}
	d.mu.RLock()
	var hitKey, hitSession bool
	if q.Memo == nil || q.Memo.gen.Load() != d.fgen {
		hitKey = q.Key != "" && d.filter.Test(bytesOf(q.Key))
		hitSession = q.SessionKey != "" && d.filter.Test(bytesOf(q.SessionKey))
		if q.Memo != nil && !hitKey && !hitSession {
			q.Memo.gen.Store(d.fgen) // d.fgen cannot move while d.mu is held
		}
	}
	cut := d.cutLocked(q)
	d.mu.RUnlock()
	if cut != nil {
		return cut
	}
	if !hitKey && !hitSession {
		return nil
	}
	var unavailable error
	for _, k := range [2]struct {
		hit bool
		key string
	}{{hitKey, q.Key}, {hitSession, q.SessionKey}} {
		if !k.hit {
			continue
		}
		err := d.confirm(ctx, k.key)
		if errors.Is(err, ErrRevoked) {
			return err
		}
		if err != nil && unavailable == nil {
			unavailable = err
		}
	}
	return unavailable
}

// cutLocked returns the rejection of q by a subject or session cutoff, or
// nil. d.mu is held.
func (d *Denylist) cutLocked(q *Query) error {
	if len(d.subjects) > 0 && q.Subject != "" {
		if c, ok := d.subjects[q.Subject]; ok && issuedBefore(q.IssuedAt, c.before) {
			return errSubjectCutoff
		}
	}
	if len(d.sessions) > 0 && q.SID != "" {
		if c, ok := d.sessions[q.SID]; ok && issuedBefore(q.IssuedAt, c.before) {
			return errSessionCutoff
		}
	}
	return nil
}

// issuedBefore reports whether a token issued at iat falls under a cutoff at
// before. A token without iat cannot prove that it is newer.
func issuedBefore(iat, before time.Time) bool {
	return iat.IsZero() || iat.Before(before)
}

// confirm asks the caches, then the store, whether a Bloom hit on key is a
// revocation: ErrRevoked, nil (a false positive, or fail_mode open with the
// store down) or ErrUnavailable.
func (d *Denylist) confirm(ctx context.Context, key string) error {
	now := d.now()
	d.cacheMu.Lock()
	exp, confirmed := d.confirmed[key]
	_, refuted := d.refuted[key]
	gen := d.gen
	d.cacheMu.Unlock()
	switch {
	case confirmed && (exp.IsZero() || now.Before(exp)):
		d.hitTrue.Inc()
		return errRevokedConfirmed
	case refuted:
		d.hitFalse.Inc()
		return nil
	}

	revoked, err := d.st.HasRevocation(ctx, key)
	if err != nil {
		d.hitUnknown.Inc()
		if ctx.Err() != nil {
			return fmt.Errorf("%w: confirming a revocation: %w", ErrUnavailable, ctx.Err())
		}
		if d.failOpen {
			d.m.FailOpen.Inc()
			d.log.Warn("revocation not confirmed, store unreachable: letting the request through (fail_mode open)", zap.Error(err))
			return nil
		}
		d.log.Debug("revocation not confirmed, store unreachable", zap.Error(err))
		return fmt.Errorf("%w: confirming a revocation: %w", ErrUnavailable, err)
	}

	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	if revoked {
		d.hitTrue.Inc()
		d.putConfirmedLocked(key, time.Time{})
		return errRevokedConfirmed
	}
	d.hitFalse.Inc()
	if d.gen == gen {
		if len(d.refuted) >= maxRefuted {
			clear(d.refuted)
		}
		d.refuted[key] = struct{}{}
	}
	return nil
}

// putConfirmedLocked caches key as revoked until exp (zero: unknown, until
// the next rebuild). d.cacheMu is held.
func (d *Denylist) putConfirmedLocked(key string, exp time.Time) {
	old, ok := d.confirmed[key]
	if ok && (exp.IsZero() || (!old.IsZero() && old.After(exp))) {
		return // keep the known (or later) expiry
	}
	if !ok && len(d.confirmed) >= maxConfirmed {
		for k := range d.confirmed { // evict an arbitrary entry
			delete(d.confirmed, k)
			break
		}
	}
	d.confirmed[key] = exp
}

// Revoke writes r to the store (which publishes it to every node) and adds
// it to this node's filter. A revocation that has already expired needs
// nothing and returns nil. A store failure returns ErrUnavailable.
func (d *Denylist) Revoke(ctx context.Context, r store.Revocation) error {
	if err := validRevocation(r); err != nil {
		return err
	}
	if !r.ExpiresAt.After(d.now()) {
		return nil
	}
	if err := d.st.AddRevocation(ctx, r); err != nil {
		return d.writeFailure("adding a revocation", err)
	}
	d.addRevocation(r)
	d.log.Debug("revoked", zap.String("kind", r.Kind), zap.String("issuer", r.Issuer), zap.String("id", r.ID))
	return nil
}

// RevokeSubject rejects, on every node, the subject's tokens issued before
// before (zero: now), for cfg.CutoffTTL ("log out everywhere"). Deleting the
// subject's sessions is the caller's job.
func (d *Denylist) RevokeSubject(ctx context.Context, subject string, before time.Time) error {
	return d.addCutoff(ctx, store.CutoffSubject, subject, before)
}

// RevokeSessionBefore rejects, on every node, the access tokens minted from
// session sid before before (zero: now), for cfg.CutoffTTL: after a change of
// a tokens-mode session the client must refresh to get the new identity.
func (d *Denylist) RevokeSessionBefore(ctx context.Context, sid string, before time.Time) error {
	return d.addCutoff(ctx, store.CutoffSession, sid, before)
}

func (d *Denylist) addCutoff(ctx context.Context, kind, name string, before time.Time) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, kind)
	}
	now := d.now()
	if before.IsZero() {
		before = now
	}
	// The Redis store keeps milliseconds: round up so that the stored cutoff
	// is never earlier than the one asked for.
	if r := before.Truncate(time.Millisecond); !r.Equal(before) {
		before = r.Add(time.Millisecond)
	}
	c := store.Cutoff{Kind: kind, Name: name, Before: before, ExpiresAt: before.Add(d.cfg.CutoffTTL)}
	if !c.ExpiresAt.After(now) {
		return nil // every token it could reject has expired
	}
	if err := d.st.AddCutoff(ctx, c); err != nil {
		return d.writeFailure("adding a "+kind+" cutoff", err)
	}
	d.applyCutoff(c)
	return nil
}

// Lookup returns the live revocation with this ID (a jti, the
// "sha256:..." key of a jti-less token, or a session handle), an error
// matching store.ErrNotFound if there is none, or ErrUnavailable.
func (d *Denylist) Lookup(ctx context.Context, id string) (store.Revocation, error) {
	if id == "" {
		return store.Revocation{}, fmt.Errorf("denylist: lookup: %w", store.ErrNotFound)
	}
	r, err := d.st.FindRevocation(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Revocation{}, fmt.Errorf("denylist: lookup: %w", err)
	case err != nil:
		return store.Revocation{}, d.writeFailure("looking up a revocation", err)
	}
	return r, nil
}

// Cutoff returns the current cutoff of kind (store.CutoffSubject or
// store.CutoffSession) for name, for the token minter: a token it mints for
// that name is accepted only if its iat is not before the cutoff (iat has
// whole seconds, so round the cutoff up to the next second).
func (d *Denylist) Cutoff(kind, name string) (time.Time, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m := d.cutoffsLocked(kind)
	if m == nil {
		return time.Time{}, false
	}
	c, ok := m[name]
	return c.before, ok
}

// writeFailure wraps a failed store call. (portcullis_store_errors_total is
// counted where the failure happens, by the store: counting it here too
// would count every failure twice.)
func (d *Denylist) writeFailure(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// validRevocation checks what Key and the store need.
func validRevocation(r store.Revocation) error {
	switch {
	case r.Kind != store.KindToken && r.Kind != store.KindSession:
		return fmt.Errorf("%w: revocation kind must be %s or %s, got %q", ErrInvalid, store.KindToken, store.KindSession, r.Kind)
	case r.ID == "":
		return fmt.Errorf("%w: empty revocation id", ErrInvalid)
	case r.ExpiresAt.IsZero():
		return fmt.Errorf("%w: revocation without expiry", ErrInvalid)
	}
	return nil
}

// addRevocation adds r to the confirmed cache, then to the filter: a Check
// that sees the new filter bits finds the confirmation without a store call.
func (d *Denylist) addRevocation(r store.Revocation) {
	key := r.Key()
	d.cacheMu.Lock()
	d.putConfirmedLocked(key, r.ExpiresAt)
	d.invalidateRefutedLocked()
	d.cacheMu.Unlock()

	d.mu.Lock()
	if !d.filter.TestAndAdd(bytesOf(key)) {
		d.entries++
		d.fgen = filterGenerations.Add(1) // bits changed: remembered misses are void
		d.m.FilterEntries.Set(float64(d.entries))
	}
	if d.rebuilding {
		d.pendingKeys = append(d.pendingKeys, key)
	}
	d.mu.Unlock()
}

// invalidateRefutedLocked forgets the refuted hits. d.cacheMu is held.
func (d *Denylist) invalidateRefutedLocked() {
	d.gen++
	clear(d.refuted)
}

// applyCutoff merges c into the cutoffs.
func (d *Denylist) applyCutoff(c store.Cutoff) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.cutoffsLocked(c.Kind)
	if m == nil {
		d.log.Warn("ignoring a cutoff of unknown kind", zap.String("kind", c.Kind))
		return
	}
	mergeCutoff(m, c)
	if d.rebuilding {
		d.pendingCutoffs = append(d.pendingCutoffs, c)
	}
}

// cutoffsLocked returns the map of kind, nil for an unknown kind.
func (d *Denylist) cutoffsLocked(kind string) map[string]cutoff {
	switch kind {
	case store.CutoffSubject:
		return d.subjects
	case store.CutoffSession:
		return d.sessions
	}
	return nil
}

// mergeCutoff keeps the latest cutoff (and the latest expiry) per name, so
// that events may arrive in any order and more than once.
func mergeCutoff(m map[string]cutoff, c store.Cutoff) {
	cur, ok := m[c.Name]
	if !ok {
		m[c.Name] = cutoff{before: c.Before, expires: c.ExpiresAt}
		return
	}
	if c.Before.After(cur.before) {
		cur.before = c.Before
	}
	if c.ExpiresAt.After(cur.expires) {
		cur.expires = c.ExpiresAt
	}
	m[c.Name] = cur
}

// newFilter sizes a filter for capacity entries at fpRate.
func newFilter(capacity uint, fpRate float64) *bloom.BloomFilter {
	return bloom.NewWithEstimates(capacity, fpRate)
}

// bytesOf views s as bytes without copying; the bytes must not be modified
// (the Bloom filter only hashes them).
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
