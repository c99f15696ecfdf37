package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis/portcullis/store"
)

// redisServer is the harness's own redis-server on a free loopback port.
type redisServer struct {
	addr   string
	proc   *proc
	client *redis.Client
}

// startRedis runs redis-server (no persistence) pinned to cpu.
func startRedis(ctx context.Context, ps *procs, cpu int, dir string) (*redisServer, error) {
	var lastErr error
	for attempt := range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := ps.start(fmt.Sprintf("redis-%d", attempt), cpu, nil, "redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--maxclients", "10000")
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		rs := &redisServer{addr: addr, proc: p, client: redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})}
		deadline := time.Now().Add(15 * time.Second)
		for {
			lastErr = rs.client.Ping(ctx).Err()
			if lastErr == nil {
				return rs, nil
			}
			if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		rs.client.Close()
		p.stop(time.Second)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !strings.Contains(p.output(), "in use") {
			return nil, fmt.Errorf("redis-server did not start: %v\n%s", lastErr, p.tail(2000))
		}
	}
	return nil, fmt.Errorf("redis-server: no free port: %v", lastErr)
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// housekeeping are the commands not counted per request: the harness's own
// INFO, health checks, connection set-up, revocation pub/sub, and the
// denylist's periodic full rebuild (resync_interval), which scans.
var housekeeping = map[string]bool{
	"info": true, "ping": true, "hello": true, "client": true, "command": true, "select": true, "auth": true,
	"publish": true, "subscribe": true, "psubscribe": true, "unsubscribe": true, "punsubscribe": true,
	"zscan": true, "hscan": true, "scan": true,
}

// commandStats reads INFO commandstats.
func (rs *redisServer) commandStats(ctx context.Context) (map[string]int64, error) {
	info, err := rs.client.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

// parseCommandStats is the calls per command of an INFO commandstats
// answer, lower case (subcommands such as "client|setinfo" are folded into
// "client").
func parseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(strings.ToLower(name), "|")
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] += n
			}
		}
	}
	return out
}

// commandDelta is after - before, housekeeping excluded.
func commandDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if housekeeping[k] {
			continue
		}
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

// revokedJTI is the jti of the i-th revoked token.
func revokedJTI(i int) string { return fmt.Sprintf("rev-%07d", i) }

// writeRevocations stores n token revocations of issuer through the store
// package (as the admin API would), with 32 writers in parallel.
func writeRevocations(ctx context.Context, addr, issuer string, n int, exp time.Time) error {
	st, err := store.NewRedis(store.RedisConfig{Addrs: []string{addr}, Timeout: 5 * time.Second, PoolSize: 32}, store.RedisOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				err := st.AddRevocation(ctx, store.Revocation{Kind: store.KindToken, Issuer: issuer, ID: revokedJTI(i), ExpiresAt: exp})
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
