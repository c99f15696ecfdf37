package mint

import (
	"crypto"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/portcullis/portcullis/keys"
)

func kids(ks []keys.Key) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.ID
	}
	return out
}

// jwksKIDs parses a JWKS document as a relying party would and returns its
// kids, failing on any private member.
func jwksKIDs(t *testing.T, doc []byte) []string {
	t.Helper()
	parsed, err := keys.ParseJWKSet(doc)
	if err != nil {
		t.Fatalf("keys.ParseJWKSet(%s): %v", doc, err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range raw.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWK %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["alg"] == nil || k["kid"] == nil {
			t.Errorf("JWK %v lacks use sig, alg or kid", k)
		}
	}
	return kids(parsed)
}

func TestKeyRingRetention(t *testing.T) {
	t.Parallel()
	k1 := newSigner(t, testP256()).Key()
	k2 := newSigner(t, testEd()).Key()
	k3 := newSigner(t, testRSA()).Key()
	const retain = 5 * time.Minute
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	r1 := NewKeyRing(at(0), retain, nil, k1)
	r2 := NewKeyRing(at(1*time.Minute), retain, r1, k2)         // k1 retires at 6m
	r3 := NewKeyRing(at(3*time.Minute), retain, r2, k3)         // k2 retires at 8m; k1 keeps 6m
	r4 := NewKeyRing(at(4*time.Minute), retain, r3, k3)         // reload, no rotation: nothing extended
	r5 := NewKeyRing(at(7*time.Minute), retain, r4, k3, k3, k3) // k1 is gone for good

	tests := []struct {
		name string
		ring *KeyRing
		at   time.Duration
		want []string
	}{
		{"first key", r1, 0, []string{k1.ID}},
		{"first rotation", r2, 1 * time.Minute, []string{k2.ID, k1.ID}},
		{"k1 still served just before retirement", r2, 6*time.Minute - time.Nanosecond, []string{k2.ID, k1.ID}},
		{"k1 retired after retain", r2, 6 * time.Minute, []string{k2.ID}},
		{"second rotation", r3, 3 * time.Minute, []string{k3.ID, k2.ID, k1.ID}},
		{"second rotation keeps k1's retirement", r3, 6 * time.Minute, []string{k3.ID, k2.ID}},
		{"reload keeps retirements", r4, 6*time.Minute - time.Nanosecond, []string{k3.ID, k2.ID, k1.ID}},
		{"reload, k1 gone", r4, 6 * time.Minute, []string{k3.ID, k2.ID}},
		{"reload, k2 gone", r4, 8 * time.Minute, []string{k3.ID}},
		{"later reload drops k1, keeps k2", r5, 7 * time.Minute, []string{k3.ID, k2.ID}},
		{"later reload, k2 gone", r5, 8 * time.Minute, []string{k3.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := at(tt.at)
			if got := kids(tt.ring.Keys(now)); !slices.Equal(got, tt.want) {
				t.Errorf("Keys = %v, want %v", got, tt.want)
			}
			if got := jwksKIDs(t, tt.ring.JWKS(now)); !slices.Equal(got, tt.want) {
				t.Errorf("JWKS kids = %v, want %v", got, tt.want)
			}
		})
	}

	want := map[string]time.Time{k2.ID: at(8 * time.Minute), k1.ID: at(6 * time.Minute)}
	got := r4.Retirements(at(4 * time.Minute))
	if len(got) != len(want) || !got[k1.ID].Equal(want[k1.ID]) || !got[k2.ID].Equal(want[k2.ID]) {
		t.Errorf("Retirements = %v, want %v", got, want)
	}
	if len(r5.retired) != 1 {
		t.Errorf("r5 keeps %d retired keys, want 1 (k2)", len(r5.retired))
	}
}

func TestKeyRingAcceptsRetiredKeyTokens(t *testing.T) {
	t.Parallel()
	old, cur := newSigner(t, testP256()), newSigner(t, testEd())
	r1 := NewKeyRing(t0, 0, nil, old.Key())
	tok, _, err := old.MintAccess(Access{Issuer: "gw", Subject: "s", IssuedAt: t0, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rotated := t0.Add(time.Minute)
	r2 := NewKeyRing(rotated, 5*time.Minute, r1, cur.Key())
	// A verifier picks the key of the token's kid from the ring.
	hdr, _ := decodeSegments(t, tok)
	var found *keys.Key
	for _, k := range r2.Keys(rotated) {
		if k.ID == hdr["kid"] {
			found = &k
		}
	}
	if found == nil {
		t.Fatalf("kid %v not in the ring after rotation", hdr["kid"])
	}
	verify(t, tok, *found, rotated)
}

func TestKeyRingRollbackAndZeroRetain(t *testing.T) {
	t.Parallel()
	k1 := newSigner(t, testP256()).Key()
	k2 := newSigner(t, testEd()).Key()
	r1 := NewKeyRing(t0, time.Minute, nil, k1)
	r2 := NewKeyRing(t0, time.Minute, r1, k2)
	back := NewKeyRing(t0, time.Minute, r2, k1) // k1 current again, k2 retained
	if got := kids(back.Keys(t0.Add(time.Hour))); !slices.Equal(got, []string{k1.ID}) {
		t.Errorf("after rollback, later Keys = %v, want [k1] only", got)
	}
	if _, retired := back.Retirements(t0)[k1.ID]; retired {
		t.Error("a key made current again is still scheduled for retirement")
	}
	noRetain := NewKeyRing(t0, 0, r1, k2)
	if got := kids(noRetain.Keys(t0)); !slices.Equal(got, []string{k2.ID}) {
		t.Errorf("retain 0: Keys = %v, want the current key only", got)
	}
}

func TestKeyRingJWKS(t *testing.T) { // not parallel: AllocsPerRun
	ks := []keys.Key{newSigner(t, testRSA()).Key(), newSigner(t, testP384()).Key(), newSigner(t, testEd()).Key()}
	bad := keys.Key{ID: "broken"} // no public key: left out
	r := NewKeyRing(t0, time.Minute, nil, append(ks, ks[0], bad)...)
	doc := r.JWKS(t0)
	parsed, err := keys.ParseJWKSet(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(parsed); !slices.Equal(got, kids(ks)) {
		t.Fatalf("JWKS kids = %v, want %v once each", got, kids(ks))
	}
	jwksKIDs(t, doc) // no private members
	for i, p := range parsed {
		if p.Algorithm != ks[i].Algorithm {
			t.Errorf("key %s alg = %q, want %q", p.ID, p.Algorithm, ks[i].Algorithm)
		}
		if eq, ok := p.Public.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(ks[i].Public) {
			t.Errorf("key %s public key differs", p.ID)
		}
	}
	if got := kids(r.Keys(t0)); !slices.Equal(got, kids(ks)) {
		t.Errorf("Keys = %v, want %v", got, kids(ks))
	}

	// The document is encoded once, not per request.
	if again := r.JWKS(t0.Add(time.Second)); &again[0] != &doc[0] {
		t.Error("JWKS re-encoded the document for an unchanged key list")
	}
	if n := testing.AllocsPerRun(100, func() { r.JWKS(t0) }); n != 0 {
		t.Errorf("JWKS allocates %.1f times per call, want 0", n)
	}

	empty := NewKeyRing(t0, time.Minute, nil)
	if got := string(empty.JWKS(t0)); got != `{"keys":[]}` {
		t.Errorf("empty ring JWKS = %s", got)
	}
}
