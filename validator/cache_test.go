package validator

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCacheHit(t *testing.T) { // not parallel: AllocsPerRun
	v, _ := newVerifier(t, nil)
	tok := rs256(t, claims(nil))
	id1, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatal("a cache hit returned a different *Identity")
	}
	ctx := t.Context()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a cache hit allocates %.1f times", allocs)
	}
}

func TestCacheNeverServesExpired(t *testing.T) {
	t.Parallel()
	v, clk := newVerifier(t, nil)
	tok := rs256(t, claims(map[string]any{"exp": t0.Add(time.Minute).Unix()}))
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + 29*time.Second) // within the 30s leeway
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	clk.Advance(time.Second)
	_, err := v.Verify(t.Context(), tok)
	wantReason(t, err, ReasonTokenExpired)
	if n := v.cache.len(); n != 0 {
		t.Fatalf("the expired entry is still cached (%d entries)", n)
	}
}

func TestCacheChecksNotBefore(t *testing.T) {
	t.Parallel()
	v, clk := newVerifier(t, nil)
	tok := rs256(t, claims(map[string]any{"nbf": t0.Add(10 * time.Second).Unix()})) // valid thanks to leeway
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(-time.Minute) // the clock steps back
	_, err := v.Verify(t.Context(), tok)
	wantReason(t, err, ReasonTokenNotYetValid)
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	// Through Verify, one shard.
	clk := newClock()
	v, err := NewJWT(t.Context(), JWTConfig{
		Issuers:   []IssuerConfig{{Issuer: testIssuer, Secret: testSecret}},
		CacheSize: 10,
	}, JWTOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	for i := range 25 {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", nil, claims(map[string]any{"jti": fmt.Sprint(i)}))
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.cache.len(); got != 10 {
		t.Fatalf("%d entries, want 10", got)
	}
	// A sharded cache directly.
	for _, size := range []int{1024, 5000} {
		c := newTokenCache(size)
		e := cacheEntry{id: &Identity{}, until: t0.Add(time.Hour)}
		for i := range size * 2 {
			c.put(fmt.Sprintf("token-%d-signature", i), e, t0)
		}
		if got := c.len(); got > size || got < size*9/10 {
			t.Fatalf("size %d: %d entries", size, got)
		}
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	c := newTokenCache(4)
	live := cacheEntry{id: &Identity{}, until: t0.Add(time.Hour)}
	dead := cacheEntry{id: &Identity{}, until: t0.Add(time.Second)}
	c.put("live-1", live, t0)
	c.put("live-2", live, t0)
	c.put("dead-1", dead, t0)
	c.put("live-3", live, t0)
	now := t0.Add(time.Minute)
	c.put("live-4", live, now)
	for _, k := range []string{"live-1", "live-2", "live-3", "live-4"} {
		if _, ok := c.get(k, now); !ok {
			t.Errorf("%s was evicted before the expired entry", k)
		}
	}
}

func TestCacheOff(t *testing.T) {
	t.Parallel()
	v, _ := newVerifierSized(t, -1, nil)
	tok := rs256(t, claims(nil))
	id1, _ := v.Verify(t.Context(), tok)
	id2, err := v.Verify(t.Context(), tok)
	if err != nil || id1 == id2 || v.cache != nil {
		t.Fatalf("cache -1 still caches (%v)", err)
	}
}

// TestCacheDroppedKey: when the IdP drops a key from its JWK Set, tokens it
// signed are no longer served from the cache.
func TestCacheDroppedKey(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA()), pubKey(t, rsaKeyB())))
	v, clk, _ := remoteVerifier(t, srv, nil)
	tok := tokenB(t)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	srv.set(http.StatusOK, jwksDoc(t, pubKey(t, rsaKeyA())))
	clk.Advance(10 * time.Second)
	_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, rsaKeyA(), "unknown", nil, claims(nil)))
	wantReason(t, err, ReasonUnknownKID) // and the set was refetched without B
	_, err = v.Verify(t.Context(), tok)
	wantReason(t, err, ReasonUnknownKID)
}

func TestReloadStartsWithEmptyCache(t *testing.T) {
	t.Parallel()
	clk := newClock()
	cfg := JWTConfig{Issuers: []IssuerConfig{{Issuer: testIssuer, Keys: []string{writePEM(t, rsaKeyA())}}}}
	v1, err := NewJWT(t.Context(), cfg, JWTOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := rs256(t, claims(map[string]any{"aud": nil}))
	id1, err := v1.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewJWT(t.Context(), cfg, JWTOptions{Now: clk.Now, Previous: v1})
	if err != nil {
		t.Fatal(err)
	}
	v1.Close()
	t.Cleanup(v2.Close)
	if v2.cache.len() != 0 {
		t.Fatal("the new validator inherited cached tokens")
	}
	id2, err := v2.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == id2 {
		t.Fatal("the new validator served the old Identity")
	}
}
