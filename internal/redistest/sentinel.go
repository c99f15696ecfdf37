package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis master watched by one Sentinel process (quorum 1).
type Sentinel struct {
	name     string
	master   *Server
	sentinel *Server
}

// StartSentinel starts a master (Start) and a Sentinel (redis-server
// --sentinel) monitoring it under masterName, and waits until the Sentinel
// names the master. t.Cleanup stops both.
func StartSentinel(t testing.TB, masterName string) *Sentinel {
	t.Helper()
	requireAvailable(t)
	master := Start(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	ready := func(ctx context.Context, addr string) error {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1, DisableIdentity: true})
		defer c.Close()
		got, err := c.GetMasterAddrByName(ctx, masterName).Result()
		if err != nil {
			return err
		}
		if len(got) != 2 || got[0]+":"+got[1] != master.Addr() {
			return fmt.Errorf("sentinel names master %v, want %s", got, master.Addr())
		}
		return nil
	}
	sentinel := startServer(t, dir, func(port int) []string {
		// Sentinel rewrites its configuration file, so it gets a fresh,
		// writable one each time it starts.
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 2000\n",
			port, dir, masterName, master.port, masterName)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Errorf("redistest: sentinel config: %v", err)
		}
		return []string{conf, "--sentinel"}
	}, ready)
	return &Sentinel{name: masterName, master: master, sentinel: sentinel}
}

// Addrs are the Sentinels' addresses (for a failover client's SentinelAddrs).
func (s *Sentinel) Addrs() []string { return []string{s.sentinel.Addr()} }

// MasterName is the name the master is monitored under.
func (s *Sentinel) MasterName() string { return s.name }

// Master is the monitored redis-server.
func (s *Sentinel) Master() *Server { return s.master }

// Sentinel is the Sentinel process itself.
func (s *Sentinel) Sentinel() *Server { return s.sentinel }

// Client returns a go-redis failover client of the master, closed at
// cleanup.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.name, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
