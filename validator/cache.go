package validator

import (
	"strings"
	"sync"
	"time"
)

// cacheShards is the number of shards of a large cache (a power of two); a
// cache of fewer than smallCache entries has one shard, so that its bound is
// exact.
const (
	cacheShards = 32
	smallCache  = 1024
)

// tokenCache is a bounded cache of verified tokens keyed by the whole token
// string. An entry is served only between its token's nbf/iat and exp (with
// leeway) and only while the key source that verified it has not dropped a
// key. Eviction is random (Go map order), preferring expired entries.
type tokenCache struct {
	perShard int
	mask     uint32
	shards   []cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cacheEntry
	_  [40]byte // keep shards on separate cache lines
}

type cacheEntry struct {
	id *Identity
	// from and until bound the time the token is valid: now >= from and
	// now < until (leeway included).
	from, until time.Time
	// src and epoch: the remote set that verified the token and its epoch
	// at that moment (nil for static keys and secrets).
	src   *remoteSet
	epoch uint64
}

func newTokenCache(size int) *tokenCache {
	n := 1
	if size >= smallCache {
		n = cacheShards
	}
	c := &tokenCache{perShard: max(1, size/n), mask: uint32(n - 1), shards: make([]cacheShard, n)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
	}
	return c
}

// shardOf picks a shard from the token's last bytes (its signature).
func (c *tokenCache) shardOf(token string) *cacheShard {
	var h uint32 = 2166136261
	for i := max(0, len(token)-16); i < len(token); i++ {
		h = (h ^ uint32(token[i])) * 16777619
	}
	return &c.shards[h&c.mask]
}

func (e *cacheEntry) valid(now time.Time) bool {
	return !now.Before(e.from) && now.Before(e.until) &&
		(e.src == nil || e.src.epoch.Load() == e.epoch)
}

// get returns the cached Identity of token if it is still valid at now. It
// does not allocate.
func (c *tokenCache) get(token string, now time.Time) (*Identity, bool) {
	s := c.shardOf(token)
	s.mu.RLock()
	e, ok := s.m[token]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !e.valid(now) {
		s.mu.Lock()
		if cur, ok := s.m[token]; ok && cur.id == e.id {
			delete(s.m, token)
		}
		s.mu.Unlock()
		return nil, false
	}
	return e.id, true
}

// put caches a verified token, evicting when the shard is full.
func (c *tokenCache) put(token string, e cacheEntry, now time.Time) {
	s := c.shardOf(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[token]; !ok && len(s.m) >= c.perShard {
		evicted, seen := false, 0
		for k, old := range s.m {
			if !old.valid(now) {
				delete(s.m, k)
				evicted = true
			}
			if seen++; seen == 8 {
				break
			}
		}
		if !evicted {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
	}
	s.m[strings.Clone(token)] = e
}

// len is the number of cached entries.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
