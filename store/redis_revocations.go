package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Paging of the scans and of the removal of expired index entries.
const (
	scanCount      = 5000  // ZSCAN COUNT hint
	pruneBatch     = 10000 // index entries dropped per script run
	cutoffPruneMax = 1000  // cutoffs dropped per script run (HDEL arguments)
)

// Subscription health: the reconnect backoff, and how long a silent
// subscription waits before it checks the connection with a PING.
const (
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	healthInterval = 5 * time.Second
)

// wireEvent is an Event on the channel: compact JSON, times in unix ms.
type wireEvent struct {
	R *wireRevocation `json:"r,omitempty"`
	C *wireCutoff     `json:"c,omitempty"`
	P int64           `json:"p"`
}

type wireRevocation struct {
	K string `json:"k"`
	I string `json:"i,omitempty"`
	J string `json:"j"`
	E int64  `json:"e"`
}

type wireCutoff struct {
	K string `json:"k"`
	N string `json:"n"`
	B int64  `json:"b"`
	E int64  `json:"e"`
}

// event converts a wire event; false for a malformed one.
func (w wireEvent) event() (Event, bool) {
	e := Event{PublishedAt: fromMS(w.P)}
	switch {
	case w.R != nil && w.C == nil:
		e.Revocation = &Revocation{Kind: w.R.K, Issuer: w.R.I, ID: w.R.J, ExpiresAt: fromMS(w.R.E)}
		return e, checkRevocation(*e.Revocation) == nil
	case w.C != nil && w.R == nil:
		e.Cutoff = &Cutoff{Kind: w.C.K, Name: w.C.N, Before: fromMS(w.C.B), ExpiresAt: fromMS(w.C.E)}
		return e, checkCutoff(*e.Cutoff) == nil
	}
	return Event{}, false
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// AddRevocation stores r until r.ExpiresAt (a later expiry of the same key
// wins), indexes it, and publishes Event{Revocation} to every node, all in
// one script. Adding it again changes nothing. An already expired r is
// ignored.
func (r *Redis) AddRevocation(ctx context.Context, rv Revocation) error {
	if err := checkRevocation(rv); err != nil {
		return err
	}
	if rv.Kind == KindSession {
		rv.Issuer = ""
	}
	now := r.now()
	if !now.Before(rv.ExpiresAt) {
		return nil
	}
	key := rv.Key()
	pre := `{"r":{"k":` + jsonString(rv.Kind) + `,"i":` + jsonString(rv.Issuer) + `,"j":` + jsonString(rv.ID) + `,"e":`
	post := `},"p":` + msArg(ms(now)) + `}`
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	err := revokeScript.Run(ctx, r.client,
		[]string{r.revEntryKey(key), r.revIndexKey(), r.revIDKey(rv.ID)},
		key, msArg(ms(rv.ExpiresAt)), msArg(ttlMS(rv.ExpiresAt, now)), r.channel, pre, post).Err()
	if err != nil {
		return r.fail("add revocation", err)
	}
	return nil
}

// HasRevocation reports whether the revocation with this Key is live.
func (r *Redis) HasRevocation(ctx context.Context, key string) (bool, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	exp, err := r.client.Get(ctx, r.revEntryKey(key)).Int64()
	if isNil(err) {
		return false, nil
	}
	if err != nil {
		return false, r.fail("has revocation", err)
	}
	return r.now().Before(fromMS(exp)), nil
}

// FindRevocation returns the live revocation whose ID is id (the one that
// lasts longest if several issuers revoked the same ID).
func (r *Redis) FindRevocation(ctx context.Context, id string) (Revocation, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	all, err := r.client.HGetAll(ctx, r.revIDKey(id)).Result()
	if err != nil {
		return Revocation{}, r.fail("find revocation", err)
	}
	now := r.now()
	var best Revocation
	found := false
	for key, v := range all {
		rv, ok := parseKey(key)
		exp, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || rv.ID != id {
			continue
		}
		rv.ExpiresAt = fromMS(exp)
		if now.Before(rv.ExpiresAt) && (!found || betterRevocation(rv, best)) {
			best, found = rv, true
		}
	}
	if !found {
		return Revocation{}, ErrNotFound
	}
	return best, nil
}

// ScanRevocations drops the entries expired at now from the index, then
// calls fn for every live one, reading the index in pages (ZSCAN) so that
// memory stays bounded however many there are. While Redis rehashes the
// index, fn may see an entry twice. It stops at fn's first error and
// returns it.
func (r *Redis) ScanRevocations(ctx context.Context, now time.Time, fn func(Revocation) error) error {
	if err := r.prune(ctx, "scan revocations", []string{r.revIndexKey()}, now, pruneBatch); err != nil {
		return err
	}
	nowMS := ms(now)
	return r.zscan(ctx, "scan revocations", r.revIndexKey(), func(members []string, scores []int64) error {
		for i, key := range members {
			if scores[i] <= nowMS {
				continue
			}
			rv, ok := parseKey(key)
			if !ok {
				r.log.Warn("skipping a malformed revocation index entry")
				continue
			}
			rv.ExpiresAt = fromMS(scores[i])
			if err := fn(rv); err != nil {
				return err
			}
		}
		return nil
	})
}

// prune runs pruneScript until it has dropped everything expired at now.
func (r *Redis) prune(ctx context.Context, op string, keys []string, now time.Time, batch int) error {
	for {
		cctx, cancel := r.ctx(ctx)
		n, err := pruneScript.Run(cctx, r.client, keys, msArg(ms(now)), batch).Int()
		cancel()
		if err != nil {
			return r.fail(op, err)
		}
		if n < batch {
			return nil
		}
	}
}

// zscan reads a zset page by page, each page under its own timeout.
func (r *Redis) zscan(ctx context.Context, op, key string, page func(members []string, scores []int64) error) error {
	var cursor uint64
	members := make([]string, 0, scanCount)
	scores := make([]int64, 0, scanCount)
	for {
		cctx, cancel := r.ctx(ctx)
		vals, next, err := r.client.ZScan(cctx, key, cursor, "", scanCount).Result()
		cancel()
		if err != nil {
			return r.fail(op, err)
		}
		members, scores = members[:0], scores[:0]
		for i := 0; i+1 < len(vals); i += 2 {
			f, err := strconv.ParseFloat(vals[i+1], 64)
			if err != nil {
				return r.fail(op, fmt.Errorf("corrupt score: %w", err))
			}
			members = append(members, vals[i])
			scores = append(scores, int64(f))
		}
		if err := page(members, scores); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// AddCutoff stores c until its ExpiresAt, merged with the live cutoff of the
// same kind and name (the later Before and the later ExpiresAt win), and
// publishes Event{Cutoff} with the result to every node. An already expired
// c is ignored.
func (r *Redis) AddCutoff(ctx context.Context, c Cutoff) error {
	if err := checkCutoff(c); err != nil {
		return err
	}
	now := r.now()
	if !now.Before(c.ExpiresAt) {
		return nil
	}
	pre := `{"c":{"k":` + jsonString(c.Kind) + `,"n":` + jsonString(c.Name) + `,`
	post := `},"p":` + msArg(ms(now)) + `}`
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	err := cutoffScript.Run(ctx, r.client,
		[]string{r.cutoffIndexKey(c.Kind), r.cutoffValuesKey(c.Kind)},
		c.Name, msArg(ms(c.Before)), msArg(ms(c.ExpiresAt)), msArg(ms(now)), r.channel, pre, post).Err()
	if err != nil {
		return r.fail("add cutoff", err)
	}
	return nil
}

// ScanCutoffs drops the cutoffs expired at now, then calls fn for every
// live one. It stops at fn's first error and returns it.
func (r *Redis) ScanCutoffs(ctx context.Context, now time.Time, fn func(Cutoff) error) error {
	nowMS := ms(now)
	for _, kind := range []string{CutoffSubject, CutoffSession} {
		idx, vals := r.cutoffIndexKey(kind), r.cutoffValuesKey(kind)
		if err := r.prune(ctx, "scan cutoffs", []string{idx, vals}, now, cutoffPruneMax); err != nil {
			return err
		}
		err := r.zscan(ctx, "scan cutoffs", idx, func(names []string, exps []int64) error {
			if len(names) == 0 {
				return nil
			}
			cctx, cancel := r.ctx(ctx)
			befores, err := r.client.HMGet(cctx, vals, names...).Result()
			cancel()
			if err != nil {
				return r.fail("scan cutoffs", err)
			}
			for i, name := range names {
				b, _ := befores[i].(string)
				before, err := strconv.ParseInt(b, 10, 64)
				if err != nil || exps[i] <= nowMS {
					continue // expired meanwhile
				}
				if err := fn(Cutoff{Kind: kind, Name: name, Before: fromMS(before), ExpiresAt: fromMS(exps[i])}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Subscribe delivers every revocation and cutoff published by any node
// (this one included) to onEvent, until ctx is done; it returns ctx.Err().
// It reconnects by itself, forever, with backoff, and calls onSubscribed
// after every successful subscription, the first and each one after a
// loss, so the caller can catch up on what it missed. Both callbacks run on
// the caller's goroutine.
func (r *Redis) Subscribe(ctx context.Context, onEvent func(Event), onSubscribed func()) error {
	backoff := minBackoff
	for {
		subscribed, err := r.subscribeOnce(ctx, onEvent, onSubscribed)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if subscribed {
			backoff = minBackoff
		}
		// The subscription is lost until the next onSubscribed: the
		// caller's gauge (set to 1 there) must not keep saying otherwise.
		if r.metrics != nil {
			r.metrics.Subscribed.Set(0)
		}
		r.countError()
		wait := backoff/2 + rand.N(backoff/2+1)
		r.log.Warn("subscription lost; reconnecting", zap.Error(err), zap.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// subscribeOnce runs one subscription until it fails or ctx is done, and
// reports whether it got subscribed.
func (r *Redis) subscribeOnce(ctx context.Context, onEvent func(Event), onSubscribed func()) (subscribed bool, err error) {
	ps := r.client.Subscribe(ctx, r.channel)
	defer ps.Close()
	// A blocked read ignores the cancellation of ctx; closing the
	// subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthInterval)
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() && !pinged && ctx.Err() == nil {
				// Silence: check that the connection is alive; no
				// answer by the next timeout means it is not.
				pinged = true
				if err := ps.Ping(ctx); err != nil {
					return subscribed, err
				}
				continue
			}
			return subscribed, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				subscribed = true
				if onSubscribed != nil {
					onSubscribed()
				}
			}
		case *redis.Message:
			var w wireEvent
			e, ok := Event{}, false
			if json.Unmarshal([]byte(m.Payload), &w) == nil {
				e, ok = w.event()
			}
			if !ok {
				r.log.Warn("ignoring a malformed event", zap.Int("bytes", len(m.Payload)))
				continue
			}
			onEvent(e)
		}
	}
}
