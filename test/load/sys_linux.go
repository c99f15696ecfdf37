//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// canPin reports whether processes can be pinned to CPUs here.
const canPin = true

// cpuMask is a sched_setaffinity mask for up to 1024 CPUs.
type cpuMask [16]uint64

// setThreadAffinity pins the calling OS thread to cpu (cpu < 0: restores
// old) and returns the previous mask. The caller holds the thread
// (runtime.LockOSThread); a process forked from it inherits the mask.
func setThreadAffinity(cpu int, old *cpuMask) (cpuMask, error) {
	var prev cpuMask
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(prev), uintptr(unsafe.Pointer(&prev))); e != 0 {
		return prev, fmt.Errorf("sched_getaffinity: %w", e)
	}
	var m cpuMask
	if cpu < 0 {
		m = *old
	} else {
		m[cpu/64] = 1 << (cpu % 64)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m))); e != 0 {
		return prev, fmt.Errorf("sched_setaffinity: %w", e)
	}
	return prev, nil
}

// allowedCPUs lists the CPUs the calling thread may run on.
func allowedCPUs() []int {
	var m cpuMask
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m))); e != 0 {
		return nil
	}
	var cpus []int
	for i := range len(m) * 64 {
		if m[i/64]&(1<<(i%64)) != 0 {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// childAttr makes a child die with the harness (even on SIGKILL) and keeps
// it out of the terminal's process group, so that Ctrl-C reaches only the
// harness, which then stops every child in order.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// cpusAllowed is the Cpus_allowed_list of a process ("0", "0-1").
func cpusAllowed(pid int) string {
	return procStatus(pid, "Cpus_allowed_list")
}

// rssBytes is the resident set size of a process.
func rssBytes(pid int) (int64, error) {
	v := procStatus(pid, "VmRSS")
	var kb int64
	if _, err := fmt.Sscanf(v, "%d kB", &kb); err != nil {
		return 0, fmt.Errorf("VmRSS of %d: %q", pid, v)
	}
	return kb * 1024, nil
}

func procStatus(pid int, field string) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit (children
// inherit it) and returns the new soft limit.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// clockTick is USER_HZ, the unit of /proc times (100 on every Linux ABI
// Go supports).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system) a process has used.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * clockTick
}

// cpuBusy is the busy and total time of one CPU since boot (/proc/stat).
func cpuBusy(cpu int) (busy, total time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		for i, v := range strings.Fields(line)[1:] {
			if i >= 8 { // guest time is already counted in user time
				break
			}
			var n int64
			fmt.Sscan(v, &n)
			total += time.Duration(n) * clockTick
			if i != 3 && i != 4 { // idle, iowait
				busy += time.Duration(n) * clockTick
			}
		}
	}
	return busy, total
}
