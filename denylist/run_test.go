package denylist

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/store"
)

const waitLimit = 10 * time.Second

// startRun runs d.Run with fast retries until the test ends; it returns a
// function that stops it and reports Run's result.
func startRun(t *testing.T, d *Denylist) (stop func() error) {
	t.Helper()
	d.retryMin, d.retryMax = 5*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped bool
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(waitLimit):
				t.Fatal("Run did not return after its context was canceled")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRunLoadsSubscribesAndStops(t *testing.T) {
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	r := store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "j1", ExpiresAt: clk.Now().Add(time.Hour)}
	st.put(r)
	d, m := newNode(t, Config{}, st, clk)
	stop := startRun(t, d)

	waitFor(t, "Ready", waitLimit, d.Ready)
	waitFor(t, "Subscribed = 1", waitLimit, func() bool { return value(m.Subscribed) == 1 })
	if err := checkKey(d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	if got := value(m.Subscribed); got != 0 {
		t.Errorf("Subscribed after Run returned = %v, want 0", got)
	}
}

func TestRunRetriesTheFirstLoad(t *testing.T) {
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	st.scanErr = errors.New("connection refused")
	d, _ := newNode(t, Config{}, st, clk)
	startRun(t, d)

	waitFor(t, "two failed loads", waitLimit, func() bool { _, scans, _ := st.counts(); return scans >= 2 })
	if d.Ready() {
		t.Fatal("Ready although every load failed")
	}
	if err := checkKey(d, store.TokenKey(iss, "j")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Check before the first load = %v, want ErrUnavailable", err)
	}
	st.set(func(f *fakeStore) { f.scanErr = nil })
	waitFor(t, "Ready once the store answers", waitLimit, d.Ready)
}

func TestRunCatchesUpAfterMissedMessages(t *testing.T) {
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	a, _ := newNode(t, Config{}, st, clk)
	b, _ := newNode(t, Config{}, st, clk)
	startRun(t, a)
	startRun(t, b)
	waitFor(t, "both nodes subscribed and ready", waitLimit, func() bool {
		_, _, subs := st.counts()
		return subs == 2 && a.Ready() && b.Ready()
	})

	// Delivered: b rejects a revocation made on a.
	r1 := store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "delivered", ExpiresAt: clk.Now().Add(time.Hour)}
	if err := a.Revoke(context.Background(), r1); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(b, r1.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("b: Check = %v, want ErrRevoked", err)
	}

	// Missed: b is cut off from pub/sub while a revokes.
	st.set(func(f *fakeStore) { f.drop = true })
	r2 := store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "missed", ExpiresAt: clk.Now().Add(time.Hour)}
	if err := a.Revoke(context.Background(), r2); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeSubject(context.Background(), "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(a, r2.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a: Check = %v, want ErrRevoked", err)
	}
	if b.filterHas(r2.Key()) {
		t.Fatal("b saw a dropped message")
	}
	// b reconnects: the resubscription triggers a rebuild that catches up.
	st.set(func(f *fakeStore) { f.drop = false })
	st.resubscribe()
	waitFor(t, "b rejects the missed revocation", waitLimit, func() bool {
		return errors.Is(checkKey(b, r2.Key()), ErrRevoked)
	})
	if _, ok := b.Cutoff(store.CutoffSubject, "alice"); !ok {
		t.Error("b missed the subject cutoff after the resync")
	}
}

func TestRunPeriodicResync(t *testing.T) {
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	d, m := newNode(t, Config{}, st, clk)
	d.resyncEvery = 10 * time.Millisecond
	startRun(t, d)
	waitFor(t, "Ready", waitLimit, d.Ready)

	// An entry only the store knows (its message was lost) arrives with a
	// periodic resync, without any resubscription.
	r := store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "lost", ExpiresAt: clk.Now().Add(time.Hour)}
	st.put(r)
	waitFor(t, "the periodic resync to load the lost entry", waitLimit, func() bool {
		return errors.Is(checkKey(d, r.Key()), ErrRevoked)
	})
	_, before, _ := st.counts()
	waitFor(t, "three more resyncs", waitLimit, func() bool { _, n, _ := st.counts(); return n >= before+3 })
	if value(m.LastResync) == 0 {
		t.Error("LastResync not set")
	}
}

// panickyStore panics in its first Subscribe call.
type panickyStore struct {
	*fakeStore
	calls atomic.Int32
}

func (p *panickyStore) Subscribe(ctx context.Context, onEvent func(store.Event), onSubscribed func()) error {
	if p.calls.Add(1) == 1 {
		panic("boom in subscribe")
	}
	return p.fakeStore.Subscribe(ctx, onEvent, onSubscribed)
}

func TestRunRecoversPanics(t *testing.T) {
	clk := newFakeClock()
	fs := newFakeStore(clk.Now)
	fs.put(store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "j", ExpiresAt: clk.Now().Add(time.Hour)})
	var panicked atomic.Bool
	fs.scanHook = func(int) {
		if !panicked.Swap(true) {
			panic("boom in scan")
		}
	}
	st := &panickyStore{fakeStore: fs}
	d, m := newNode(t, Config{}, st, clk)
	startRun(t, d)
	waitFor(t, "Ready after a panicking scan", waitLimit, d.Ready)
	waitFor(t, "subscribed after a panicking Subscribe", waitLimit, func() bool {
		return st.calls.Load() >= 2 && value(m.Subscribed) == 1
	})
	if !panicked.Load() {
		t.Fatal("the scan hook never ran")
	}
}

func TestRunWithMemoryStore(t *testing.T) {
	// One node over the real memory store: what `portcullis serve` does with
	// store.type memory.
	clk := newFakeClock()
	st := store.NewMemory(store.MemoryOptions{Now: clk.Now})
	t.Cleanup(func() { _ = st.Close() })
	d, m := newNode(t, Config{}, st, clk)
	startRun(t, d)
	waitFor(t, "Ready", waitLimit, d.Ready)
	waitFor(t, "Subscribed", waitLimit, func() bool { return value(m.Subscribed) == 1 })
	ctx := context.Background()

	r := store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "mem-1", ExpiresAt: clk.Now().Add(time.Minute)}
	if err := d.Revoke(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := checkKey(d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	got, err := d.Lookup(ctx, "mem-1")
	if err != nil || got.Key() != r.Key() {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	if _, err := d.Lookup(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Lookup(unknown) = %v, want store.ErrNotFound", err)
	}
	if err := d.RevokeSubject(ctx, "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx, &Query{Subject: "alice", IssuedAt: clk.Now().Add(-time.Second)}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("Check under a subject cutoff = %v, want ErrRevoked", err)
	}
	// The published events come back to this node (the sync lag is measured)
	// and a rebuild from the store keeps everything.
	waitFor(t, "FilterEntries = 1", waitLimit, func() bool { return value(m.FilterEntries) == 1 })
	if err := d.resyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.filterHas(r.Key()) {
		t.Fatal("the rebuild from the memory store lost the revocation")
	}
	if _, ok := d.Cutoff(store.CutoffSubject, "alice"); !ok {
		t.Fatal("the rebuild from the memory store lost the cutoff")
	}
	// After expiry the rebuild drops it.
	clk.Advance(2 * time.Minute)
	if err := d.resyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if d.filterHas(r.Key()) {
		t.Error("an expired revocation survived the rebuild")
	}
	if got := value(m.FilterEntries); got != 0 {
		t.Errorf("FilterEntries = %v, want 0", got)
	}
}
