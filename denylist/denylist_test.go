package denylist

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/store"
)

const iss = "https://idp.example.com/"

type env struct {
	d   *Denylist
	st  *fakeStore
	clk *fakeClock
	m   *metrics.Metrics
}

// newEnv returns a loaded (Ready) Denylist over a fresh fake store.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	e := &env{st: st, clk: clk}
	e.d, e.m = newNode(t, cfg, st, clk)
	e.resync(t)
	return e
}

func newNode(t testing.TB, cfg Config, st Store, clk *fakeClock) (*Denylist, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	d, err := New(cfg, st, Options{Now: clk.Now, Metrics: m})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d, m
}

func (e *env) resync(t testing.TB) {
	t.Helper()
	if err := e.d.resyncOnce(context.Background()); err != nil {
		t.Fatalf("resyncOnce: %v", err)
	}
}

func (e *env) rev(jti string, ttl time.Duration) store.Revocation {
	return store.Revocation{Kind: store.KindToken, Issuer: iss, ID: jti, ExpiresAt: e.clk.Now().Add(ttl)}
}

func (d *Denylist) filterHas(key string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.filter.Test([]byte(key))
}

func hits(m *metrics.Metrics, confirmed string) float64 {
	return value(m.BloomHits.WithLabelValues(confirmed))
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func checkKey(d *Denylist, key string) error {
	return d.Check(context.Background(), &Query{Key: key, Subject: "alice", IssuedAt: time.Unix(1, 0)})
}

func TestCheckMissCostsNoStoreCall(t *testing.T) {
	e := newEnv(t, Config{})
	for i := range 100 {
		e.st.put(e.rev(fmt.Sprint("revoked-", i), time.Hour))
	}
	e.resync(t)
	for i := range 1000 {
		key := store.TokenKey(iss, fmt.Sprint("live-", i))
		if e.d.filterHas(key) {
			continue // a false positive; covered elsewhere
		}
		if err := checkKey(e.d, key); err != nil {
			t.Fatalf("Check(%s) = %v, want nil", key, err)
		}
	}
	if calls, _, _ := e.st.counts(); calls != 0 {
		t.Fatalf("store calls for Bloom misses = %d, want 0", calls)
	}
	if got := value(e.m.FilterEntries); got != 100 {
		t.Errorf("FilterEntries = %v, want 100", got)
	}
	if got := value(e.m.LastResync); got != float64(e.clk.Now().Unix()) {
		t.Errorf("LastResync = %v, want %d", got, e.clk.Now().Unix())
	}
}

func TestCheckHitConfirmedInStore(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.rev("j1", time.Hour)
	e.st.put(r) // in the store, not yet on this node
	if err := checkKey(e.d, r.Key()); err != nil {
		t.Fatalf("before resync: Check = %v, want nil (the node has not seen it)", err)
	}
	e.resync(t)

	for i := range 3 {
		if err := checkKey(e.d, r.Key()); !errors.Is(err, ErrRevoked) {
			t.Fatalf("check %d: Check = %v, want ErrRevoked", i, err)
		}
	}
	if calls, _, _ := e.st.counts(); calls != 1 {
		t.Errorf("store calls = %d, want 1 (the confirmation is cached)", calls)
	}
	if got := hits(e.m, "true"); got != 3 {
		t.Errorf("bloom hits confirmed=true = %v, want 3", got)
	}

	// A rebuild forgets confirmations of unknown expiry: one more store call.
	e.resync(t)
	if err := checkKey(e.d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after resync: Check = %v, want ErrRevoked", err)
	}
	if calls, _, _ := e.st.counts(); calls != 2 {
		t.Errorf("store calls = %d, want 2", calls)
	}
}

func TestRevokeRejectsWithoutStoreCall(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.rev("j1", time.Hour)
	if err := e.d.Revoke(context.Background(), r); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := checkKey(e.d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	// Session revocations use the same path, keyed by the sid.
	sr := store.Revocation{Kind: store.KindSession, ID: "h1", ExpiresAt: e.clk.Now().Add(time.Hour)}
	if err := e.d.Revoke(context.Background(), sr); err != nil {
		t.Fatalf("Revoke session: %v", err)
	}
	q := &Query{Key: store.TokenKey(iss, "other"), SessionKey: store.SessionKey("h1"), SID: "h1", IssuedAt: e.clk.Now()}
	if err := e.d.Check(context.Background(), q); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check(minted token of a revoked session) = %v, want ErrRevoked", err)
	}
	if calls, _, _ := e.st.counts(); calls != 0 {
		t.Errorf("store calls = %d, want 0 (own and published revocations count as confirmed)", calls)
	}
	// Once the revocation has expired, the cached confirmation no longer
	// rejects by itself; the store decides.
	e.clk.Advance(2 * time.Hour)
	if err := checkKey(e.d, r.Key()); err != nil {
		t.Fatalf("after expiry: Check = %v, want nil", err)
	}
}

func TestRevokeArguments(t *testing.T) {
	tests := []struct {
		name      string
		r         func(e *env) store.Revocation
		wantErr   error
		wantInSto bool
	}{
		{"token", func(e *env) store.Revocation { return e.rev("j", time.Minute) }, nil, true},
		{"session", func(e *env) store.Revocation {
			return store.Revocation{Kind: store.KindSession, ID: "h", ExpiresAt: e.clk.Now().Add(time.Minute)}
		}, nil, true},
		{"already expired", func(e *env) store.Revocation { return e.rev("j", -time.Second) }, nil, false},
		{"expires now", func(e *env) store.Revocation { return e.rev("j", 0) }, nil, false},
		{"no kind", func(e *env) store.Revocation {
			r := e.rev("j", time.Minute)
			r.Kind = ""
			return r
		}, ErrInvalid, false},
		{"no id", func(e *env) store.Revocation { return e.rev("", time.Minute) }, ErrInvalid, false},
		{"no expiry", func(e *env) store.Revocation {
			return store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "j"}
		}, ErrInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			r := tt.r(e)
			err := e.d.Revoke(context.Background(), r)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Revoke = %v, want %v", err, tt.wantErr)
			}
			ok, _ := e.st.HasRevocation(context.Background(), r.Key())
			if ok != tt.wantInSto {
				t.Errorf("in store = %v, want %v", ok, tt.wantInSto)
			}
		})
	}
}

func TestRevokeStoreDown(t *testing.T) {
	e := newEnv(t, Config{})
	e.st.set(func(f *fakeStore) { f.addErr = errors.New("connection refused") })
	r := e.rev("j1", time.Hour)
	err := e.d.Revoke(context.Background(), r)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Revoke = %v, want ErrUnavailable", err)
	}
	if err := checkKey(e.d, r.Key()); err != nil {
		t.Errorf("Check after a failed Revoke = %v, want nil (nothing was revoked)", err)
	}
	if err := e.d.RevokeSubject(context.Background(), "alice", time.Time{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("RevokeSubject = %v, want ErrUnavailable", err)
	}
}

// tinyFilter is a config whose filter has a handful of bits: after a few
// additions nearly every key is a (false) hit.
var tinyFilter = Config{BloomCapacity: 1, BloomFPRate: 0.5}

// falsePositive returns a key the filter reports that was never revoked.
func falsePositive(t *testing.T, d *Denylist) string {
	t.Helper()
	for i := range 10000 {
		key := store.TokenKey(iss, fmt.Sprint("innocent-", i))
		if d.filterHas(key) {
			return key
		}
	}
	t.Fatal("no false positive found in a tiny filter")
	return ""
}

func TestFalsePositiveRefuted(t *testing.T) {
	e := newEnv(t, tinyFilter)
	for i := range 8 {
		e.st.put(e.rev(fmt.Sprint("revoked-", i), time.Hour))
	}
	e.resync(t)
	key := falsePositive(t, e.d)

	if err := checkKey(e.d, key); err != nil {
		t.Fatalf("Check(false positive) = %v, want nil", err)
	}
	if got := hits(e.m, "false"); got != 1 {
		t.Errorf("bloom hits confirmed=false = %v, want 1", got)
	}
	// The refutation is cached: no second store call.
	if err := checkKey(e.d, key); err != nil {
		t.Fatalf("second Check = %v, want nil", err)
	}
	if calls, _, _ := e.st.counts(); calls != 1 {
		t.Errorf("store calls = %d, want 1", calls)
	}
	// Any new revocation could be this one: the cache is dropped.
	if err := e.d.Revoke(context.Background(), e.rev("another", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(e.d, key); err != nil {
		t.Fatalf("third Check = %v, want nil", err)
	}
	if calls, _, _ := e.st.counts(); calls != 2 {
		t.Errorf("store calls = %d, want 2", calls)
	}
	// A refuted key revoked later (message missed, caught up by a rebuild)
	// is rejected after the rebuild.
	innocent := key[len(store.TokenKey(iss, "")):]
	e.st.put(e.rev(innocent, time.Hour))
	e.resync(t)
	if err := checkKey(e.d, key); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after the rebuild: Check = %v, want ErrRevoked", err)
	}
}

func TestStoreUnavailableOnHit(t *testing.T) {
	tests := []struct {
		failMode     string
		wantErr      error
		wantFailOpen float64
	}{
		{FailClosed, ErrUnavailable, 0},
		{FailOpen, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.failMode, func(t *testing.T) {
			e := newEnv(t, Config{FailMode: tt.failMode})
			r := e.rev("j1", time.Hour)
			e.st.put(r)
			e.resync(t)
			e.st.set(func(f *fakeStore) { f.hasErr = errors.New("i/o timeout") })

			err := checkKey(e.d, r.Key())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
			if got := value(e.m.FailOpen); got != tt.wantFailOpen {
				t.Errorf("FailOpen = %v, want %v", got, tt.wantFailOpen)
			}
			if got := hits(e.m, "unknown"); got != 1 {
				t.Errorf("bloom hits confirmed=unknown = %v, want 1", got)
			}
			// A miss still needs no store.
			if err := checkKey(e.d, store.TokenKey(iss, "fresh")); err != nil && !e.d.filterHas(store.TokenKey(iss, "fresh")) {
				t.Errorf("Check(miss) with the store down = %v, want nil", err)
			}
			// Back up: confirmed again.
			e.st.set(func(f *fakeStore) { f.hasErr = nil })
			if err := checkKey(e.d, r.Key()); !errors.Is(err, ErrRevoked) {
				t.Errorf("Check with the store back = %v, want ErrRevoked", err)
			}
		})
	}
}

func TestCheckCanceledContext(t *testing.T) {
	e := newEnv(t, Config{FailMode: FailOpen})
	r := e.rev("j1", time.Hour)
	e.st.put(r)
	e.resync(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.st.set(func(f *fakeStore) { f.hasErr = context.Canceled })
	err := e.d.Check(ctx, &Query{Key: r.Key()})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Check(canceled) = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	if got := value(e.m.FailOpen); got != 0 {
		t.Errorf("FailOpen = %v, want 0: a canceled request is not let through", got)
	}
}

func TestRevocationDuringRebuildIsKept(t *testing.T) {
	e := newEnv(t, Config{})
	for i := range 10 {
		e.st.put(e.rev(fmt.Sprint("old-", i), time.Hour))
	}
	// Subscribe this node to the fake's publications, as Run would.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed := make(chan struct{})
	go func() {
		_ = e.st.Subscribe(ctx, e.d.onEvent, func() { close(subscribed) })
	}()
	<-subscribed

	during := e.rev("during", time.Hour)
	cut := store.Cutoff{Kind: store.CutoffSubject, Name: "bob", Before: e.clk.Now(), ExpiresAt: e.clk.Now().Add(time.Hour)}
	e.st.set(func(f *fakeStore) {
		f.scanHook = func(i int) {
			if i != 4 {
				return
			}
			// Another node revokes mid-scan: the scan snapshot misses it,
			// the event reaches this node while the rebuild runs.
			if err := e.st.AddRevocation(context.Background(), during); err != nil {
				t.Error(err)
			}
			if err := e.st.AddCutoff(context.Background(), cut); err != nil {
				t.Error(err)
			}
		}
	})
	e.resync(t)
	e.st.set(func(f *fakeStore) { f.scanHook = nil })

	if !e.d.filterHas(during.Key()) {
		t.Fatal("a revocation that arrived during the rebuild is missing from the new filter")
	}
	if err := checkKey(e.d, during.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	if _, ok := e.d.Cutoff(store.CutoffSubject, "bob"); !ok {
		t.Fatal("a cutoff that arrived during the rebuild is missing")
	}
	if got := value(e.m.FilterEntries); got != 11 {
		t.Errorf("FilterEntries = %v, want 11", got)
	}
}

func TestRebuildDropsExpired(t *testing.T) {
	e := newEnv(t, Config{})
	short := e.rev("short", time.Minute)
	long := e.rev("long", time.Hour)
	e.st.put(short)
	e.st.put(long)
	// A subject cutoff that ends before the next rebuild.
	if err := e.d.RevokeSubject(context.Background(), "alice", e.clk.Now().Add(-e.d.cfg.CutoffTTL+time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.resync(t)
	if !e.d.filterHas(short.Key()) || !e.d.filterHas(long.Key()) {
		t.Fatal("filter misses live revocations")
	}
	if got := value(e.m.FilterEntries); got != 2 {
		t.Errorf("FilterEntries = %v, want 2", got)
	}

	e.clk.Advance(2 * time.Minute)
	e.resync(t)
	if e.d.filterHas(short.Key()) {
		t.Error("an expired revocation survived the rebuild")
	}
	if !e.d.filterHas(long.Key()) {
		t.Error("a live revocation was dropped by the rebuild")
	}
	if got := value(e.m.FilterEntries); got != 1 {
		t.Errorf("FilterEntries = %v, want 1", got)
	}
	if _, ok := e.d.Cutoff(store.CutoffSubject, "alice"); ok {
		t.Error("an expired cutoff survived the rebuild")
	}
}

func TestCutoffs(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	at := e.clk.Now().Add(-10 * time.Second)
	if err := e.d.RevokeSubject(ctx, "alice", at); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RevokeSessionBefore(ctx, "h1", at); err != nil {
		t.Fatal(err)
	}
	if got, ok := e.d.Cutoff(store.CutoffSubject, "alice"); !ok || !got.Equal(at) {
		t.Fatalf("Cutoff(subject, alice) = %v, %v; want %v, true", got, ok, at)
	}
	if got, ok := e.d.Cutoff(store.CutoffSession, "h1"); !ok || !got.Equal(at) {
		t.Fatalf("Cutoff(session, h1) = %v, %v; want %v, true", got, ok, at)
	}
	if _, ok := e.d.Cutoff("nonsense", "alice"); ok {
		t.Fatal("Cutoff of an unknown kind reported one")
	}

	tests := []struct {
		name    string
		q       Query
		wantErr error
	}{
		{"subject, iat before", Query{Subject: "alice", IssuedAt: at.Add(-time.Second)}, ErrRevoked},
		{"subject, iat equal", Query{Subject: "alice", IssuedAt: at}, nil},
		{"subject, iat after", Query{Subject: "alice", IssuedAt: at.Add(time.Second)}, nil},
		{"subject, iat missing", Query{Subject: "alice"}, ErrRevoked},
		{"other subject, iat before", Query{Subject: "bob", IssuedAt: at.Add(-time.Hour)}, nil},
		{"other subject, iat missing", Query{Subject: "bob"}, nil},
		{"sid, iat before", Query{Subject: "carol", SID: "h1", IssuedAt: at.Add(-time.Second)}, ErrRevoked},
		{"sid, iat equal", Query{Subject: "carol", SID: "h1", IssuedAt: at}, nil},
		{"sid, iat after", Query{Subject: "carol", SID: "h1", IssuedAt: at.Add(time.Second)}, nil},
		{"sid, iat missing", Query{Subject: "carol", SID: "h1"}, ErrRevoked},
		{"other sid", Query{Subject: "carol", SID: "h2", IssuedAt: at.Add(-time.Hour)}, nil},
		{"subject ok, sid before", Query{Subject: "alice", SID: "h1", IssuedAt: at.Add(-time.Millisecond)}, ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.d.Check(ctx, &tt.q)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if calls, _, _ := e.st.counts(); calls != 0 {
		t.Errorf("store calls = %d, want 0: cutoffs are decided locally", calls)
	}

	// A later cutoff replaces an earlier one; an earlier one arriving late
	// (out of order) does not move it back.
	later := at.Add(5 * time.Second)
	if err := e.d.RevokeSubject(ctx, "alice", later); err != nil {
		t.Fatal(err)
	}
	if err := e.d.RevokeSubject(ctx, "alice", at); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.d.Cutoff(store.CutoffSubject, "alice"); !got.Equal(later) {
		t.Errorf("Cutoff after out-of-order updates = %v, want %v", got, later)
	}
	// They survive a rebuild from the store.
	e.resync(t)
	if got, _ := e.d.Cutoff(store.CutoffSubject, "alice"); !got.Equal(later) {
		t.Errorf("Cutoff after a rebuild = %v, want %v", got, later)
	}
	if err := e.d.Check(ctx, &Query{Subject: "alice", IssuedAt: at.Add(time.Second)}); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check under the later cutoff = %v, want ErrRevoked", err)
	}
}

func TestRevokeSubjectDefaultsAndRounding(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if err := e.d.RevokeSubject(ctx, "", time.Time{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RevokeSubject(\"\") = %v, want ErrInvalid", err)
	}
	e.clk.Advance(1500 * time.Microsecond) // now is 1.5 ms past a whole second
	if err := e.d.RevokeSubject(ctx, "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, ok := e.d.Cutoff(store.CutoffSubject, "alice")
	want := e.clk.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	if !ok || !got.Equal(want) {
		t.Fatalf("Cutoff = %v, %v; want now rounded up to the millisecond %v", got, ok, want)
	}
	// A token issued in the same second, before the call, is rejected.
	iat := e.clk.Now().Truncate(time.Second)
	if err := e.d.Check(ctx, &Query{Subject: "alice", IssuedAt: iat}); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check(iat in the revocation's second) = %v, want ErrRevoked", err)
	}
	// The cutoff expires with CutoffTTL in the store.
	var c store.Cutoff
	_ = e.st.ScanCutoffs(ctx, e.clk.Now(), func(x store.Cutoff) error { c = x; return nil })
	if !c.ExpiresAt.Equal(want.Add(DefaultCutoffTTL)) {
		t.Errorf("stored ExpiresAt = %v, want %v", c.ExpiresAt, want.Add(DefaultCutoffTTL))
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	r := e.rev("j1", time.Hour)
	if err := e.d.Revoke(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := e.d.Lookup(ctx, "j1")
	if err != nil || got.Key() != r.Key() || !got.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("Lookup(j1) = %+v, %v; want %+v", got, err, r)
	}
	for _, id := range []string{"nope", ""} {
		if _, err := e.d.Lookup(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want store.ErrNotFound", id, err)
		}
	}
	e.st.set(func(f *fakeStore) { f.hasErr = errors.New("down") })
	if _, err := e.d.Lookup(ctx, "j1"); !errors.Is(err, ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup with the store down = %v, want ErrUnavailable", err)
	}
}

func TestSyncLag(t *testing.T) {
	e := newEnv(t, Config{})
	r := e.rev("j1", time.Hour)
	e.d.onEvent(store.Event{Revocation: &r, PublishedAt: e.clk.Now().Add(-250 * time.Millisecond)})
	if got := value(e.m.SyncLag); got != 0.25 {
		t.Errorf("SyncLag = %v, want 0.25", got)
	}
	if err := checkKey(e.d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Errorf("Check after the event = %v, want ErrRevoked", err)
	}
	// Expired and malformed events change nothing.
	old := e.rev("old", -time.Second)
	bad := store.Revocation{Kind: "weird", ID: "x", ExpiresAt: e.clk.Now().Add(time.Hour)}
	e.d.onEvent(store.Event{Revocation: &old})
	e.d.onEvent(store.Event{Revocation: &bad})
	e.d.onEvent(store.Event{Cutoff: &store.Cutoff{Kind: "weird", Name: "x", Before: e.clk.Now(), ExpiresAt: e.clk.Now().Add(time.Hour)}})
	e.d.onEvent(store.Event{})
	if e.d.filterHas(old.Key()) {
		t.Error("an expired revocation event was added")
	}
	if got := value(e.m.FilterEntries); got != 1 {
		t.Errorf("FilterEntries = %v, want 1", got)
	}
}

func TestNotReadyUntilFirstLoad(t *testing.T) {
	for _, failMode := range []string{FailClosed, FailOpen} {
		t.Run(failMode, func(t *testing.T) {
			clk := newFakeClock()
			st := newFakeStore(clk.Now)
			st.scanErr = errors.New("connection refused")
			d, _ := newNode(t, Config{FailMode: failMode}, st, clk)
			if d.Ready() {
				t.Fatal("Ready before any load")
			}
			err := checkKey(d, store.TokenKey(iss, "x"))
			if failMode == FailClosed && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Check before the first load = %v, want ErrUnavailable", err)
			}
			if failMode == FailOpen && err != nil {
				t.Fatalf("Check before the first load = %v, want nil (fail open)", err)
			}
			if err := d.resyncOnce(context.Background()); err == nil {
				t.Fatal("resyncOnce succeeded with the store down")
			}
			if d.Ready() {
				t.Fatal("Ready after a failed load")
			}
			st.set(func(f *fakeStore) { f.scanErr = nil })
			if err := d.resyncOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !d.Ready() {
				t.Fatal("not Ready after a successful load")
			}
			if err := checkKey(d, store.TokenKey(iss, "x")); err != nil {
				t.Fatalf("Check after the load = %v", err)
			}
			// A failed later resync keeps the node ready with its filter.
			st.set(func(f *fakeStore) { f.scanErr = errors.New("down again") })
			if err := d.resyncOnce(context.Background()); err == nil || !d.Ready() {
				t.Fatalf("failed resync: err = %v, Ready = %v; want an error and still ready", err, d.Ready())
			}
		})
	}
}

func TestFilterGrowsBeyondCapacity(t *testing.T) {
	e := newEnv(t, Config{BloomCapacity: 100})
	for i := range 1000 {
		e.st.put(e.rev(fmt.Sprint("j", i), time.Hour))
	}
	e.resync(t) // sized for 100, holds 1000
	e.resync(t) // sized for the 1000 seen
	e.d.mu.RLock()
	cap := e.d.filter.Cap()
	e.d.mu.RUnlock()
	if want := newFilter(1250, DefaultBloomFPRate).Cap(); cap != want {
		t.Errorf("filter bits = %d, want %d (sized for 1.25 x the live entries)", cap, want)
	}
}

// TestConcurrentAddAndCheck runs Checks, published additions, Revokes and
// rebuilds at once; it is meant for -race.
func TestConcurrentAddAndCheck(t *testing.T) {
	e := newEnv(t, Config{BloomCapacity: 10000})
	ctx := context.Background()
	const writers, readers, perWriter = 4, 8, 200
	// Readers share one Memo per token, as requests share a cached token's.
	var memos [writers][perWriter]Memo
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				r := e.rev(fmt.Sprintf("w%d-%d", w, i), time.Hour)
				if i%2 == 0 {
					e.st.put(r)
					e.d.onEvent(store.Event{Revocation: &r, PublishedAt: e.clk.Now()})
				} else if err := e.d.Revoke(ctx, r); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					if err := e.d.RevokeSubject(ctx, fmt.Sprint("user-", w), time.Time{}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for g := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				q := &Query{Key: store.TokenKey(iss, fmt.Sprintf("w%d-%d", i%writers, i%perWriter)), Subject: fmt.Sprint("reader-", g), IssuedAt: e.clk.Now(),
					Memo: &memos[i%writers][i%perWriter]}
				if err := e.d.Check(ctx, q); err != nil && !errors.Is(err, ErrRevoked) {
					t.Error(err)
					return
				}
				_, _ = e.d.Cutoff(store.CutoffSubject, "user-0")
			}
		}()
	}
	rg.Add(1)
	go func() {
		defer rg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.d.resyncOnce(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()

	for w := range writers {
		for i := range perWriter {
			q := &Query{Key: store.TokenKey(iss, fmt.Sprintf("w%d-%d", w, i)), Subject: "alice", IssuedAt: time.Unix(1, 0), Memo: &memos[w][i]}
			if err := e.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
				t.Fatalf("w%d-%d: Check = %v, want ErrRevoked", w, i, err)
			}
		}
	}
	e.resync(t)
	if got := value(e.m.FilterEntries); got != writers*perWriter {
		t.Errorf("FilterEntries = %v, want %d", got, writers*perWriter)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	clk := newFakeClock()
	_, err := New(Config{FailMode: "sideways", BloomFPRate: 2}, newFakeStore(clk.Now), Options{})
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"fail_mode: must be one of closed, open", "bloom_fp_rate: must be between 0 and 1 (exclusive), got 2"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := New(Config{}, nil, Options{}); err == nil {
		t.Error("New accepted a nil store")
	}
}

// TestMemo checks that a filled Memo spares the filter while nothing
// changed, and that every way a revocation reaches the node voids it.
func TestMemo(t *testing.T) {
	ctx := context.Background()
	live := func(t *testing.T, e *env, prefix string) string {
		t.Helper()
		for i := 0; ; i++ {
			if key := store.TokenKey(iss, fmt.Sprint(prefix, i)); !e.d.filterHas(key) {
				return key
			}
		}
	}
	fill := func(t *testing.T, d *Denylist, q *Query) {
		t.Helper()
		if err := d.Check(ctx, q); err != nil {
			t.Fatalf("Check of a live token = %v", err)
		}
		if q.Memo.gen.Load() == 0 {
			t.Fatal("a miss left the memo empty")
		}
	}

	t.Run("a filled memo skips the filter", func(t *testing.T) {
		e := newEnv(t, Config{})
		key := live(t, e, "a")
		q := &Query{Key: key, Subject: "alice", IssuedAt: e.clk.Now(), Memo: &Memo{}}
		fill(t, e.d, q)
		// Set the key's bits behind the denylist's back (no new
		// generation): a Check that probed the filter would ask the store.
		e.d.mu.Lock()
		e.d.filter.Add([]byte(key))
		e.d.mu.Unlock()
		if err := e.d.Check(ctx, q); err != nil {
			t.Fatalf("Check with the memo = %v", err)
		}
		if calls, _, _ := e.st.counts(); calls != 0 {
			t.Fatalf("store calls with a filled memo = %d, want 0", calls)
		}
		if err := e.d.Check(ctx, &Query{Key: key, Subject: "alice", IssuedAt: e.clk.Now()}); err != nil {
			t.Fatalf("Check without the memo = %v", err)
		}
		if calls, _, _ := e.st.counts(); calls != 1 {
			t.Fatalf("store calls without the memo = %d, want 1 (the filter was probed)", calls)
		}
	})

	revocations := []struct {
		name   string
		revoke func(t *testing.T, e *env, r store.Revocation)
	}{
		{"Revoke on this node", func(t *testing.T, e *env, r store.Revocation) {
			if err := e.d.Revoke(ctx, r); err != nil {
				t.Fatal(err)
			}
		}},
		{"an event from another node", func(t *testing.T, e *env, r store.Revocation) {
			e.st.put(r)
			e.d.onEvent(store.Event{Revocation: &r, PublishedAt: e.clk.Now()})
		}},
		{"a rebuild that finds it in the store", func(t *testing.T, e *env, r store.Revocation) {
			e.st.put(r)
			e.resync(t)
		}},
	}
	for _, tc := range revocations {
		t.Run("revoked by "+tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			r := e.rev("j1", time.Hour)
			q := &Query{Key: r.Key(), Subject: "alice", IssuedAt: e.clk.Now(), Memo: &Memo{}}
			fill(t, e.d, q)
			fill(t, e.d, q) // a second miss, from the memo
			tc.revoke(t, e, r)
			if err := e.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
				t.Fatalf("Check with the memo after the revocation = %v, want ErrRevoked", err)
			}
		})
	}

	t.Run("a session revocation voids the memo of its minted token", func(t *testing.T) {
		e := newEnv(t, Config{})
		q := &Query{Key: live(t, e, "m"), SessionKey: store.SessionKey("h1"), SID: "h1", Subject: "alice", IssuedAt: e.clk.Now(), Memo: &Memo{}}
		fill(t, e.d, q)
		if err := e.d.Revoke(ctx, store.Revocation{Kind: store.KindSession, ID: "h1", ExpiresAt: e.clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
			t.Fatalf("Check = %v, want ErrRevoked", err)
		}
	})

	t.Run("cutoffs apply with a filled memo", func(t *testing.T) {
		e := newEnv(t, Config{})
		q := &Query{Key: live(t, e, "c"), Subject: "alice", IssuedAt: e.clk.Now(), Memo: &Memo{}}
		fill(t, e.d, q)
		e.clk.Advance(time.Second)
		if err := e.d.RevokeSubject(ctx, "alice", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
			t.Fatalf("Check after log out everywhere = %v, want ErrRevoked", err)
		}
	})

	t.Run("a memo filled by one denylist is void in another", func(t *testing.T) {
		e1 := newEnv(t, Config{})
		r := e1.rev("j1", time.Hour)
		q := &Query{Key: r.Key(), Subject: "alice", IssuedAt: e1.clk.Now(), Memo: &Memo{}}
		fill(t, e1.d, q)
		// The other is built and loaded the same way, so the two have taken
		// as many steps, but its store already holds the revocation.
		clk := newFakeClock()
		st := newFakeStore(clk.Now)
		st.put(r)
		e2 := &env{st: st, clk: clk}
		e2.d, e2.m = newNode(t, Config{}, st, clk)
		e2.resync(t)
		if err := e2.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
			t.Fatalf("Check on the other denylist = %v, want ErrRevoked", err)
		}
	})
}
