package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds the creation of a cluster until every node says
// cluster_state:ok.
const clusterTimeout = 60 * time.Second

// Cluster is a real Redis Cluster of masters only (no replicas).
type Cluster struct {
	servers []*Server
}

// StartCluster starts masters (at least 3) redis-server processes with
// --cluster-enabled yes, joins them with `redis-cli --cluster create
// --cluster-replicas 0` and waits until every node reports cluster_state:ok
// and knows every other node. t.Cleanup stops them all.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	requireAvailable(t)
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", masters)
	}
	c := &Cluster{}
	for range masters {
		// The bus port is explicit (port+10000 may exceed 65535); a new one
		// is picked whenever a start attempt picks a new port, and kept
		// for a Restart on the same port.
		mainPort, busPort := 0, 0
		c.servers = append(c.servers, startWithArgs(t, func(port int) []string {
			if port != mainPort {
				mainPort, busPort = port, freePort(t)
			}
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "3000",
				"--cluster-port", strconv.Itoa(busPort),
			}
		}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.servers {
		err := waitUntil(ctx, nil, func(ctx context.Context) error { return clusterReady(ctx, s.Addr(), masters) })
		if err != nil {
			t.Fatalf("redistest: cluster node %s: %v", s.Addr(), err)
		}
	}
	return c
}

// clusterReady reports whether the node at addr sees a healthy cluster of
// n known nodes.
func clusterReady(ctx context.Context, addr string, n int) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1, DisableIdentity: true})
	defer c.Close()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return fmt.Errorf("cluster_state not ok")
	}
	if !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
		return fmt.Errorf("not every node known yet")
	}
	return nil
}

// Addrs are the nodes' addresses (a seed list for a cluster client).
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.servers))
	for i, s := range c.servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Servers are the nodes, to stop or inspect one of them.
func (c *Cluster) Servers() []*Server { return c.servers }

// Client returns a go-redis cluster client, closed at cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}
