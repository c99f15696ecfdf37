#!/usr/bin/env bash
# The whole test suite (README's test command): formatting, vet,
# staticcheck (pinned; fetched through the Go module proxy), every test
# with the race detector (unit, store conformance on real Redis single,
# Cluster and Sentinel, end-to-end, attack and fault tests against the real
# binary), then a short run of every fuzz target.
#   FUZZTIME=2000000x ./test/run.sh   # longer fuzzing
# The fuzz budget is a count of executions, not a duration: Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" when a
# duration budget ends (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-30000x}"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

echo "== fuzz (each target ${FUZZTIME})"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "-- $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
echo "== all green"
