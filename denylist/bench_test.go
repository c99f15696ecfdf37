package denylist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/portcullis/portcullis/store"
)

// benchEnv is a loaded Denylist holding n revocations.
func benchEnv(b *testing.B, n int) *env {
	b.Helper()
	clk := newFakeClock()
	st := newFakeStore(clk.Now)
	for i := range n {
		st.put(store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "revoked-" + strconv.Itoa(i), ExpiresAt: clk.Now().Add(time.Hour)})
	}
	e := &env{st: st, clk: clk}
	e.d, e.m = newNode(b, Config{}, st, clk)
	e.resync(b)
	return e
}

// missQuery returns a query for a live token the filter does not hold.
func missQuery(b *testing.B, e *env) *Query {
	for i := 0; ; i++ {
		key := store.TokenKey(iss, fmt.Sprintf("0b9c8d4e-5f6a-4b7c-8d9e-%012d", i))
		if !e.d.filterHas(key) {
			return &Query{Key: key, Subject: "user-1234567", IssuedAt: e.clk.Now()}
		}
	}
}

// BenchmarkCheckMiss is the hot path: a token that is not revoked, with a
// filter of 100,000 revocations and no cutoff for its subject.
func BenchmarkCheckMiss(b *testing.B) {
	e := benchEnv(b, 100_000)
	q := missQuery(b, e)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.d.Check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckMissWithCutoffs is the hot path while 10,000 other subjects
// and sessions have "log out everywhere" cutoffs, for a minted token (jti
// and sid keys both tested).
func BenchmarkCheckMissWithCutoffs(b *testing.B) {
	e := benchEnv(b, 100_000)
	ctx := context.Background()
	for i := range 10_000 {
		if err := e.d.RevokeSubject(ctx, "other-"+strconv.Itoa(i), time.Time{}); err != nil {
			b.Fatal(err)
		}
		if err := e.d.RevokeSessionBefore(ctx, "sid-"+strconv.Itoa(i), time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	q := missQuery(b, e)
	q.SID = "sid-live"
	q.SessionKey = store.SessionKey(q.SID)
	if e.d.filterHas(q.SessionKey) {
		b.Skip("session key is a false positive")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.d.Check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckMissDistinct checks 4,096 distinct live tokens in turn
// against a filter of 100,000 revocations at the default capacity (1.8 MB),
// so that the filter is not all in the CPU caches, as in a gateway that does
// other work between checks. memo: each token's Memo already filled, as a
// cached token's is from its second request on.
func BenchmarkCheckMissDistinct(b *testing.B) {
	e := benchEnv(b, 100_000)
	ctx := context.Background()
	qs := make([]*Query, 0, 4096)
	for i := 0; len(qs) < cap(qs); i++ {
		key := store.TokenKey(iss, fmt.Sprintf("0b9c8d4e-5f6a-4b7c-8d9e-%012d", i))
		if !e.d.filterHas(key) {
			qs = append(qs, &Query{Key: key, Subject: "user-1234567", IssuedAt: e.clk.Now(), Memo: &Memo{}})
		}
	}
	for _, memo := range []bool{false, true} {
		b.Run(fmt.Sprintf("memo=%v", memo), func(b *testing.B) {
			for _, q := range qs {
				q.Memo = nil
				if memo {
					q.Memo = &Memo{}
					if err := e.d.Check(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if err := e.d.Check(ctx, qs[i%len(qs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkCheckMissParallel runs the hot path on every P.
func BenchmarkCheckMissParallel(b *testing.B) {
	e := benchEnv(b, 100_000)
	q := missQuery(b, e)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := e.d.Check(ctx, q); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheckHitConfirmedCached is a revoked token presented again: a
// Bloom hit answered from the cache of confirmed revocations.
func BenchmarkCheckHitConfirmedCached(b *testing.B) {
	e := benchEnv(b, 100_000)
	ctx := context.Background()
	r := e.rev("revoked-now", time.Hour)
	if err := e.d.Revoke(ctx, r); err != nil {
		b.Fatal(err)
	}
	q := &Query{Key: r.Key(), Subject: "user-1", IssuedAt: e.clk.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.d.Check(ctx, q); !errors.Is(err, ErrRevoked) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if calls, _, _ := e.st.counts(); calls != 0 {
		b.Fatalf("store calls = %d, want 0", calls)
	}
}

// sliceSource is an in-memory Store of n token revocations (IDs
// precomputed), for the rebuild benchmark.
type sliceSource struct {
	*fakeStore
	ids []string
	exp time.Time
}

func (s *sliceSource) ScanRevocations(_ context.Context, _ time.Time, fn func(store.Revocation) error) error {
	for _, id := range s.ids {
		if err := fn(store.Revocation{Kind: store.KindToken, Issuer: iss, ID: id, ExpiresAt: s.exp}); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkRebuild1M rebuilds the filter from 1,000,000 live revocations at
// the default capacity and fp rate 0.001 (targets: < 2 s, < 4 MB).
func BenchmarkRebuild1M(b *testing.B) {
	const n = 1_000_000
	clk := newFakeClock()
	src := &sliceSource{fakeStore: newFakeStore(clk.Now), ids: make([]string, n), exp: clk.Now().Add(time.Hour)}
	for i := range src.ids {
		src.ids[i] = fmt.Sprintf("%08x-7d1e-4c1b-9a5e-%012d", i, i)
	}
	d, m := newNode(b, Config{BloomCapacity: n, BloomFPRate: 0.001}, src, clk)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := d.resyncOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := value(m.FilterEntries); got != n {
		b.Fatalf("FilterEntries = %v, want %d", got, n)
	}
	d.mu.RLock()
	bits := d.filter.Cap()
	k := d.filter.K()
	d.mu.RUnlock()
	b.ReportMetric(float64((bits+63)/64*8), "filter-bytes")
	b.ReportMetric(float64(k), "hash-funcs")
	// The measured false-positive rate on keys never added.
	fp := 0
	const probes = 100_000
	for i := range probes {
		if d.filterHas(store.TokenKey(iss, "never-"+strconv.Itoa(i))) {
			fp++
		}
	}
	b.ReportMetric(float64(fp)/probes, "fp-rate")
}
