//go:build !linux

package redistest

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no such feature.
func setParentDeathSignal(*exec.Cmd) {}
