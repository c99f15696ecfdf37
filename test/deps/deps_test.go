// Package deps enforces the dependency direction of STYLE.md:
// cmd -> gateway -> {policy, validator, denylist}; the three never import
// each other or gateway, and the leaf packages stay leaves.
package deps

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/portcullis/portcullis/"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=Deps", mod+pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var p struct{ Deps []string }
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, d := range p.Deps {
		if strings.HasPrefix(d, mod) {
			ours = append(ours, strings.TrimPrefix(d, mod))
		}
	}
	return ours
}

func TestDependencyDirection(t *testing.T) {
	forbidden := map[string][]string{
		"policy":    {"gateway", "validator", "denylist", "store", "mint", "cmd/"},
		"validator": {"gateway", "policy", "denylist", "mint", "cmd/"},
		"denylist":  {"gateway", "policy", "validator", "mint", "cmd/"},
		"store":     {"gateway", "policy", "validator", "denylist", "mint", "cmd/"},
		"mint":      {"gateway", "policy", "validator", "denylist", "store", "cmd/"},
		"keys":      {"gateway", "policy", "validator", "denylist", "store", "mint", "internal/", "cmd/"},
		"gateway":   {"cmd/", "test/"},
	}
	for pkg, bad := range forbidden {
		for _, d := range deps(t, pkg) {
			for _, b := range bad {
				if d == b || strings.HasPrefix(d, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(d, b)) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
