package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeIdle points the harness at a fake sysfs for one test. Not parallel:
// the paths are package state (parallel tests start after this one ends).
func fakeIdle(t *testing.T, driver, haltPoll string) (haltPollFile string) {
	t.Helper()
	dir := t.TempDir()
	oldPoll, oldDriver := haltPollPath, idleDriverPath
	t.Cleanup(func() { haltPollPath, idleDriverPath = oldPoll, oldDriver })
	haltPollPath = filepath.Join(dir, "guest_halt_poll_ns")
	idleDriverPath = filepath.Join(dir, "current_driver")
	if driver != "" {
		if err := os.WriteFile(idleDriverPath, []byte(driver+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if haltPoll != "" {
		if err := os.WriteFile(haltPollPath, []byte(haltPoll+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return haltPollPath
}

// TestHaltPoll: -halt-poll-ns sets the value for the run and puts the
// machine's own back; the report's header names the setting.
func TestHaltPoll(t *testing.T) {
	t.Run("set and restore", func(t *testing.T) {
		f := fakeIdle(t, "haltpoll", "0")
		restore, err := setHaltPoll(200000)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readHaltPoll(); err != nil || got != 200000 {
			t.Fatalf("during the run: %d, %v; want 200000", got, err)
		}
		if s := idleSetting(); !strings.Contains(s, "guest_halt_poll_ns 200000") || strings.Contains(s, "halt at once") {
			t.Errorf("header during the run: %q", s)
		}
		if err := restore(); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != "0" {
			t.Errorf("after the run the file holds %q, want the machine's 0", b)
		}
	})
	t.Run("no polling is called out", func(t *testing.T) {
		fakeIdle(t, "haltpoll", "0")
		if s := idleSetting(); !strings.Contains(s, "cpuidle driver haltpoll, guest_halt_poll_ns 0") || !strings.Contains(s, "halt at once") {
			t.Errorf("header: %q", s)
		}
	})
	t.Run("no haltpoll driver", func(t *testing.T) {
		fakeIdle(t, "acpi_idle", "")
		if _, err := setHaltPoll(200000); !errors.Is(err, errNoHaltPoll) {
			t.Errorf("setHaltPoll: %v, want errNoHaltPoll", err)
		}
		if s := idleSetting(); s != "cpuidle driver acpi_idle" {
			t.Errorf("header: %q", s)
		}
	})
	t.Run("no cpuidle at all", func(t *testing.T) {
		fakeIdle(t, "", "")
		if s := idleSetting(); s != "" {
			t.Errorf("header: %q, want none", s)
		}
	})
	t.Run("flag", func(t *testing.T) {
		o, err := parseFlags([]string{"-halt-poll-ns", "200000"}, &strings.Builder{})
		if err != nil || o.haltPoll != 200000 {
			t.Fatalf("parseFlags: %+v, %v", o, err)
		}
		if o, err = parseFlags(nil, &strings.Builder{}); err != nil || o.haltPoll != -1 {
			t.Fatalf("default: %d, %v; want -1 (leave the machine's setting)", o.haltPoll, err)
		}
	})
	t.Run("a bad value changes nothing", func(t *testing.T) {
		f := fakeIdle(t, "haltpoll", "0")
		if code := harnessMain([]string{"-halt-poll-ns", "-5"}, &strings.Builder{}, &strings.Builder{}); code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != "0" {
			t.Errorf("the file holds %q, want 0", b)
		}
	})
}
