package denylist

import (
	"math"
	"strings"
	"testing"
	"time"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	want := Config{BloomCapacity: 1000000, BloomFPRate: 0.001, ResyncInterval: time.Minute, FailMode: "closed", CutoffTTL: 24 * time.Hour}
	if c != want {
		t.Fatalf("SetDefaults = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(defaults) = %v", err)
	}
	// Set values are kept.
	c = Config{BloomCapacity: 5, BloomFPRate: 0.01, ResyncInterval: time.Hour, FailMode: "open", CutoffTTL: time.Hour}
	kept := c
	c.SetDefaults()
	if c != kept {
		t.Fatalf("SetDefaults changed set values: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // substrings of the joined error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"fail open", func(c *Config) { c.FailMode = "open" }, nil},
		{"fp rate 2", func(c *Config) { c.BloomFPRate = 2 }, []string{"bloom_fp_rate: must be between 0 and 1 (exclusive), got 2"}},
		{"fp rate 1", func(c *Config) { c.BloomFPRate = 1 }, []string{"bloom_fp_rate: must be between 0 and 1 (exclusive), got 1"}},
		{"fp rate negative", func(c *Config) { c.BloomFPRate = -0.1 }, []string{"bloom_fp_rate: must be between 0 and 1 (exclusive), got -0.1"}},
		{"fp rate NaN", func(c *Config) { c.BloomFPRate = math.NaN() }, []string{"bloom_fp_rate: must be between 0 and 1 (exclusive), got NaN"}},
		{"fp rate too small", func(c *Config) { c.BloomFPRate = 1e-12 }, []string{"bloom_fp_rate: must be at least 1e-09, got 1e-12"}},
		{"fail mode", func(c *Config) { c.FailMode = "sometimes" }, []string{`fail_mode: must be one of closed, open, got "sometimes"`}},
		{"fail mode case", func(c *Config) { c.FailMode = "Closed" }, []string{"fail_mode: must be one of closed, open"}},
		{"capacity zero", func(c *Config) { c.BloomCapacity = 0 }, []string{"bloom_capacity: must be > 0"}},
		{"capacity huge", func(c *Config) { c.BloomCapacity = 1 << 40 }, []string{"bloom_capacity: must be at most 100000000"}},
		{"resync negative", func(c *Config) { c.ResyncInterval = -time.Second }, []string{`resync_interval: must be at least 1s, got "-1s"`}},
		{"resync too short", func(c *Config) { c.ResyncInterval = time.Millisecond }, []string{`resync_interval: must be at least 1s, got "1ms"`}},
		{"cutoff ttl", func(c *Config) { c.CutoffTTL = -time.Hour }, []string{`cutoff_ttl: must be > 0, got "-1h0m0s"`}},
		{"all at once", func(c *Config) {
			c.BloomFPRate, c.FailMode, c.CutoffTTL = 2, "x", -1
		}, []string{"bloom_fp_rate:", "fail_mode:", "cutoff_ttl:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.want) {
				t.Errorf("Validate reported %d errors, want %d: %q", n, len(tt.want), err)
			}
		})
	}
}
