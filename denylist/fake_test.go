package denylist

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/store"
)

var _ Store = (*fakeStore)(nil)

// fakeStore is an in-memory Store shared by any number of Denylists (nodes).
// Publication is synchronous; it can drop events, fail calls and run a hook
// in the middle of a scan.
type fakeStore struct {
	now func() time.Time

	mu      sync.Mutex
	revs    map[string]store.Revocation // by key
	cutoffs map[[2]string]store.Cutoff  // by kind, name
	subs    []fakeSub
	drop    bool  // drop published events (a node cut off from pub/sub)
	hasErr  error // returned by HasRevocation and FindRevocation
	addErr  error // returned by AddRevocation and AddCutoff
	scanErr error // returned by ScanRevocations
	// scanHook runs after the i-th revocation of a scan was handed over,
	// without the lock held.
	scanHook func(i int)
	hasCalls int
	scans    int
}

type fakeSub struct {
	onEvent      func(store.Event)
	onSubscribed func()
}

func newFakeStore(now func() time.Time) *fakeStore {
	return &fakeStore{now: now, revs: map[string]store.Revocation{}, cutoffs: map[[2]string]store.Cutoff{}}
}

func (f *fakeStore) AddRevocation(_ context.Context, r store.Revocation) error {
	f.mu.Lock()
	if f.addErr != nil {
		defer f.mu.Unlock()
		return f.addErr
	}
	f.revs[r.Key()] = r
	f.mu.Unlock()
	f.publish(store.Event{Revocation: &r, PublishedAt: f.now()})
	return nil
}

func (f *fakeStore) AddCutoff(_ context.Context, c store.Cutoff) error {
	f.mu.Lock()
	if f.addErr != nil {
		defer f.mu.Unlock()
		return f.addErr
	}
	k := [2]string{c.Kind, c.Name}
	if cur, ok := f.cutoffs[k]; !ok || c.Before.After(cur.Before) {
		f.cutoffs[k] = c
	}
	f.mu.Unlock()
	f.publish(store.Event{Cutoff: &c, PublishedAt: f.now()})
	return nil
}

// put stores r without publishing it (a message every node missed).
func (f *fakeStore) put(r store.Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revs[r.Key()] = r
}

func (f *fakeStore) publish(ev store.Event) {
	f.mu.Lock()
	subs := append([]fakeSub(nil), f.subs...)
	drop := f.drop
	f.mu.Unlock()
	if drop {
		return
	}
	for _, s := range subs {
		s.onEvent(ev)
	}
}

func (f *fakeStore) HasRevocation(_ context.Context, key string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hasCalls++
	if f.hasErr != nil {
		return false, f.hasErr
	}
	r, ok := f.revs[key]
	return ok && r.ExpiresAt.After(f.now()), nil
}

func (f *fakeStore) FindRevocation(_ context.Context, id string) (store.Revocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hasErr != nil {
		return store.Revocation{}, f.hasErr
	}
	for _, r := range f.revs {
		if r.ID == id && r.ExpiresAt.After(f.now()) {
			return r, nil
		}
	}
	return store.Revocation{}, store.ErrNotFound
}

func (f *fakeStore) ScanRevocations(ctx context.Context, now time.Time, fn func(store.Revocation) error) error {
	f.mu.Lock()
	f.scans++
	if f.scanErr != nil {
		defer f.mu.Unlock()
		return f.scanErr
	}
	var live []store.Revocation
	for _, r := range f.revs {
		if r.ExpiresAt.After(now) {
			live = append(live, r)
		}
	}
	hook := f.scanHook
	f.mu.Unlock()
	sort.Slice(live, func(i, j int) bool { return live[i].Key() < live[j].Key() })
	for i, r := range live {
		if err := fn(r); err != nil {
			return err
		}
		if hook != nil {
			hook(i)
		}
	}
	return ctx.Err()
}

func (f *fakeStore) ScanCutoffs(ctx context.Context, now time.Time, fn func(store.Cutoff) error) error {
	f.mu.Lock()
	var live []store.Cutoff
	for _, c := range f.cutoffs {
		if c.ExpiresAt.After(now) {
			live = append(live, c)
		}
	}
	f.mu.Unlock()
	for _, c := range live {
		if err := fn(c); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (f *fakeStore) Subscribe(ctx context.Context, onEvent func(store.Event), onSubscribed func()) error {
	f.mu.Lock()
	f.subs = append(f.subs, fakeSub{onEvent, onSubscribed})
	idx := len(f.subs) - 1
	f.mu.Unlock()
	onSubscribed()
	<-ctx.Done()
	f.mu.Lock()
	f.subs[idx] = fakeSub{onEvent: func(store.Event) {}, onSubscribed: func() {}}
	f.mu.Unlock()
	return ctx.Err()
}

// resubscribe simulates every subscriber reconnecting.
func (f *fakeStore) resubscribe() {
	f.mu.Lock()
	subs := append([]fakeSub(nil), f.subs...)
	f.mu.Unlock()
	for _, s := range subs {
		s.onSubscribed()
	}
}

func (f *fakeStore) set(fn func(f *fakeStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeStore) counts() (hasCalls, scans, subscribers int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hasCalls, f.scans, len(f.subs)
}

// fakeClock is an injected clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}
