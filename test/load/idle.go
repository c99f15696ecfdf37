package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Guest halt polling. On a virtual machine an idle vCPU halts, and waking
// it (a socket write whose reader sleeps on the other CPU) costs the
// writer an inter-processor interrupt through the hypervisor. Linux's
// cpuidle-haltpoll driver has an idle vCPU poll for up to
// guest_halt_poll_ns (200 µs by default) before it halts, so that a
// wake-up soon after going idle is cheap. A machine booted with
// haltpoll.guest_halt_poll_ns=0 never polls: every wake-up of an idle vCPU
// pays the interrupt, and a proxy that leaves the load CPU idle more often
// (a slower one) pays it more often, which stretches the differences
// between targets. The harness prints the setting and can set it for a run
// (-halt-poll-ns), restoring it afterwards.
var (
	haltPollPath   = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
	idleDriverPath = "/sys/devices/system/cpu/cpuidle/current_driver"
	errNoHaltPoll  = errors.New("this machine has no guest halt polling (no cpuidle-haltpoll driver)")
)

// readHaltPoll is the current guest_halt_poll_ns.
func readHaltPoll() (int64, error) {
	b, err := os.ReadFile(haltPollPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, errNoHaltPoll
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", haltPollPath, err)
	}
	return n, nil
}

// setHaltPoll sets guest_halt_poll_ns to ns and returns a function that
// puts the previous value back.
func setHaltPoll(ns int64) (restore func() error, err error) {
	old, err := readHaltPoll()
	if err != nil {
		return nil, err
	}
	write := func(v int64) error {
		if err := os.WriteFile(haltPollPath, []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
			return fmt.Errorf("setting guest halt polling (needs root): %w", err)
		}
		return nil
	}
	if err := write(ns); err != nil {
		return nil, err
	}
	return func() error { return write(old) }, nil
}

// idleSetting describes how this machine's idle CPUs wait, for the
// report's header ("" when it has no cpuidle driver to report).
func idleSetting() string {
	b, err := os.ReadFile(idleDriverPath)
	driver := strings.TrimSpace(string(b))
	if err != nil || driver == "" {
		return ""
	}
	s := "cpuidle driver " + driver
	if ns, err := readHaltPoll(); err == nil {
		s += fmt.Sprintf(", guest_halt_poll_ns %d", ns)
		if ns == 0 {
			s += " (idle vCPUs halt at once: every cross-CPU wake-up costs an interrupt through the hypervisor)"
		}
	}
	return s
}
