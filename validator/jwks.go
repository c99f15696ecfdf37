package validator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/keys"
)

const (
	// unknownKIDInterval is the minimum time between two refetches of a
	// remote JWK Set triggered by unknown kids.
	unknownKIDInterval = 10 * time.Second
	// jwksFetchTimeout bounds one fetch of a remote JWK Set.
	jwksFetchTimeout = 10 * time.Second
	// jwksMaxBody bounds the size of a JWK Set document.
	jwksMaxBody = 1 << 20
	// jwksRetryBase and jwksRetryMax pace the retries of a JWK Set that has
	// never loaded (the periodic refresh alone could leave a node unready
	// for a whole jwks_refresh).
	jwksRetryBase = time.Second
	jwksRetryMax  = 30 * time.Second
	// probeKID is the kid looked up to make jwkset refetch: a JWK Set never
	// holds it.
	probeKID = "\x00portcullis-refetch"
)

var errNoUsableKeys = errors.New("validator: JWK Set has no usable signature keys (keeping the last good set)")

// remoteKey identifies a remote JWK Set that a reload may reuse.
type remoteKey struct {
	issuer  string
	url     string
	refresh time.Duration
}

// remoteSet is one remote JWK Set, fetched and refreshed by
// github.com/MicahParks/jwkset, shared by reference count between the JWT
// validators of successive configurations.
type remoteSet struct {
	key       remoteKey
	log       *zap.Logger
	metrics   *metrics.Metrics
	now       func() time.Time
	retryBase time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	// client is a jwkset HTTP client whose KeyRead of an unknown kid
	// refetches the set immediately (its own limiter is unlimited: the
	// rate limit is ours, non-blocking).
	client  jwkset.Storage
	limiter *rate.Limiter

	idx   atomic.Pointer[keyIndex]
	epoch atomic.Uint64 // incremented when a key disappears from the set

	mu        sync.Mutex
	refs      int
	closed    bool
	inflight  chan struct{}
	lastOK    time.Time
	lastErrAt time.Time
	lastErr   string
	wg        sync.WaitGroup
}

var (
	_ jwkset.Storage    = setStorage{}
	_ http.RoundTripper = limitedTransport{}
)

// setStorage is the jwkset storage of a remoteSet. jwkset calls
// KeyReplaceAll only after fetching and parsing a JWK Set successfully, so it
// is where a new set is installed. A set without a usable key is refused,
// which keeps the last good one.
type setStorage struct {
	*jwkset.MemoryJWKSet
	rs *remoteSet
}

func (s setStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	ks := make([]keys.Key, 0, len(given))
	for _, j := range given {
		m := j.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig || m.KTY == jwkset.KtyOct {
			continue
		}
		k, err := keys.NewKey(j.Key(), m.KID, m.ALG.String())
		if err != nil {
			continue
		}
		if err := checkKey(k); err != nil {
			s.rs.log.Warn("ignoring a JWK", zap.String("issuer", s.rs.key.issuer), zap.Error(err))
			continue
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return errNoUsableKeys
	}
	if err := s.MemoryJWKSet.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	s.rs.install(ks)
	return nil
}

type remoteOptions struct {
	log       *zap.Logger
	metrics   *metrics.Metrics
	now       func() time.Time
	client    *http.Client
	retryBase time.Duration
}

// newRemoteSet fetches the set once (a failure is recorded, not returned:
// Ready reports it) and starts jwkset's periodic refresh.
func newRemoteSet(ctx context.Context, key remoteKey, o remoteOptions) (*remoteSet, error) {
	rs := &remoteSet{
		key:       key,
		log:       o.log,
		metrics:   o.metrics,
		now:       o.now,
		retryBase: o.retryBase,
		limiter:   rate.NewLimiter(rate.Every(unknownKIDInterval), 1),
		refs:      1,
	}
	rs.ctx, rs.cancel = context.WithCancel(context.WithoutCancel(ctx))
	st, err := jwkset.NewStorageFromHTTP(key.url, jwkset.HTTPClientStorageOptions{
		Client:                    o.client,
		Ctx:                       rs.ctx,
		HTTPTimeout:               jwksFetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       rs.onError,
		RefreshInterval:           key.refresh,
		Storage:                   setStorage{MemoryJWKSet: jwkset.NewMemoryStorage(), rs: rs},
	})
	if err != nil {
		rs.cancel()
		return nil, fmt.Errorf("validator: jwks_url %q: %w", key.url, err)
	}
	rs.client, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{key.url: st},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		rs.cancel()
		return nil, fmt.Errorf("validator: jwks_url %q: %w", key.url, err)
	}
	if rs.idx.Load() == nil {
		rs.wg.Add(1)
		go rs.retryUntilLoaded()
	}
	return rs, nil
}

// install makes ks the current set.
func (rs *remoteSet) install(ks []keys.Key) {
	cur := newKeyIndex(ks)
	old := rs.idx.Swap(cur)
	if !sameKeys(old, cur) {
		rs.epoch.Add(1)
	}
	rs.mu.Lock()
	rs.lastOK = rs.now()
	rs.mu.Unlock()
	if rs.metrics != nil {
		rs.metrics.JWKSRefresh.WithLabelValues(rs.key.issuer, "ok").Inc()
	}
	if old == nil || len(old.keys) != len(cur.keys) || !sameKeys(old, cur) {
		kids := make([]string, len(ks))
		for i, k := range ks {
			kids[i] = k.ID
		}
		rs.log.Info("JWK Set loaded", zap.String("issuer", rs.key.issuer), zap.Strings("kids", kids))
	}
}

// onError is jwkset's RefreshErrorHandler: the last good set stays.
func (rs *remoteSet) onError(_ context.Context, err error) {
	if rs.ctx.Err() != nil {
		return // closed: an aborted fetch is not a failure
	}
	rs.mu.Lock()
	rs.lastErrAt = rs.now()
	rs.lastErr = err.Error()
	rs.mu.Unlock()
	if rs.metrics != nil {
		rs.metrics.JWKSRefresh.WithLabelValues(rs.key.issuer, "error").Inc()
	}
	rs.log.Warn("JWK Set refresh failed; keeping the last good set",
		zap.String("issuer", rs.key.issuer), zap.Error(err))
}

// index is the current set, nil until the first successful load.
func (rs *remoteSet) index() *keyIndex { return rs.idx.Load() }

// startFetch starts a refetch, or joins the one in flight. limited applies
// the unknown-kid rate limit; it returns nil when the limit refuses (or the
// set is closed).
func (rs *remoteSet) startFetch(limited bool) <-chan struct{} {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.inflight != nil {
		return rs.inflight
	}
	if rs.closed || limited && !rs.limiter.AllowN(rs.now(), 1) {
		return nil
	}
	done := make(chan struct{})
	rs.inflight = done
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		ctx, cancel := context.WithTimeout(rs.ctx, jwksFetchTimeout)
		// The probe kid is never in the set, so jwkset refetches; success
		// and failure are recorded by setStorage and onError.
		_, _ = rs.client.KeyRead(ctx, probeKID)
		cancel()
		rs.mu.Lock()
		rs.inflight = nil
		rs.mu.Unlock()
		close(done)
	}()
	return done
}

// refetch is called for a token whose key is not in the set: it refetches
// at most once per unknownKIDInterval (requests arriving meanwhile wait for
// the fetch in flight) and returns when the fetch is over, at once when the
// rate limit refuses, or when ctx ends.
func (rs *remoteSet) refetch(ctx context.Context) {
	done := rs.startFetch(true)
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// retryUntilLoaded refetches with exponential backoff until the set has
// loaded once; jwkset's periodic refresh takes over from there.
func (rs *remoteSet) retryUntilLoaded() {
	defer rs.wg.Done()
	delay := rs.retryBase
	limit := min(jwksRetryMax, rs.key.refresh)
	for rs.idx.Load() == nil {
		t := time.NewTimer(delay)
		select {
		case <-rs.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if done := rs.startFetch(false); done != nil {
			select {
			case <-done:
			case <-rs.ctx.Done():
				return
			}
		}
		delay = min(2*delay, limit)
	}
}

// acquire takes one more reference (a new configuration reusing the set);
// false when the set is already stopped.
func (rs *remoteSet) acquire() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return false
	}
	rs.refs++
	return true
}

// release drops a reference; the last one stops the refresh goroutines.
func (rs *remoteSet) release() {
	rs.mu.Lock()
	rs.refs--
	stop := rs.refs == 0
	if stop {
		rs.closed = true
	}
	rs.mu.Unlock()
	if stop {
		rs.cancel()
		rs.wg.Wait()
	}
}

// status reports the set's state for IssuerStatus.
// loaded reports whether the set has ever loaded.
func (rs *remoteSet) loaded() bool {
	_, ok, _, _, _ := rs.status()
	return ok
}

func (rs *remoteSet) status() (n int, loaded bool, lastOK, lastErrAt time.Time, lastErr string) {
	if idx := rs.idx.Load(); idx != nil {
		n, loaded = len(idx.keys), true
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return n, loaded, rs.lastOK, rs.lastErrAt, rs.lastErr
}

// limitedTransport caps the size of JWK Set responses.
type limitedTransport struct {
	base http.RoundTripper
}

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{Reader: io.LimitReader(resp.Body, jwksMaxBody), Closer: resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// jwksClient is c (or a default client) with responses capped in size.
func jwksClient(c *http.Client) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = limitedTransport{base: base}
	return &out
}
