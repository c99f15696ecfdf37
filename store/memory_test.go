package store

import (
	"context"
	"testing"
	"time"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	runConformance(t, func(t *testing.T, now func() time.Time) Store {
		m := NewMemory(MemoryOptions{Now: now})
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}

// TestMemorySweep checks that the background sweep drops what has expired
// even if nothing asks for it.
func TestMemorySweep(t *testing.T) {
	t.Parallel()
	clk := newClock()
	m := NewMemory(MemoryOptions{Now: clk.Now, SweepInterval: time.Millisecond})
	defer m.Close()
	ctx := context.Background()
	now := clk.Now()
	mustCreate(t, m, NewSession{Subject: "alice", TTL: time.Minute})
	fam := mustCreate(t, m, NewSession{Subject: "bob", TTL: time.Minute, Mode: ModeTokens})
	if _, err := m.Rotate(ctx, fam.Secret, now, RotateOptions{Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRevocation(ctx, Revocation{Kind: KindToken, Issuer: "i", ID: "j", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := m.AddCutoff(ctx, Cutoff{Kind: CutoffSubject, Name: "alice", Before: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	size := func() int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.sessions) + len(m.subjects) + len(m.pointers) + len(m.revs) + len(m.revIDs) + len(m.cutoffs)
	}
	if size() != 9 {
		t.Fatalf("size = %d before expiry, want 9", size())
	}
	clk.Advance(time.Minute)
	waitFor(t, 5*time.Second, "the sweep", func() bool { return size() == 0 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestMemoryScanMillion checks that a million revocations scan completely.
func TestMemoryScanMillion(t *testing.T) {
	t.Parallel()
	clk := newClock()
	m := NewMemory(MemoryOptions{Now: clk.Now})
	defer m.Close()
	exp := clk.Now().Add(time.Hour)
	const n = 1_000_000
	// Filled directly: AddRevocation is covered by the conformance suite,
	// and a million calls under -race would take most of the test's time.
	m.mu.Lock()
	for i := range n {
		r := Revocation{Kind: KindSession, ID: idOf(i), ExpiresAt: exp}
		m.revs[r.Key()] = r
	}
	m.mu.Unlock()
	checkMillion(t, m, clk.Now(), n)
}
