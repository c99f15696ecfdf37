package mint

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testAssertion() *Assertion {
	return &Assertion{
		Subject:   "alice",
		Roles:     []string{"admin"},
		Scopes:    []string{"orders:read", "orders:write"},
		AMR:       []string{"pwd", "otp"},
		ACR:       "urn:mfa",
		AuthTime:  t0.Add(-time.Hour),
		SessionID: "h-1",
		TokenID:   "jti-1",
		Route:     "orders",
		RequestID: "req-1",
		Method:    "session",
	}
}

func TestAssertClaims(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testP256())
	clock := &fakeClock{now: t0.Add(300 * time.Millisecond)}
	a := NewAsserter(s, "https://gw.example/", "orders-api", time.Minute, AsserterOptions{Now: clock.Now})
	in := testAssertion()
	tok, err := a.Assert("k", in)
	if err != nil {
		t.Fatal(err)
	}
	hdr, c := verify(t, tok, s.Key(), t0)
	if hdr["typ"] != "JWT" {
		t.Errorf("typ = %v, want JWT", hdr["typ"])
	}
	want := []string{"iss", "aud", "sub", "iat", "exp", "jti", "roles", "scope", "acr", "amr", "auth_time", "sid", "tid", "route", "method"}
	got := claimNames(c)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("claims = %v, want exactly %v (no rid on a cached assertion)", got, want)
	}
	checks := []struct{ claim, want string }{
		{"iss", "https://gw.example/"}, {"aud", "orders-api"}, {"sub", "alice"}, {"scope", "orders:read orders:write"},
		{"acr", "urn:mfa"}, {"sid", "h-1"}, {"tid", "jti-1"}, {"route", "orders"}, {"method", "session"},
	}
	for _, ck := range checks {
		if v := claimString(t, c, ck.claim); v != ck.want {
			t.Errorf("%s = %q, want %q", ck.claim, v, ck.want)
		}
	}
	if v := claimInt(t, c, "iat"); v != t0.Unix() {
		t.Errorf("iat = %d, want %d", v, t0.Unix())
	}
	if v := claimInt(t, c, "exp"); v != t0.Add(time.Minute).Unix() {
		t.Errorf("exp = %d, want iat+ttl", v)
	}
	if v := claimInt(t, c, "auth_time"); v != in.AuthTime.Unix() {
		t.Errorf("auth_time = %d", v)
	}
	if v := claimStrings(t, c, "roles"); !slices.Equal(v, in.Roles) {
		t.Errorf("roles = %v", v)
	}
	if v := claimStrings(t, c, "amr"); !slices.Equal(v, in.AMR) {
		t.Errorf("amr = %v", v)
	}
	claimString(t, c, "jti")
}

func TestAssertOptionalClaims(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	a := NewAsserter(s, "", "", 0, AsserterOptions{Now: func() time.Time { return t0 }, CacheSize: -1})
	if a.TTL() != DefaultAssertionTTL {
		t.Errorf("TTL() = %v, want the default %v", a.TTL(), DefaultAssertionTTL)
	}
	tok, err := a.Assert("k", &Assertion{Subject: "bob", Route: "r", Method: "jwt", TokenID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, c := verify(t, tok, s.Key(), t0)
	for _, absent := range []string{"iss", "aud", "auth_time", "sid", "rid"} {
		if _, ok := c[absent]; ok {
			t.Errorf("claim %s = %v, want absent", absent, c[absent])
		}
	}
	if v := claimInt(t, c, "exp") - claimInt(t, c, "iat"); v != 60 {
		t.Errorf("exp-iat = %d, want 60", v)
	}
	if len(claimStrings(t, c, "roles")) != 0 || len(claimStrings(t, c, "amr")) != 0 {
		t.Errorf("roles/amr = %v/%v, want empty arrays", c["roles"], c["amr"])
	}

	for _, bad := range []*Assertion{nil, {Route: "r"}} {
		if _, err := a.Assert("k", bad); !errors.Is(err, ErrInvalidClaims) {
			t.Errorf("Assert(%+v) error = %v, want ErrInvalidClaims", bad, err)
		}
	}
}

func TestAssertCacheLifetime(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	clock := &fakeClock{now: t0}
	var signed atomic.Int64
	a := NewAsserter(s, "gw", "", time.Minute, AsserterOptions{Now: clock.Now, OnSign: func() { signed.Add(1) }})
	c := testAssertion()

	first, err := a.Assert("tok-A|orders", c)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		at      time.Duration // since t0
		key     string
		wantNew bool
	}{
		{"same key at once", 0, "tok-A|orders", false},
		{"same key later", 30 * time.Second, "tok-A|orders", false},
		{"exactly ttl/4 left", 45 * time.Second, "tok-A|orders", false},
		{"other key", 45 * time.Second, "tok-B|orders", true},
		{"less than ttl/4 left", 45*time.Second + time.Nanosecond, "tok-A|orders", true},
	}
	for _, st := range steps {
		clock.Set(t0.Add(st.at))
		before := signed.Load()
		tok, err := a.Assert(st.key, c)
		if err != nil {
			t.Fatal(err)
		}
		if isNew := tok != first; isNew != st.wantNew {
			t.Errorf("%s: new token = %v, want %v", st.name, isNew, st.wantNew)
		}
		if got := signed.Load() - before; got != int64(btoi(st.wantNew)) {
			t.Errorf("%s: %d signatures, want %d", st.name, got, btoi(st.wantNew))
		}
		if st.name == "less than ttl/4 left" {
			_, claims := verify(t, tok, s.Key(), clock.Now())
			if iat := claimInt(t, claims, "iat"); iat != t0.Add(45*time.Second).Unix() {
				t.Errorf("re-signed assertion iat = %d, want %d", iat, t0.Add(45*time.Second).Unix())
			}
			// The renewed assertion is now the cached one.
			if again, _ := a.Assert(st.key, c); again != tok {
				t.Error("renewed assertion was not cached")
			}
		}
	}
}

func TestAssertPerRequest(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	var signed atomic.Int64
	a := NewAsserter(s, "gw", "", time.Minute, AsserterOptions{
		Now: func() time.Time { return t0 }, PerRequest: true, OnSign: func() { signed.Add(1) },
	})
	if a.cache != nil {
		t.Fatal("PerRequest Asserter has a cache")
	}
	c1, c2 := testAssertion(), testAssertion()
	c2.RequestID = "req-2"
	seen := map[string]bool{}
	for i, c := range []*Assertion{c1, c1, c2} {
		tok, err := a.Assert("same-key", c)
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Errorf("call %d reused an assertion in PerRequest mode", i)
		}
		seen[tok] = true
		_, claims := verify(t, tok, s.Key(), t0)
		if rid := claimString(t, claims, "rid"); rid != c.RequestID {
			t.Errorf("call %d: rid = %q, want %q", i, rid, c.RequestID)
		}
	}
	if signed.Load() != 3 {
		t.Errorf("%d signatures for 3 calls, want 3", signed.Load())
	}
}

func TestAssertCacheOff(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	a := NewAsserter(s, "gw", "", time.Minute, AsserterOptions{Now: func() time.Time { return t0 }, CacheSize: -1})
	t1, err := a.Assert("k", testAssertion())
	if err != nil {
		t.Fatal(err)
	}
	t2, err := a.Assert("k", testAssertion())
	if err != nil {
		t.Fatal(err)
	}
	if t1 == t2 {
		t.Error("cache off, yet the same assertion came back")
	}
	_, c := verify(t, t2, s.Key(), t0)
	if _, ok := c["rid"]; ok {
		t.Error("rid present without PerRequest")
	}
}

func TestAssertCacheBounded(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	for _, size := range []int{1, 8, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{now: t0}
			a := NewAsserter(s, "gw", "", time.Minute, AsserterOptions{Now: clock.Now, CacheSize: size})
			for i := range 3 * size {
				if _, err := a.Assert(fmt.Sprint("key-", i), testAssertion()); err != nil {
					t.Fatal(err)
				}
				if n := a.cache.size(); n > size {
					t.Fatalf("cache holds %d entries, bound %d", n, size)
				}
			}
			// Once every entry is stale, new keys sweep the old ones out and
			// are cached themselves.
			clock.Set(t0.Add(time.Hour))
			for i := range size {
				key := fmt.Sprint("fresh-", i)
				tok, err := a.Assert(key, testAssertion())
				if err != nil {
					t.Fatal(err)
				}
				if again, _ := a.Assert(key, testAssertion()); again != tok {
					t.Fatalf("fresh key %s not cached", key)
				}
			}
			if n := a.cache.size(); n > size {
				t.Fatalf("cache holds %d entries, bound %d", n, size)
			}
		})
	}
}

func TestAssertConcurrent(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testP256())
	var now atomic.Int64
	now.Store(t0.UnixNano())
	a := NewAsserter(s, "gw", "up", 4*time.Second, AsserterOptions{
		Now:       func() time.Time { return time.Unix(0, now.Load()) },
		CacheSize: 16,
	})
	const goroutines, calls, nkeys = 8, 200, 24 // more keys than the cache holds
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				if g == 0 && i%20 == 0 {
					now.Add(int64(500 * time.Millisecond)) // time passes: some entries renew
				}
				k := (g*calls + i) % nkeys
				c := &Assertion{Subject: fmt.Sprint("user-", k), Route: "r", Method: "jwt"}
				before := time.Unix(0, now.Load()) // the token is still valid then
				tok, err := a.Assert(fmt.Sprint("key-", k), c)
				if err != nil {
					errs <- err
					return
				}
				claims := jwt.MapClaims{}
				_, err = jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.Key().Public, nil },
					jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return before }))
				if err != nil || claims["sub"] != c.Subject {
					errs <- fmt.Errorf("key-%d answered with sub %v (%v)", k, claims["sub"], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := a.cache.size(); n > 16 {
		t.Errorf("cache holds %d entries, bound 16", n)
	}
}

func TestAssertCacheHitDoesNotAllocate(t *testing.T) {
	s := newSigner(t, testEd())
	a := NewAsserter(s, "gw", "", time.Minute, AsserterOptions{Now: func() time.Time { return t0 }})
	c := testAssertion()
	if _, err := a.Assert("k", c); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := a.Assert("k", c); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("cached Assert allocates %.1f times per call, want 0", n)
	}
}
