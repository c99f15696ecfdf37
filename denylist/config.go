package denylist

import (
	"errors"
	"fmt"
	"time"
)

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

// Defaults and limits of the revocation: section.
const (
	// DefaultBloomCapacity is the default of Config.BloomCapacity.
	DefaultBloomCapacity = 1_000_000
	// DefaultBloomFPRate is the default of Config.BloomFPRate.
	DefaultBloomFPRate = 0.001
	// DefaultResyncInterval is the default of Config.ResyncInterval.
	DefaultResyncInterval = time.Minute
	// DefaultCutoffTTL is the default of Config.CutoffTTL.
	DefaultCutoffTTL = 24 * time.Hour

	// MaxBloomCapacity bounds Config.BloomCapacity (a filter for it at the
	// default rate takes about 180 MB).
	MaxBloomCapacity = 100_000_000
	// MinBloomFPRate bounds Config.BloomFPRate from below: rarer false
	// positives need so many hash functions that every check slows down.
	MinBloomFPRate = 1e-9
	// MinResyncInterval bounds Config.ResyncInterval: every resync reads
	// every live revocation from the store.
	MinResyncInterval = time.Second

	// FailClosed and FailOpen are the values of Config.FailMode.
	FailClosed = "closed"
	FailOpen   = "open"
)

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.BloomCapacity == 0 {
		c.BloomCapacity = DefaultBloomCapacity
	}
	if c.BloomFPRate == 0 {
		c.BloomFPRate = DefaultBloomFPRate
	}
	if c.ResyncInterval == 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.FailMode == "" {
		c.FailMode = FailClosed
	}
	if c.CutoffTTL == 0 {
		c.CutoffTTL = DefaultCutoffTTL
	}
}

// Validate reports every invalid field as "key: message", joined with
// errors.Join. It has no side effects; call SetDefaults first.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.BloomCapacity == 0:
		errs = append(errs, errors.New("bloom_capacity: must be > 0"))
	case c.BloomCapacity > MaxBloomCapacity:
		errs = append(errs, fmt.Errorf("bloom_capacity: must be at most %d, got %d", MaxBloomCapacity, c.BloomCapacity))
	}
	switch {
	case !(c.BloomFPRate > 0 && c.BloomFPRate < 1):
		errs = append(errs, fmt.Errorf("bloom_fp_rate: must be between 0 and 1 (exclusive), got %v", c.BloomFPRate))
	case c.BloomFPRate < MinBloomFPRate:
		errs = append(errs, fmt.Errorf("bloom_fp_rate: must be at least %v, got %v", MinBloomFPRate, c.BloomFPRate))
	}
	if c.ResyncInterval < MinResyncInterval {
		errs = append(errs, fmt.Errorf("resync_interval: must be at least %s, got %q", MinResyncInterval, c.ResyncInterval))
	}
	switch c.FailMode {
	case FailClosed, FailOpen:
	default:
		errs = append(errs, fmt.Errorf("fail_mode: must be one of %s, %s, got %q", FailClosed, FailOpen, c.FailMode))
	}
	if c.CutoffTTL <= 0 {
		errs = append(errs, fmt.Errorf("cutoff_ttl: must be > 0, got %q", c.CutoffTTL))
	}
	return errors.Join(errs...)
}
