package denylist

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/store"
)

// Run keeps the denylist in sync with the store until ctx is done, then
// returns nil. It subscribes to the published revocations and cutoffs, loads
// everything from the store once subscribed (or after a second without a
// subscription), retrying with backoff until the first load succeeds, which
// makes Ready true; then it rebuilds after every (re)subscription and every
// resync_interval with ±10% jitter. Panics in
// its goroutines are recovered and logged. Call it once.
func (d *Denylist) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.subscribeLoop(ctx)
	}()
	defer wg.Wait()

	// The first load waits for the subscription (onSubscribed triggers it),
	// so that nothing published after the load is missed and one load
	// serves both; it starts anyway after firstLoadWait.
	timer := time.NewTimer(firstLoadWait)
	defer timer.Stop()
	var backoff time.Duration
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-d.trigger:
		}
		if err := d.safeResync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = nextBackoff(backoff, d.retryMin, d.retryMax)
			d.log.Warn("resync from the store failed, retrying", zap.Error(err), zap.Duration("retry_in", backoff))
			timer.Reset(backoff)
			continue
		}
		backoff = 0
		timer.Reset(jitter(d.resyncEvery))
	}
}

// firstLoadWait bounds how long Run waits for the subscription before its
// first load.
const firstLoadWait = time.Second

// subscribeLoop runs the store's Subscribe until ctx is done, restarting it
// with backoff if it returns early.
func (d *Denylist) subscribeLoop(ctx context.Context) {
	defer d.m.Subscribed.Set(0)
	var backoff time.Duration
	for {
		err := d.safeSubscribe(ctx)
		d.m.Subscribed.Set(0)
		if ctx.Err() != nil {
			return
		}
		backoff = nextBackoff(backoff, d.retryMin, d.retryMax)
		d.log.Warn("revocation subscription ended, subscribing again", zap.Error(err), zap.Duration("retry_in", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *Denylist) safeSubscribe(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic in the revocation subscription", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("denylist: panic in subscription: %v", p)
		}
	}()
	err = d.st.Subscribe(ctx, d.onEvent, d.onSubscribed)
	if err == nil && ctx.Err() == nil {
		err = errors.New("denylist: subscription returned")
	}
	return err
}

// onSubscribed is called by the store after each (re)subscription: messages
// may have been missed while unsubscribed, so a rebuild is requested.
func (d *Denylist) onSubscribed() {
	d.m.Subscribed.Set(1)
	d.log.Info("subscribed to revocations; resyncing")
	d.requestResync()
}

// requestResync asks Run for a rebuild without blocking; requests made
// while one is pending are merged.
func (d *Denylist) requestResync() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// onEvent applies one published revocation or cutoff. Revocations that come
// from the store are treated as confirmed.
func (d *Denylist) onEvent(ev store.Event) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic applying a revocation event", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		}
	}()
	now := d.now()
	if !ev.PublishedAt.IsZero() {
		d.m.SyncLag.Set(now.Sub(ev.PublishedAt).Seconds())
	}
	switch {
	case ev.Revocation != nil:
		r := *ev.Revocation
		if err := validRevocation(r); err != nil {
			d.log.Warn("ignoring an invalid revocation event", zap.Error(err))
			return
		}
		if !r.ExpiresAt.After(now) {
			return
		}
		d.addRevocation(r)
	case ev.Cutoff != nil:
		if !ev.Cutoff.ExpiresAt.After(now) {
			return
		}
		d.applyCutoff(*ev.Cutoff)
	}
}

func (d *Denylist) safeResync(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic in resync", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("denylist: panic in resync: %v", p)
		}
	}()
	return d.resyncOnce(ctx)
}

// resyncOnce builds a fresh filter and fresh cutoff maps from every live
// entry in the store and swaps them in. Additions made while it runs are
// replayed into the new filter before the swap, so none is lost. On error
// the current state is kept.
func (d *Denylist) resyncOnce(ctx context.Context) (err error) {
	d.rebuildMu.Lock()
	defer d.rebuildMu.Unlock()
	start := time.Now()
	now := d.now()

	// More live entries than configured: size for them, with room to grow.
	capacity := d.cfg.BloomCapacity
	if d.lastCount > capacity {
		capacity = min(d.lastCount+d.lastCount/4, MaxBloomCapacity)
	}
	nf := newFilter(capacity, d.cfg.BloomFPRate)
	subjects := map[string]cutoff{}
	sessions := map[string]cutoff{}

	d.mu.Lock()
	d.rebuilding = true
	d.pendingKeys, d.pendingCutoffs = nil, nil
	d.mu.Unlock()
	defer func() {
		if err != nil {
			d.mu.Lock()
			d.rebuilding = false
			d.pendingKeys, d.pendingCutoffs = nil, nil
			d.mu.Unlock()
		}
	}()

	var n uint
	var buf []byte
	err = d.st.ScanRevocations(ctx, now, func(r store.Revocation) error {
		if !r.ExpiresAt.After(now) {
			return nil
		}
		// Store keys are distinct: count them all (TestAndAdd would
		// undercount in an overfull filter and defeat its resizing).
		buf = appendKey(buf[:0], r)
		nf.Add(buf)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("denylist: scanning revocations: %w", err)
	}
	err = d.st.ScanCutoffs(ctx, now, func(c store.Cutoff) error {
		if !c.ExpiresAt.After(now) {
			return nil
		}
		switch c.Kind {
		case store.CutoffSubject:
			mergeCutoff(subjects, c)
		case store.CutoffSession:
			mergeCutoff(sessions, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("denylist: scanning cutoffs: %w", err)
	}

	d.mu.Lock()
	replayed := len(d.pendingKeys) + len(d.pendingCutoffs)
	for _, k := range d.pendingKeys {
		if !nf.TestAndAdd(bytesOf(k)) {
			n++
		}
	}
	for _, c := range d.pendingCutoffs {
		switch c.Kind {
		case store.CutoffSubject:
			mergeCutoff(subjects, c)
		case store.CutoffSession:
			mergeCutoff(sessions, c)
		}
	}
	d.filter, d.entries = nf, n
	d.fgen = filterGenerations.Add(1)
	d.subjects, d.sessions = subjects, sessions
	d.rebuilding = false
	d.pendingKeys, d.pendingCutoffs = nil, nil
	d.m.FilterEntries.Set(float64(n))
	nCutoffs := len(subjects) + len(sessions)
	d.mu.Unlock()

	// A rebuild may bring revocations this node missed: forget the refuted
	// hits, and drop the confirmations that expired or whose expiry is
	// unknown.
	d.cacheMu.Lock()
	d.invalidateRefutedLocked()
	for k, exp := range d.confirmed {
		if exp.IsZero() || !exp.After(now) {
			delete(d.confirmed, k)
		}
	}
	d.cacheMu.Unlock()

	if n > d.cfg.BloomCapacity {
		d.log.Warn("more live revocations than bloom_capacity: the next filter is sized up; raise bloom_capacity",
			zap.Uint("revocations", n), zap.Uint("bloom_capacity", d.cfg.BloomCapacity))
	}
	d.lastCount = n
	d.m.LastResync.Set(float64(d.now().Unix()))
	if !d.ready.Swap(true) {
		d.log.Info("revocations loaded", zap.Uint("revocations", n), zap.Int("cutoffs", nCutoffs))
	}
	d.log.Debug("resynced", zap.Uint("revocations", n), zap.Int("cutoffs", nCutoffs),
		zap.Int("replayed", replayed), zap.Duration("took", time.Since(start)))
	return nil
}

// appendKey appends r.Key() to buf without allocating a string.
func appendKey(buf []byte, r store.Revocation) []byte {
	if r.Kind == store.KindSession {
		return append(append(buf, "s:"...), r.ID...)
	}
	buf = append(buf, 't')
	buf = strconv.AppendInt(buf, int64(len(r.Issuer)), 10)
	buf = append(buf, ':')
	buf = append(buf, r.Issuer...)
	return append(buf, r.ID...)
}

// nextBackoff doubles prev within [lo, hi].
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	if prev < lo {
		return lo
	}
	return min(prev*2, hi)
}

// jitter returns d ±10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}
