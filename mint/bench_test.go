package mint

import (
	"testing"
	"time"
)

// BenchmarkAssertCached is the steady state of identity.assertion: a cache
// hit for a client seen within the last 3/4 ttl.
func BenchmarkAssertCached(b *testing.B) {
	a := NewAsserter(newSigner(b, testP256()), "gw", "up", time.Minute, AsserterOptions{Now: func() time.Time { return t0 }})
	c := testAssertion()
	if _, err := a.Assert("tok|orders", c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Assert("tok|orders", c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAssertUncached is one ES256 assertion signature (cache off).
func BenchmarkAssertUncached(b *testing.B) {
	a := NewAsserter(newSigner(b, testP256()), "gw", "up", time.Minute, AsserterOptions{Now: func() time.Time { return t0 }, CacheSize: -1})
	c := testAssertion()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Assert("tok|orders", c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMintAccessES256 is one access token minted at refresh.
func BenchmarkMintAccessES256(b *testing.B) {
	s := newSigner(b, testP256())
	in := Access{
		Issuer: "https://gw.example/", Audience: []string{"orders-api"}, Subject: "alice", SessionID: "h-123",
		Roles: []string{"admin", "ops"}, Scopes: []string{"orders:read"}, AMR: []string{"pwd", "otp"}, ACR: "urn:mfa",
		AuthTime: t0.Add(-time.Hour), IssuedAt: t0, TTL: 5 * time.Minute,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.MintAccess(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMintAccessEdDSA is the same with an Ed25519 key, for comparison.
func BenchmarkMintAccessEdDSA(b *testing.B) {
	s := newSigner(b, testEd())
	in := Access{Issuer: "https://gw.example/", Subject: "alice", SessionID: "h-123", IssuedAt: t0, TTL: 5 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.MintAccess(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyRingJWKS is serving the JWK Set document.
func BenchmarkKeyRingJWKS(b *testing.B) {
	r1 := NewKeyRing(t0, time.Minute, nil, newSigner(b, testP256()).Key())
	r := NewKeyRing(t0, time.Minute, r1, newSigner(b, testEd()).Key())
	b.ReportAllocs()
	for b.Loop() {
		_ = r.JWKS(t0)
	}
}
