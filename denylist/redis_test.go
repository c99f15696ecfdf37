package denylist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/redistest"
	"github.com/portcullis/portcullis/store"
)

// The store implementations satisfy the denylist's consumer-side interface.
var (
	_ Store = (*store.Memory)(nil)
	_ Store = (*store.Redis)(nil)
)

// countingStore counts the calls a node makes to its store.
type countingStore struct {
	Store
	has, scans atomic.Int64
}

func (c *countingStore) HasRevocation(ctx context.Context, key string) (bool, error) {
	c.has.Add(1)
	return c.Store.HasRevocation(ctx, key)
}

func (c *countingStore) ScanRevocations(ctx context.Context, now time.Time, fn func(store.Revocation) error) error {
	c.scans.Add(1)
	return c.Store.ScanRevocations(ctx, now, fn)
}

// redisNode is one gateway process: its own Redis client and Denylist,
// running until the test ends.
type redisNode struct {
	d  *Denylist
	st *countingStore
	m  *metrics.Metrics
}

func startRedisNode(t *testing.T, addrs []string, cfg Config) *redisNode {
	t.Helper()
	rs, err := store.NewRedis(store.RedisConfig{Addrs: addrs, KeyPrefix: "dltest:"}, store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	n := &redisNode{st: &countingStore{Store: rs}, m: metrics.New()}
	n.d, err = New(cfg, n.st, Options{Metrics: n.m})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, n.d)
	waitFor(t, "node ready and subscribed", waitLimit, func() bool {
		return n.d.Ready() && value(n.m.Subscribed) == 1
	})
	return n
}

func tokenRevocation(id string, ttl time.Duration) store.Revocation {
	return store.Revocation{Kind: store.KindToken, Issuer: iss, ID: id, ExpiresAt: time.Now().Add(ttl)}
}

// propagation waits until check passes on the other node and returns how
// long it took.
func propagation(t *testing.T, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(waitLimit)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen after %s", what, waitLimit)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return time.Since(start)
}

func TestRedisTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	a := startRedisNode(t, []string{srv.Addr()}, Config{})
	b := startRedisNode(t, []string{srv.Addr()}, Config{})
	ctx := context.Background()

	// Revoke on a, b rejects: the propagation time through Redis pub/sub.
	const n = 50
	var lat []time.Duration
	for i := range n {
		r := tokenRevocation(fmt.Sprint("prop-", i), time.Hour)
		start := time.Now()
		if err := a.d.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
		propagation(t, "revocation on b", func() bool { return errors.Is(checkKey(b.d, r.Key()), ErrRevoked) })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("revoke on node a -> rejected on node b, %d revocations: p50 %s, p99 %s, max %s (Revoke's Redis write included)",
		n, lat[n/2], lat[n*99/100], lat[n-1])
	if got := value(b.m.SyncLag); got < 0 || got > 1 {
		t.Errorf("b SyncLag = %vs, want within [0, 1]", got)
	}
	// Confirmed by the published event: no store call on b.
	if got := b.st.has.Load(); got != 0 {
		t.Errorf("b store calls for revoked tokens = %d, want 0", got)
	}
	// Tokens that are not revoked cost b no store call.
	misses := 0
	for i := range 2000 {
		key := store.TokenKey(iss, fmt.Sprint("live-", i))
		if b.d.filterHas(key) {
			continue
		}
		misses++
		if err := checkKey(b.d, key); err != nil {
			t.Fatalf("Check(live token) = %v", err)
		}
	}
	if got := b.st.has.Load(); got != 0 {
		t.Errorf("b store calls for %d live tokens = %d, want 0", misses, got)
	}

	// Log out everywhere on a: b rejects the subject's older tokens.
	if err := a.d.RevokeSubject(ctx, "alice", time.Time{}); err != nil {
		t.Fatal(err)
	}
	old := &Query{Key: store.TokenKey(iss, "alice-old"), Subject: "alice", IssuedAt: time.Now().Add(-time.Minute)}
	d := propagation(t, "subject cutoff on b", func() bool { return errors.Is(b.d.Check(ctx, old), ErrRevoked) })
	t.Logf("subject cutoff on a -> rejected on b: %s", d)
	fresh := &Query{Key: store.TokenKey(iss, "alice-new"), Subject: "alice", IssuedAt: time.Now().Add(time.Second)}
	if err := b.d.Check(ctx, fresh); err != nil {
		t.Errorf("b: Check(token issued after the cutoff) = %v, want nil", err)
	}

	// A session (sid) revocation on a: b rejects every token minted from it.
	if err := a.d.Revoke(ctx, store.Revocation{Kind: store.KindSession, ID: "fam-1", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	minted := &Query{Key: store.TokenKey("https://gw/", "any-jti"), SessionKey: store.SessionKey("fam-1"), SID: "fam-1", Subject: "bob", IssuedAt: time.Now()}
	propagation(t, "session revocation on b", func() bool { return errors.Is(b.d.Check(ctx, minted), ErrRevoked) })
	// And a PATCH cutoff for another session.
	if err := a.d.RevokeSessionBefore(ctx, "fam-2", time.Time{}); err != nil {
		t.Fatal(err)
	}
	patched := &Query{Key: store.TokenKey("https://gw/", "jti-2"), SessionKey: store.SessionKey("fam-2"), SID: "fam-2", Subject: "bob", IssuedAt: time.Now().Add(-time.Minute)}
	propagation(t, "session cutoff on b", func() bool { return errors.Is(b.d.Check(ctx, patched), ErrRevoked) })

	// b looks up a revocation made on a.
	got, err := b.d.Lookup(ctx, "prop-0")
	if err != nil || got.Issuer != iss || got.Kind != store.KindToken {
		t.Fatalf("b: Lookup(prop-0) = %+v, %v", got, err)
	}

	// A node that joins later learns everything from the store alone.
	c := startRedisNode(t, []string{srv.Addr()}, Config{})
	for _, q := range []*Query{old, minted, patched, {Key: store.TokenKey(iss, "prop-7")}} {
		if err := c.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
			t.Errorf("late node c: Check(%+v) = %v, want ErrRevoked", q, err)
		}
	}
	if got := value(c.m.FilterEntries); got != n+1 {
		t.Errorf("late node c: FilterEntries = %v, want %d", got, n+1)
	}
}

func TestRedisRestartResubscribesAndResyncs(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	a := startRedisNode(t, []string{srv.Addr()}, Config{})
	// b's filter is tiny, so that almost any token is a Bloom hit and needs
	// the store: what a node sees of an outage on the confirm path.
	b := startRedisNode(t, []string{srv.Addr()}, tinyFilter)
	ctx := context.Background()

	before := tokenRevocation("before-outage", time.Hour)
	if err := a.d.Revoke(ctx, before); err != nil {
		t.Fatal(err)
	}
	propagation(t, "revocation on b", func() bool { return errors.Is(checkKey(b.d, before.Key()), ErrRevoked) })
	fp := falsePositive(t, b.d)
	if err := checkKey(b.d, fp); err != nil {
		t.Fatalf("b: Check(false positive) = %v, want nil", err)
	}
	scansBefore := b.st.scans.Load()

	srv.Stop(t)
	if err := a.d.Revoke(ctx, tokenRevocation("during-outage", time.Hour)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("a: Revoke with Redis down = %v, want ErrUnavailable", err)
	}
	// A hit that is not in b's caches cannot be confirmed: fail closed.
	fp2 := ""
	for i := range 10000 {
		k := store.TokenKey(iss, fmt.Sprint("outage-", i))
		if k != fp && b.d.filterHas(k) {
			fp2 = k
			break
		}
	}
	if err := checkKey(b.d, fp2); !errors.Is(err, ErrUnavailable) {
		t.Errorf("b: Check(unconfirmable hit) with Redis down = %v, want ErrUnavailable", err)
	}
	if got := hits(b.m, "unknown"); got < 1 {
		t.Errorf("b: bloom hits confirmed=unknown = %v, want >= 1", got)
	}
	// A revocation confirmed before the outage is still rejected.
	if err := checkKey(b.d, before.Key()); !errors.Is(err, ErrRevoked) {
		t.Errorf("b: Check(revoked) with Redis down = %v, want ErrRevoked", err)
	}

	srv.Restart(t)
	// b resubscribes by itself and rebuilds from the store (its periodic
	// resync is a minute away, so this scan is the resubscription's).
	d := propagation(t, "b resubscribed and resynced", func() bool {
		return b.st.scans.Load() > scansBefore && value(b.m.Subscribed) == 1 && value(b.m.LastResync) > 0
	})
	t.Logf("Redis restarted -> b resubscribed and resynced after %s", d)
	after := tokenRevocation("after-restart", time.Hour)
	propagation(t, "a can write again", func() bool { return a.d.Revoke(ctx, after) == nil })
	propagation(t, "post-restart revocation on b", func() bool { return errors.Is(checkKey(b.d, after.Key()), ErrRevoked) })
	// What was revoked before the restart survived it (appendonly) and is
	// in b's rebuilt filter.
	if err := checkKey(b.d, before.Key()); !errors.Is(err, ErrRevoked) {
		t.Errorf("b: Check(revoked before the restart) = %v, want ErrRevoked", err)
	}
	if err := checkKey(b.d, fp2); err != nil {
		t.Errorf("b: Check(false positive) with Redis back = %v, want nil", err)
	}
}

func TestRedisClusterTwoNodes(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := startRedisNode(t, cl.Addrs(), Config{})
	b := startRedisNode(t, cl.Addrs(), Config{})
	ctx := context.Background()
	r := tokenRevocation("cluster-1", time.Hour)
	start := time.Now()
	if err := a.d.Revoke(ctx, r); err != nil {
		t.Fatal(err)
	}
	propagation(t, "revocation on b through the cluster", func() bool { return errors.Is(checkKey(b.d, r.Key()), ErrRevoked) })
	t.Logf("cluster: revoke on a -> rejected on b after %s", time.Since(start))
	if err := a.d.RevokeSubject(ctx, "carol", time.Time{}); err != nil {
		t.Fatal(err)
	}
	c := startRedisNode(t, cl.Addrs(), Config{})
	if err := checkKey(c.d, r.Key()); !errors.Is(err, ErrRevoked) {
		t.Errorf("late node: Check = %v, want ErrRevoked", err)
	}
	if _, ok := c.d.Cutoff(store.CutoffSubject, "carol"); !ok {
		t.Error("late node: the subject cutoff was not loaded")
	}
}
