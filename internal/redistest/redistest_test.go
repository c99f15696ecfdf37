package redistest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Fatal(err)
	}
}

func TestStartStopRestart(t *testing.T) {
	s := Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Stop(t)
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Ping(sctx).Err(); err == nil {
		t.Fatal("PING answered after Stop")
	}

	s.Restart(t)
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after Restart: Get = %q, %v; want the value kept by the AOF", got, err)
	}
}

func TestStartHasNoPersistenceByDefault(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := context.Background()
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		t.Fatal(err)
	}
	if save["save"] != "" {
		t.Fatalf("save = %q, want empty", save["save"])
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("after Restart: Get err = %v, want redis.Nil", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("b sees a's key: %v", err)
	}
}

func TestKill(t *testing.T) {
	s := Start(t)
	s.Kill(t)
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	s.Restart(t)
	if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	cc := c.Client(t)
	ctx := context.Background()
	// Keys spread over every master.
	for i := range 50 {
		k := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	for _, s := range c.Servers() {
		n, err := s.Client(t).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("node %s holds no key", s.Addr())
		}
	}
}

func TestSentinel(t *testing.T) {
	s := StartSentinel(t, "mymaster")
	ctx := context.Background()
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Master().Client(t).Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("master Get = %q, %v", got, err)
	}
}
