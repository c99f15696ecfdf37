package mint

import (
	"bytes"
	"crypto"
	"encoding/json"
	"slices"
	"time"

	"github.com/portcullis/portcullis/keys"
)

// KeyRing is the set of public keys the gateway publishes and accepts for the
// tokens it signed: the current signing keys (tokens.signing_key and the
// identity.assertion key) and, after a rotation, the previous keys until the
// tokens they signed have expired. A KeyRing is an immutable snapshot, safe
// for concurrent reads; a reload builds a new one from the old.
type KeyRing struct {
	current []ringKey
	// retired are previous keys, latest retirement first, so the keys still
	// served at any instant are current plus a prefix of retired.
	retired []ringKey
	// docs[n] is the JWK Set document of current plus retired[:n], encoded
	// once when the ring is built.
	docs [][]byte
}

type ringKey struct {
	key    keys.Key
	retire time.Time // zero for a current key
	jwk    []byte    // encoded public JWK
}

// NewKeyRing builds a ring serving current. A key of previous that is not
// current stays served until now+retain (the longest lifetime of a token it
// signed: tokens.access_ttl or the assertion ttl) and is dropped after; a key
// already retired in previous keeps its original retirement time, so several
// reloads in a row do not extend it. previous may be nil. Duplicate keys are
// listed once. A key whose public JWK cannot be encoded (one not built by
// keys.NewKey or Signer.Key) is left out.
func NewKeyRing(now time.Time, retain time.Duration, previous *KeyRing, current ...keys.Key) *KeyRing {
	r := &KeyRing{}
	for _, k := range current {
		if containsKey(r.current, k) {
			continue
		}
		jwk, ok := encodeJWK(k)
		if !ok {
			continue
		}
		r.current = append(r.current, ringKey{key: k, jwk: jwk})
	}
	if previous != nil {
		carry := func(e ringKey, retire time.Time) {
			if !retire.After(now) || containsKey(r.current, e.key) || containsKey(r.retired, e.key) {
				return
			}
			e.retire = retire
			r.retired = append(r.retired, e)
		}
		for _, e := range previous.current {
			carry(e, now.Add(retain))
		}
		for _, e := range previous.retired {
			carry(e, e.retire)
		}
	}
	slices.SortStableFunc(r.retired, func(a, b ringKey) int { return b.retire.Compare(a.retire) })

	r.docs = make([][]byte, len(r.retired)+1)
	for n := range r.docs {
		r.docs[n] = encodeJWKS(r.current, r.retired[:n])
	}
	return r
}

// live is how many retired keys are still served at now.
func (r *KeyRing) live(now time.Time) int {
	n := 0
	for n < len(r.retired) && r.retired[n].retire.After(now) {
		n++
	}
	return n
}

// Keys are the keys served and accepted at now: the current keys, then the
// previous keys not yet past their retirement. The slice is the caller's.
func (r *KeyRing) Keys(now time.Time) []keys.Key {
	n := r.live(now)
	out := make([]keys.Key, 0, len(r.current)+n)
	for _, e := range r.current {
		out = append(out, e.key)
	}
	for _, e := range r.retired[:n] {
		out = append(out, e.key)
	}
	return out
}

// Retirements reports when each served previous key stops being served, by
// kid; empty when no previous key is served at now.
func (r *KeyRing) Retirements(now time.Time) map[string]time.Time {
	n := r.live(now)
	out := make(map[string]time.Time, n)
	for _, e := range r.retired[:n] {
		out[e.key.ID] = e.retire
	}
	return out
}

// JWKS is the JWK Set document of Keys(now): {"keys":[...]} with each
// public key's kty, kid, alg, use "sig" and public members only. The
// document is encoded when the ring is built; callers must not modify it.
func (r *KeyRing) JWKS(now time.Time) []byte {
	return r.docs[r.live(now)]
}

func encodeJWK(k keys.Key) ([]byte, bool) {
	m, err := keys.PublicJWK(k)
	if err != nil {
		return nil, false
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, false
	}
	return b, true
}

func encodeJWKS(groups ...[]ringKey) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"keys":[`)
	first := true
	for _, g := range groups {
		for _, e := range g {
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(e.jwk)
		}
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// containsKey reports whether k (same kid, alg and public key) is in list.
func containsKey(list []ringKey, k keys.Key) bool {
	for _, e := range list {
		if sameKey(e.key, k) {
			return true
		}
	}
	return false
}

func sameKey(a, b keys.Key) bool {
	if a.ID != b.ID || a.Algorithm != b.Algorithm {
		return false
	}
	eq, ok := a.Public.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b.Public)
}
