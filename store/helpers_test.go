package store

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// idOf names the i-th revocation of a bulk test.
func idOf(i int) string { return "r" + strconv.Itoa(i) }

// checkMillion scans st and checks that it sees each of the n bulk
// revocations (idOf(0..n-1)) at least once and nothing else.
func checkMillion(t *testing.T, st Store, now time.Time, n int) {
	t.Helper()
	seen := make([]bool, n)
	distinct, calls := 0, 0
	start := time.Now()
	err := st.ScanRevocations(context.Background(), now, func(r Revocation) error {
		calls++
		i, err := strconv.Atoi(r.ID[1:])
		if err != nil || i < 0 || i >= n || idOf(i) != r.ID {
			t.Fatalf("unexpected entry %+v", r)
		}
		if !seen[i] {
			seen[i] = true
			distinct++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d entries (%d calls) in %s", distinct, calls, time.Since(start))
	if distinct != n {
		t.Fatalf("scan saw %d distinct entries, want %d", distinct, n)
	}
}
