package store

import (
	"errors"
	"fmt"
	"time"
)

// Config is the store: section of the configuration.
type Config struct {
	// Type is "memory" (one node, state in process; the default) or "redis".
	Type  string      `yaml:"type"`
	Redis RedisConfig `yaml:"redis"`
}

// RedisConfig is store.redis: how to reach Redis. One address is a single
// server, several are a Redis Cluster seed list, and a MasterName makes the
// addresses Sentinels.
type RedisConfig struct {
	// Addrs defaults to ["127.0.0.1:6379"].
	Addrs []string `yaml:"addrs"`
	// MasterName, when set, selects Sentinel mode (Addrs are sentinels).
	MasterName string `yaml:"master_name"`
	Username   string `yaml:"username"`
	Password   string `yaml:"password"`
	// SentinelPassword authenticates to the sentinels; empty: none.
	SentinelPassword string `yaml:"sentinel_password"`
	// DB is the database number (single server and Sentinel only).
	DB int `yaml:"db"`
	// TLS enables TLS to Redis with the system roots.
	TLS bool `yaml:"tls"`
	// KeyPrefix is prepended to every key; defaults to "portcullis:".
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds every store call; defaults to 1s.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the connection pool size per server; 0: go-redis's default
	// (10 per GOMAXPROCS).
	PoolSize int `yaml:"pool_size"`
}

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Type == "" {
		c.Type = "memory"
	}
	if len(c.Redis.Addrs) == 0 {
		c.Redis.Addrs = []string{"127.0.0.1:6379"}
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = "portcullis:"
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = time.Second
	}
}

// Validate reports every invalid field as "key.path: message", joined.
func (c *Config) Validate() error {
	var errs []error
	switch c.Type {
	case "memory", "redis":
	default:
		errs = append(errs, fmt.Errorf("type: must be one of memory, redis, got %q", c.Type))
	}
	for i, a := range c.Redis.Addrs {
		if a == "" {
			errs = append(errs, fmt.Errorf("redis.addrs[%d]: must not be empty", i))
		}
	}
	if c.Redis.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db: must be >= 0, got %d", c.Redis.DB))
	}
	if c.Redis.DB != 0 && len(c.Redis.Addrs) > 1 && c.Redis.MasterName == "" {
		errs = append(errs, errors.New("redis.db: Redis Cluster has only database 0"))
	}
	if c.Redis.Timeout < 0 {
		errs = append(errs, fmt.Errorf("redis.timeout: must be > 0, got %q", c.Redis.Timeout))
	}
	if c.Redis.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("redis.pool_size: must be >= 0, got %d", c.Redis.PoolSize))
	}
	return errors.Join(errs...)
}
