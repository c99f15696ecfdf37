package denylist

import "time"

// Config is the revocation: section of the configuration.
type Config struct {
	// BloomCapacity is the number of live revocations the filter is sized
	// for; defaults to 1000000.
	BloomCapacity uint `yaml:"bloom_capacity"`
	// BloomFPRate is the false-positive rate at capacity; defaults to 0.001.
	BloomFPRate float64 `yaml:"bloom_fp_rate"`
	// ResyncInterval is the period of the full rebuild from the store;
	// defaults to 1m.
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// FailMode decides a Bloom hit that the store cannot confirm: "closed"
	// (default) rejects with 503, "open" lets the request through.
	FailMode string `yaml:"fail_mode"`
	// CutoffTTL is how long a "revoked before" rule (log out everywhere) is
	// kept: it must be at least the longest token lifetime; defaults to 24h.
	CutoffTTL time.Duration `yaml:"cutoff_ttl"`
}
