package store

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/internal/redistest"
)

// prefixes keeps the stores that share one Redis apart.
var prefixes atomic.Int64

// openRedis returns a Redis store for cfg with a fresh key prefix (unless
// cfg sets one), closed at cleanup.
func openRedis(t testing.TB, cfg RedisConfig, opts RedisOptions) *Redis {
	t.Helper()
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = fmt.Sprintf("t%d:", prefixes.Add(1))
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	r, err := NewRedis(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func redisOpener(cfg RedisConfig) opener {
	return func(t *testing.T, now func() time.Time) Store {
		return openRedis(t, cfg, RedisOptions{Now: now})
	}
}

func TestRedisConformance(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	runConformance(t, redisOpener(RedisConfig{Addrs: []string{srv.Addr()}}))
}

func TestRedisClusterConformance(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	cfg := RedisConfig{Addrs: cl.Addrs()}
	runConformance(t, redisOpener(cfg))

	// Sessions of different subjects land on every master, and every
	// operation of a subject still works from one slot.
	t.Run("SpreadOverMasters", func(t *testing.T) {
		ctx := context.Background()
		st := openRedis(t, cfg, RedisOptions{})
		for i := range 24 {
			sub := fmt.Sprintf("user-%d", i)
			mustCreate(t, st, NewSession{Subject: sub, TTL: time.Hour, MaxPerSubject: 2})
			fam := mustCreate(t, st, NewSession{Subject: sub, TTL: time.Hour, Mode: ModeTokens, MaxPerSubject: 2})
			if _, err := st.Rotate(ctx, fam.Secret, time.Now(), RotateOptions{Grace: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if d, err := st.DeleteSubjectSessions(ctx, sub); err != nil || len(d) != 2 {
				t.Fatalf("DeleteSubjectSessions(%s) = %d, %v", sub, len(d), err)
			}
			mustCreate(t, st, NewSession{Subject: sub, TTL: time.Hour})
		}
		for _, s := range cl.Servers() {
			keys, err := s.Client(t).Keys(ctx, st.prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) == 0 {
				t.Errorf("master %s holds no session", s.Addr())
			}
		}
	})
}

func TestRedisSentinelConformance(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, "portcullis")
	runConformance(t, redisOpener(RedisConfig{Addrs: s.Addrs(), MasterName: s.MasterName()}))
}

func TestNewRedisConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     RedisConfig
		wantErr bool
	}{
		{"defaults", RedisConfig{}, false},
		{"cluster", RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, false},
		{"sentinel with db", RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "m", DB: 2}, false},
		{"cluster with db", RedisConfig{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, DB: 1}, true},
		{"negative db", RedisConfig{DB: -1}, true},
		{"negative timeout", RedisConfig{Timeout: -time.Second}, true},
		{"empty addr", RedisConfig{Addrs: []string{""}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Nothing listens on these addresses: NewRedis must not connect.
			r, err := NewRedis(tt.cfg, RedisOptions{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewRedis err = %v, wantErr %v", err, tt.wantErr)
			}
			if r != nil {
				if r.prefix != defaultKeyPrefix || r.timeout != defaultTimeout || r.channel != "portcullis:events" {
					t.Fatalf("defaults: prefix %q timeout %s channel %q", r.prefix, r.timeout, r.channel)
				}
				_ = r.Close()
			}
		})
	}
}

// TestRedisNoSecretsStored dumps every key and value and looks for any
// session ID or refresh token the store ever handed out, in text and raw.
func TestRedisNoSecretsStored(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	var secrets []string
	for i := range 5 {
		sub := fmt.Sprintf("user-%d", i)
		s := mustCreate(t, st, NewSession{Subject: sub, TTL: time.Hour, Idle: time.Minute, Roles: []string{"r"}})
		secrets = append(secrets, s.Secret)
		fam := mustCreate(t, st, NewSession{Subject: sub, TTL: time.Hour, Mode: ModeTokens})
		secrets = append(secrets, fam.Secret)
		tok := fam.Secret
		for range 3 {
			r, err := st.Rotate(ctx, tok, time.Now(), RotateOptions{Grace: time.Minute, Idle: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			replay, err := st.Rotate(ctx, tok, time.Now(), RotateOptions{Grace: time.Minute, Idle: time.Hour})
			if err != nil || !replay.Replayed || replay.Token == r.Token {
				t.Fatalf("replay: %+v, %v", replay, err)
			}
			secrets = append(secrets, r.Token, replay.Token)
			tok = r.Token
		}
	}
	if err := st.AddRevocation(ctx, Revocation{Kind: KindToken, Issuer: "i", ID: "j", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	rc := srv.Client(t)
	var cursor uint64
	nkeys := 0
	for {
		keys, next, err := rc.Scan(ctx, cursor, "*", 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			nkeys++
			dump := k + "\x00" + dumpKey(t, rc, k)
			for _, s := range secrets {
				raw, _ := base64.RawURLEncoding.DecodeString(s)
				if strings.Contains(dump, s) || strings.Contains(dump, string(raw)) {
					t.Errorf("key %q or its value holds a secret", k)
				}
			}
			if strings.Contains(k, "{g") {
				if ttl, err := rc.PTTL(ctx, k).Result(); err != nil || ttl <= 0 {
					t.Errorf("key %q has no TTL (%v, %v)", k, ttl, err)
				}
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	// 5 subjects: 2 records, an index, 7 pointers (the first token, 3
	// rotations, 3 replays) and a pointer set each; plus the revocation
	// entry, index and ID lookup.
	if want := 5*(2+1+7+1) + 3; nkeys != want {
		t.Fatalf("%d keys, want %d", nkeys, want)
	}
}

// dumpKey is every byte a key holds.
func dumpKey(t *testing.T, rc *redis.Client, k string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := rc.Type(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	switch typ {
	case "string":
		v, err := rc.Get(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v)
	case "hash":
		m, err := rc.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			parts = append(parts, f, v)
		}
	case "zset":
		zs, err := rc.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zs {
			parts = append(parts, fmt.Sprint(z.Member), fmt.Sprint(z.Score))
		}
	default:
		t.Fatalf("key %q has unexpected type %s", k, typ)
	}
	return strings.Join(parts, "\x00")
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// commandStats is INFO commandstats: command -> calls.
func commandStats(t *testing.T, rc *redis.Client) map[string]int {
	t.Helper()
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("commandstats line %q", sc.Text())
		}
		out[name] = n
	}
	return out
}

// statsDelta is after - before, for the commands that changed, without the
// INFO that read them.
func statsDelta(before, after map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range after {
		if n := v - before[k]; n != 0 && k != "info" {
			d[k] = n
		}
	}
	return d
}

// countHook counts the commands the client sends (a pipeline counts each).
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisCommandsPerCall checks the hot paths' cost in Redis: one read
// command per SessionByID, one script per Rotate.
func TestRedisCommandsPerCall(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}, PoolSize: 1}, RedisOptions{})
	hook := &countHook{}
	st.client.AddHook(hook)
	rc := srv.Client(t)

	s := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
	fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
	o := RotateOptions{Grace: time.Minute, Idle: time.Hour}
	warm, err := st.Rotate(ctx, fam.Secret, time.Now(), o) // loads the script
	if err != nil {
		t.Fatal(err)
	}

	onlyRead := func(d map[string]int) error {
		if len(d) != 1 || d["hmget"] != 1 {
			return fmt.Errorf("ran %v, want exactly one HMGET", d)
		}
		return nil
	}
	oneScript := func(d map[string]int) error {
		if d["evalsha"] != 1 || d["eval"] != 0 {
			return fmt.Errorf("ran %v, want exactly one EVALSHA", d)
		}
		return nil
	}
	for _, tt := range []struct {
		name  string
		call  func() error
		check func(map[string]int) error
	}{
		{"SessionByID", func() error { _, err := st.SessionByID(ctx, s.Secret); return err }, onlyRead},
		{"SessionByID unknown", func() error {
			_, err := st.SessionByID(ctx, "nope")
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}, onlyRead},
		{"Rotate", func() error { _, err := st.Rotate(ctx, warm.Token, time.Now(), o); return err }, oneScript},
		{"Rotate replay", func() error { _, err := st.Rotate(ctx, warm.Token, time.Now(), o); return err }, oneScript},
	} {
		before := commandStats(t, rc)
		sent := hook.n.Load()
		if err := tt.call(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if n := hook.n.Load() - sent; n != 1 {
			t.Errorf("%s sent %d commands, want 1 round trip", tt.name, n)
		}
		if err := tt.check(statsDelta(before, commandStats(t, rc))); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestRedisKeyTTLs checks the real expiry of keys: every session, family
// and pointer key ends by itself, at the times the contract says.
func TestRedisKeyTTLs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	rc := srv.Client(t)
	pttl := func(key string) time.Duration {
		t.Helper()
		d, err := rc.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	within := func(what string, got, want time.Duration) {
		t.Helper()
		// The TTL was set a moment ago: it may have shrunk a little.
		if got > want || got < want-5*time.Second {
			t.Errorf("%s TTL = %s, want about %s", what, got, want)
		}
	}

	// An opaque session: min(ExpiresAt, now+idle), slid by touches.
	s := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Idle: 10 * time.Minute})
	g := group("alice")
	sk := st.sessionKey(g, s.Session.Handle)
	within("session", pttl(sk), 10*time.Minute)
	within("subject index", pttl(st.subjectKey(g, subjectHash("alice"))), time.Hour)
	if err := st.TouchSession(ctx, s.Session.Handle, time.Now(), 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	within("touched session", pttl(sk), 30*time.Minute)
	if err := st.TouchSession(ctx, s.Session.Handle, time.Now(), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	within("session touched past its end", pttl(sk), time.Hour)

	// A family: the record and the current pointer follow the idle; a
	// replaced pointer stays as long as the family could be used.
	fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: 2 * time.Hour, Idle: 20 * time.Minute, Mode: ModeTokens})
	fk := st.sessionKey(g, fam.Session.Handle)
	first := st.pointerKey(g, tokenName(secretHash(fam.Secret)))
	within("family", pttl(fk), 20*time.Minute)
	within("first pointer", pttl(first), 20*time.Minute)
	within("pointer set", pttl(st.pointersKey(g, fam.Session.Handle)), 2*time.Hour)
	r, err := st.Rotate(ctx, fam.Secret, time.Now(), RotateOptions{Grace: time.Second, Idle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	within("rotated family", pttl(fk), time.Hour)
	within("replaced pointer", pttl(first), time.Hour)
	within("current pointer", pttl(st.pointerKey(g, tokenName(secretHash(r.Token)))), time.Hour)

	// Real expiry, with the real clock.
	short := mustCreate(t, st, NewSession{Subject: "bob", TTL: 1500 * time.Millisecond})
	shortFam := mustCreate(t, st, NewSession{Subject: "bob", TTL: 1500 * time.Millisecond, Mode: ModeTokens})
	rev := Revocation{Kind: KindToken, Issuer: "i", ID: "j", ExpiresAt: time.Now().Add(1500 * time.Millisecond)}
	if err := st.AddRevocation(ctx, rev); err != nil {
		t.Fatal(err)
	}
	gb := group("bob")
	keys := []string{
		st.sessionKey(gb, short.Session.Handle),
		st.sessionKey(gb, shortFam.Session.Handle),
		st.pointerKey(gb, tokenName(secretHash(shortFam.Secret))),
		st.pointersKey(gb, shortFam.Session.Handle),
		st.subjectKey(gb, subjectHash("bob")),
		st.revEntryKey(rev.Key()),
		st.revIDKey(rev.ID),
	}
	waitFor(t, 10*time.Second, "the short-lived keys to expire", func() bool {
		n, err := rc.Exists(ctx, keys...).Result()
		return err == nil && n == 0
	})
	_, err = st.SessionByID(ctx, short.Secret)
	wantNotFound(t, "expired session", err)
	_, err = st.Rotate(ctx, shortFam.Secret, time.Now(), RotateOptions{})
	wantNotFound(t, "expired family", err)
	if ok, err := st.HasRevocation(ctx, rev.Key()); ok || err != nil {
		t.Fatalf("HasRevocation after expiry = %v, %v", ok, err)
	}
	// The scan drops the expired entry from the index.
	if n, _ := rc.ZCard(ctx, st.revIndexKey()).Result(); n != 1 {
		t.Fatalf("index holds %d entries before the scan, want 1", n)
	}
	if got := scanRevocations(t, st, time.Now()); len(got) != 0 {
		t.Fatalf("scan = %+v", got)
	}
	if n, _ := rc.ZCard(ctx, st.revIndexKey()).Result(); n != 0 {
		t.Fatalf("index holds %d entries after the scan, want 0", n)
	}
}

// TestRedisSubscribeSurvivesRestart checks that a subscription comes back
// after Redis restarts, calls onSubscribed again and delivers new events.
func TestRedisSubscribeSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	m := metrics.New()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}, Timeout: 500 * time.Millisecond}, RedisOptions{Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subscribed atomic.Int64
	events := make(chan Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- st.Subscribe(ctx, func(e Event) { events <- e }, func() { subscribed.Add(1) })
	}()
	waitFor(t, 10*time.Second, "the first subscription", func() bool { return subscribed.Load() == 1 })

	srv.Stop(t)
	srv.Restart(t)
	waitFor(t, 20*time.Second, "the resubscription", func() bool { return subscribed.Load() == 2 })
	if n := counterValue(t, m.StoreErrors); n < 1 {
		t.Errorf("StoreErrors = %v after a lost subscription, want >= 1", n)
	}

	r := Revocation{Kind: KindSession, ID: "AAAAAAAAAAAAAAAAAAAAAA", ExpiresAt: time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())}
	if err := st.AddRevocation(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Revocation == nil || !sameRevocation(*e.Revocation, r) {
			t.Fatalf("event = %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event after the restart")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v", err)
	}
}

// TestRedisSubscribeIgnoresMalformed checks that garbage on the channel is
// skipped without dropping the subscription.
func TestRedisSubscribeIgnoresMalformed(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribed := make(chan struct{}, 4)
	events := make(chan Event, 16)
	go func() { _ = st.Subscribe(ctx, func(e Event) { events <- e }, func() { subscribed <- struct{}{} }) }()
	<-subscribed
	rc := srv.Client(t)
	for _, bad := range []string{"not json", `{"p":1}`, `{"r":{"k":"nope","j":"x","e":1},"p":1}`, `{"c":{"k":"subject"},"p":1}`} {
		if err := rc.Publish(ctx, st.channel, bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c := Cutoff{Kind: CutoffSession, Name: "h", Before: time.UnixMilli(1000), ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	if err := st.AddCutoff(ctx, c); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Cutoff == nil || !sameCutoff(*e.Cutoff, c) {
			t.Fatalf("first delivered event = %+v, want the cutoff", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	select {
	case <-subscribed:
		t.Fatal("the subscription was dropped")
	default:
	}
}

// TestRedisUnavailable checks that a Redis that is down or hangs gives a
// technical error, never ErrNotFound, within the configured timeout, and
// that it is counted.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	// A listener that accepts and never answers: only the timeout ends a call.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	accepting := make(chan struct{})
	defer func() {
		hang.Close()
		<-accepting
		conns.Wait()
	}()
	go func() {
		defer close(accepting)
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				_, _ = bufio.NewReader(c).ReadString(0) // until the client gives up
				c.Close()
			})
		}
	}()
	stopped := redistest.Start(t)
	stopped.Stop(t)

	for _, tt := range []struct {
		name string
		addr string
	}{{"stopped", stopped.Addr()}, {"hanging", hang.Addr().String()}} {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New()
			st := openRedis(t, RedisConfig{Addrs: []string{tt.addr}, Timeout: timeout}, RedisOptions{Metrics: m})
			ctx := context.Background()
			calls := []struct {
				name string
				call func() error
			}{
				{"Ping", func() error { return st.Ping(ctx) }},
				{"SessionByID", func() error { _, err := st.SessionByID(ctx, "x"); return err }},
				{"SessionByHandle", func() error { _, err := st.SessionByHandle(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); return err }},
				{"CreateSession", func() error {
					_, err := st.CreateSession(ctx, NewSession{Subject: "a", TTL: time.Hour})
					return err
				}},
				{"Rotate", func() error { _, err := st.Rotate(ctx, "x", time.Now(), RotateOptions{}); return err }},
				{"HasRevocation", func() error { _, err := st.HasRevocation(ctx, "k"); return err }},
				{"FindRevocation", func() error { _, err := st.FindRevocation(ctx, "k"); return err }},
				{"ScanRevocations", func() error {
					return st.ScanRevocations(ctx, time.Now(), func(Revocation) error { return nil })
				}},
			}
			for i, c := range calls {
				start := time.Now()
				err := c.call()
				elapsed := time.Since(start)
				if err == nil || errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "store: ") {
					t.Errorf("%s: err = %v, want a wrapped technical error", c.name, err)
				}
				// Generous bound: the point is that the timeout ends the call.
				if elapsed > timeout+2*time.Second {
					t.Errorf("%s took %s with a %s timeout", c.name, elapsed, timeout)
				}
				t.Logf("%s failed after %s: %v", c.name, elapsed.Round(time.Millisecond), err)
				if n := counterValue(t, m.StoreErrors); n != float64(i+1) {
					t.Errorf("after %s StoreErrors = %v, want %d", c.name, n, i+1)
				}
			}
		})
	}
}

// TestRedisScanMillion checks that a million revocations scan completely
// and in pages.
func TestRedisScanMillion(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	rc := srv.Client(t)
	const n, batch = 1_000_000, 10_000
	exp := float64(time.Now().Add(time.Hour).UnixMilli())
	pipe := rc.Pipeline()
	for start := 0; start < n; start += batch {
		zs := make([]redis.Z, batch)
		for i := range zs {
			zs[i] = redis.Z{Score: exp, Member: SessionKey(idOf(start + i))}
		}
		pipe.ZAdd(ctx, st.revIndexKey(), zs...)
	}
	// An expired entry, which the scan drops.
	pipe.ZAdd(ctx, st.revIndexKey(), redis.Z{Score: 1, Member: SessionKey("gone")})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	checkMillion(t, st, time.Now(), n)
	if c, _ := rc.ZCard(ctx, st.revIndexKey()).Result(); c != n {
		t.Fatalf("index holds %d after the scan, want %d", c, n)
	}
}

// twiceHook runs every script twice, as a client retry after a lost reply
// would.
type twiceHook struct{}

func (twiceHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (twiceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "evalsha" || cmd.Name() == "eval" {
			if err := next(ctx, cmd); err != nil {
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (twiceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRedisScriptsAreRetrySafe checks that creation, rotation and a replay,
// run again after they succeeded (go-redis retries a command whose reply was
// lost), give the answer of the first run instead of an error or a reuse.
func TestRedisScriptsAreRetrySafe(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	st.client.AddHook(twiceHook{})
	s := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
	if _, err := st.SessionByID(ctx, s.Secret); err != nil {
		t.Fatal(err)
	}
	fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
	r, err := st.Rotate(ctx, fam.Secret, time.Now(), RotateOptions{}) // no grace: a replay would be a reuse
	if err != nil || r.Replayed || r.Session.Generation != 2 {
		t.Fatalf("Rotate run twice = %+v, %v; want one rotation", r, err)
	}
	r2, err := st.Rotate(ctx, r.Token, time.Now(), RotateOptions{})
	if err != nil || r2.Session.Generation != 3 {
		t.Fatalf("the returned token does not work: %+v, %v", r2, err)
	}
	// A replay within the grace, run twice, adds one token to the
	// generation, and that token works.
	rp, err := st.Rotate(ctx, r.Token, time.Now(), RotateOptions{Grace: time.Minute})
	if err != nil || !rp.Replayed || rp.Session.Generation != 3 {
		t.Fatalf("replay run twice = %+v, %v", rp, err)
	}
	cur, err := srv.Client(t).HGet(ctx, st.sessionKey(group("alice"), fam.Session.Handle), fCurrent).Result()
	if err != nil || strings.Count(cur, ",") != 1 {
		t.Fatalf("current tokens after one replay run twice: %q (%v); want 2 names", cur, err)
	}
	if r3, err := st.Rotate(ctx, rp.Token, time.Now(), RotateOptions{}); err != nil || r3.Session.Generation != 4 {
		t.Fatalf("the replay's token does not work: %+v, %v", r3, err)
	}
}
