package validator

import (
	"bytes"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/portcullis/portcullis/internal/metrics"
)

// remoteVerifier builds a verifier whose only key source is srv.
func remoteVerifier(t testing.TB, srv *jwksServer, mod func(*IssuerConfig, *JWTOptions)) (*JWT, *fakeClock, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	v, clk := newVerifier(t, func(ic *IssuerConfig, o *JWTOptions) {
		ic.Keys = nil
		ic.JWKSURL = srv.URL
		o.Metrics = m
		o.retryBase = 10 * time.Millisecond
		if mod != nil {
			mod(ic, o)
		}
	})
	return v, clk, m
}

// refreshCount reads portcullis_jwks_refresh_total{issuer,result}.
func refreshCount(t testing.TB, m *metrics.Metrics, result string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_jwks_refresh_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["issuer"] == testIssuer && labels["result"] == result {
				return mt.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func tokenB(t testing.TB) string {
	return sign(t, jwt.SigningMethodRS256, rsaKeyB(), kidOf(t, rsaKeyB()), nil, claims(nil))
}

func TestJWKSRotationAndRateLimit(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA())))
	v, clk, m := remoteVerifier(t, srv, nil)
	if err := v.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := v.Verify(t.Context(), rs256(t, claims(nil))); err != nil {
		t.Fatalf("key A: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}

	// The IdP rotates to key B: the unknown kid refetches once, without a restart.
	srv.set(http.StatusOK, jwksDoc(t, pubKey(t, rsaKeyA()), pubKey(t, rsaKeyB())))
	if _, err := v.Verify(t.Context(), tokenB(t)); err != nil {
		t.Fatalf("key B after rotation: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", n)
	}

	// Unknown kids within 10 s (even many at once) do not refetch.
	unknown := sign(t, jwt.SigningMethodRS256, rsaKeyA(), "no-such-kid", nil, claims(nil))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), unknown)
			if ReasonOf(err) != ReasonUnknownKID {
				t.Errorf("err = %v", err)
			}
		})
	}
	wg.Wait()
	clk.Advance(9 * time.Second)
	_, err := v.Verify(t.Context(), unknown)
	wantReason(t, err, ReasonUnknownKID)
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches within 10s = %d, want 2", n)
	}
	// 10 s after the last refetch, one more is allowed.
	clk.Advance(time.Second)
	_, err = v.Verify(t.Context(), unknown)
	wantReason(t, err, ReasonUnknownKID)
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("fetches after 10s = %d, want 3", n)
	}
	if ok := refreshCount(t, m, "ok"); ok != 3 {
		t.Fatalf("refresh ok = %v, want 3", ok)
	}
}

func TestJWKSConcurrentRotation(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA())))
	v, _, _ := remoteVerifier(t, srv, nil)
	srv.set(http.StatusOK, jwksDoc(t, pubKey(t, rsaKeyB())))
	// Concurrent first requests with the new kid share one refetch.
	tok := tokenB(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	okCount := 0
	for range 10 {
		wg.Go(func() {
			if _, err := v.Verify(t.Context(), tok); err == nil {
				mu.Lock()
				okCount++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	if okCount != 10 {
		t.Fatalf("%d of 10 concurrent requests verified with the rotated key", okCount)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	// Key A was dropped by the IdP.
	_, err := v.Verify(t.Context(), rs256(t, claims(nil)))
	wantReason(t, err, ReasonUnknownKID)
}

func TestJWKSBadRefreshKeepsLastGood(t *testing.T) {
	t.Parallel()
	good := jwksDoc(t, pubKey(t, rsaKeyA()))
	srv := newJWKSServer(t, good)
	v, clk, m := remoteVerifier(t, srv, nil)
	tokA := rs256(t, claims(nil))
	if _, err := v.Verify(t.Context(), tokA); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name   string
		status int
		body   []byte
	}{
		{"server error", http.StatusInternalServerError, []byte("oops")},
		{"html", http.StatusOK, []byte("<html>maintenance</html>")},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"null", http.StatusOK, []byte(`null`)},
		{"only a symmetric key", http.StatusOK, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}`)},
		{"only encryption keys", http.StatusOK, bytes.Replace(good, []byte(`"use":"sig"`), []byte(`"use":"enc"`), 1)},
		{"too large", http.StatusOK, append(append([]byte(`{"keys":[`), bytes.Repeat([]byte(" "), 2<<20)...), []byte(`]}`)...)},
	}
	unknown := sign(t, jwt.SigningMethodRS256, rsaKeyA(), "rotated?", nil, claims(nil))
	for i, b := range bad {
		srv.set(b.status, b.body)
		clk.Advance(10 * time.Second) // let the unknown-kid refetch through
		before := srv.fetches.Load()
		_, err := v.Verify(t.Context(), unknown)
		wantReason(t, err, ReasonUnknownKID)
		if srv.fetches.Load() != before+1 {
			t.Fatalf("%s: no refetch", b.name)
		}
		if got := refreshCount(t, m, "error"); got != float64(i+1) {
			t.Fatalf("%s: refresh errors = %v, want %d", b.name, got, i+1)
		}
		if _, err := v.Verify(t.Context(), rs256(t, claims(map[string]any{"jti": b.name}))); err != nil {
			t.Fatalf("%s: the last good key was lost: %v", b.name, err)
		}
		if err := v.Ready(); err != nil {
			t.Fatalf("%s: Ready = %v", b.name, err)
		}
		st := v.Status()[0]
		if !st.Ready || st.Keys != 1 || st.LastError == "" || st.LastErrorAt.IsZero() || st.LastRefresh.IsZero() {
			t.Fatalf("%s: Status = %+v", b.name, st)
		}
	}
	js, err := v.Status()[0].MarshalJSON()
	if err != nil || !bytes.Contains(js, []byte(`"last_refresh":`)) || !bytes.Contains(js, []byte(`"last_error":`)) {
		t.Fatalf("status JSON %s, %v", js, err)
	}
}

func TestJWKSNeverLoaded(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusServiceUnavailable, []byte("down"))
	v, _, m := remoteVerifier(t, srv, nil)
	err := v.Ready()
	if err == nil || !strings.Contains(err.Error(), testIssuer) || !strings.Contains(err.Error(), "never loaded") {
		t.Fatalf("Ready = %v", err)
	}
	if st := v.Status()[0]; st.Ready || st.Keys != 0 || st.LastError == "" {
		t.Fatalf("Status = %+v", st)
	}
	_, err = v.Verify(t.Context(), rs256(t, claims(nil)))
	wantReason(t, err, ReasonKeysUnavailable)
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable (a technical failure)", err)
	}
	if refreshCount(t, m, "error") < 1 {
		t.Fatal("the failed first fetch is not counted")
	}
	// The IdP comes back: the retry loop loads the set without a token.
	srv.set(http.StatusOK, jwksDoc(t, pubKey(t, rsaKeyA())))
	waitFor(t, 5*time.Second, "Ready", func() bool { return v.Ready() == nil })
	if _, err := v.Verify(t.Context(), rs256(t, claims(nil))); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA())))
	v, _, m := remoteVerifier(t, srv, func(ic *IssuerConfig, _ *JWTOptions) { ic.JWKSRefresh = time.Second })
	srv.set(http.StatusOK, jwksDoc(t, pubKey(t, rsaKeyA()), pubKey(t, rsaKeyB())))
	waitFor(t, 10*time.Second, "a periodic refresh", func() bool { return v.Status()[0].Keys == 2 })
	if refreshCount(t, m, "ok") < 2 {
		t.Fatal("periodic refresh not counted")
	}
	fetches := srv.fetches.Load()
	if _, err := v.Verify(t.Context(), tokenB(t)); err != nil {
		t.Fatal(err)
	}
	if srv.fetches.Load() != fetches {
		t.Fatal("a known kid caused a fetch")
	}
}

// jwksGoroutines counts jwkset's refresh goroutines.
func jwksGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("jwkset.NewStorageFromHTTP.func"))
}

// TestJWKSPreviousReuse is not parallel: it counts goroutines.
func TestJWKSPreviousReuse(t *testing.T) {
	waitFor(t, 5*time.Second, "other tests' refreshes to stop", func() bool { return jwksGoroutines() == 0 })
	srv := newJWKSServer(t, jwksDoc(t, pubKey(t, rsaKeyA())))
	cfg := func(refresh time.Duration) JWTConfig {
		return JWTConfig{Issuers: []IssuerConfig{{Issuer: testIssuer, JWKSURL: srv.URL, JWKSRefresh: refresh}}}
	}
	clk := newClock()
	v1, err := NewJWT(t.Context(), cfg(time.Second), JWTOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewJWT(t.Context(), cfg(time.Second), JWTOptions{Now: clk.Now, Previous: v1})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after the rebuild = %d, want 1", n)
	}
	if err := v2.Ready(); err != nil {
		t.Fatalf("the rebuilt validator is not ready: %v", err)
	}
	v1.Close()
	v1.Close() // idempotent
	// v2 still refreshes the shared set.
	waitFor(t, 10*time.Second, "a refresh after the old validator closed", func() bool { return srv.fetches.Load() >= 2 })
	if _, err := v2.Verify(t.Context(), rs256(t, claims(map[string]any{"aud": nil}))); err != nil {
		t.Fatal(err)
	}
	// A refresh in progress may briefly run a second goroutine.
	waitFor(t, 5*time.Second, "exactly one refresh goroutine", func() bool { return jwksGoroutines() == 1 })
	// A changed jwks_refresh is a new set: fetched again.
	before := srv.fetches.Load()
	v3, err := NewJWT(t.Context(), cfg(2*time.Second), JWTOptions{Now: clk.Now, Previous: v2})
	if err != nil {
		t.Fatal(err)
	}
	if srv.fetches.Load() != before+1 {
		t.Fatal("a changed jwks_refresh reused the old set")
	}
	v2.Close()
	v3.Close()
	waitFor(t, 5*time.Second, "refresh goroutines to stop", func() bool { return jwksGoroutines() == 0 })
}
