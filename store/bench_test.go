package store

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/redistest"
)

func BenchmarkMemorySessionByID(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	defer m.Close()
	benchSessionByID(b, m)
}

func BenchmarkRedisSessionByID(b *testing.B) {
	srv := redistest.Start(b)
	benchSessionByID(b, openRedis(b, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{}))
}

// BenchmarkRedisSessionByIDParallel reads one session from 64 goroutines
// at a time, with reads pipelined under load (the default) and with every
// read its own round trip, for comparison. Run it with -cpu 1 to see the
// cost per read on one core, as the load harness does.
func BenchmarkRedisSessionByIDParallel(b *testing.B) {
	srv := redistest.Start(b)
	for _, bc := range []struct {
		name  string
		lanes int
	}{{"pipelined", 0}, {"unbatched", 1 << 30}} {
		b.Run(bc.name, func(b *testing.B) {
			st := openRedis(b, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
			if bc.lanes != 0 {
				st.reads = newReadBatcher(st.client, time.Second, bc.lanes, 1)
			}
			ctx := context.Background()
			c := mustCreate(b, st, NewSession{Subject: "alice", Roles: []string{"user", "admin"}, ACR: "mfa", TTL: time.Hour})
			b.ReportAllocs()
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.SessionByID(ctx, c.Secret); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func benchSessionByID(b *testing.B, st Store) {
	ctx := context.Background()
	c := mustCreate(b, st, NewSession{Subject: "alice", Roles: []string{"user", "admin"}, ACR: "mfa", TTL: time.Hour})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.SessionByID(ctx, c.Secret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryRotate(b *testing.B) {
	m := NewMemory(MemoryOptions{})
	defer m.Close()
	benchRotate(b, m)
}

func BenchmarkRedisRotate(b *testing.B) {
	srv := redistest.Start(b)
	benchRotate(b, openRedis(b, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{}))
}

// benchRotate rotates one family's token chain; each rotation includes
// drawing the next token (~256 SHA-256).
func benchRotate(b *testing.B, st Store) {
	ctx := context.Background()
	fam := mustCreate(b, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
	tok := fam.Secret
	o := RotateOptions{Grace: 10 * time.Second, Idle: time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		r, err := st.Rotate(ctx, tok, time.Now(), o)
		if err != nil {
			b.Fatal(err)
		}
		tok = r.Token
	}
}

func BenchmarkRedisCreateSession(b *testing.B) {
	srv := redistest.Start(b)
	st := openRedis(b, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.CreateSession(ctx, NewSession{Subject: "alice", TTL: time.Hour, MaxPerSubject: 5}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newSecret(0x2a)
	}
}
