//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

const canPin = false

type cpuMask struct{}

func setThreadAffinity(int, *cpuMask) (cpuMask, error) {
	return cpuMask{}, errors.ErrUnsupported
}

func childAttr() *syscall.SysProcAttr { return nil }

func cpusAllowed(int) string { return "" }

func rssBytes(int) (int64, error) { return 0, errors.ErrUnsupported }

func raiseNoFile() (uint64, error) { return 0, errors.ErrUnsupported }

func procCPU(int) time.Duration { return 0 }

func cpuBusy(int) (busy, total time.Duration) { return 0, 0 }

func allowedCPUs() []int { return nil }
