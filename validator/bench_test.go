package validator

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func benchVerify(b *testing.B, cacheSize int, token string) {
	v, _ := newVerifierSized(b, cacheSize, nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRS256Cold is a full verification (cache off, 2048-bit key).
func BenchmarkVerifyRS256Cold(b *testing.B) {
	benchVerify(b, -1, rs256(b, claims(map[string]any{"roles": []string{"user"}, "scope": "read write"})))
}

// BenchmarkVerifyES256Cold is a full verification (cache off, P-256).
func BenchmarkVerifyES256Cold(b *testing.B) {
	benchVerify(b, -1, sign(b, jwt.SigningMethodES256, ecKeyA(), kidOf(b, ecKeyA()), nil,
		claims(map[string]any{"roles": []string{"user"}, "scope": "read write"})))
}

// BenchmarkVerifyCached is a cache hit.
func BenchmarkVerifyCached(b *testing.B) {
	benchVerify(b, 0, rs256(b, claims(nil)))
}

// BenchmarkVerifyCachedParallel is a cache hit from every CPU.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v, _ := newVerifier(b, nil)
	tok := rs256(b, claims(nil))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkExtract(b *testing.B) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+rs256(b, claims(nil)))
	r.Header.Set("Cookie", "theme=dark; lang=en; other=1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(r, "any", testCookie); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionAuthenticate(b *testing.B) {
	st := newFakeStore()
	sess := aliceSession()
	sess.LastSeenAt = t0
	id := st.add(sess)
	s, _ := newSessions(b, st, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
