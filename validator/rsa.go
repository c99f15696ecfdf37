package validator

import (
	"crypto"
	"crypto/rsa"
	_ "crypto/sha256" // RS256
	_ "crypto/sha512" // RS384, RS512
	"crypto/subtle"
	"sync"
	"sync/atomic"

	"filippo.io/bigmod"
)

// RSA PKCS #1 v1.5 verification with the key's modulus prepared once.
//
// crypto/rsa rebuilds the Montgomery form of the modulus (R² mod N) on every
// verification: about a third of an RS256-2048 verification's CPU, paid by
// every token the cache has not seen. verifyRSA keeps that form per key and
// then runs the same steps as crypto/rsa, with the same arithmetic
// (filippo.io/bigmod is the standalone release of the standard library's
// crypto/internal/fips140/bigmod): s < N, m = s^e mod N, and m compared in
// full with the encoding it must have,
//
//	0x00 0x01 0xff…0xff 0x00 DigestInfo(hash) hash(signing input)
//
// It only takes the common case: alg RS256, RS384 or RS512, e = 65537 and a
// modulus of 1024 to 16384 bits. Anything else goes to crypto/rsa, so odd
// keys get the standard library's answer (and its errors). A differential
// test and a fuzz target hold the two to the same verdicts.

// rsaAlgs are the algs verifyRSA takes: their hash and the DER prefix of
// its DigestInfo (RFC 8017 §9.2, note 1).
var rsaAlgs = map[string]struct {
	hash   crypto.Hash
	prefix []byte
}{
	"RS256": {crypto.SHA256, []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	"RS384": {crypto.SHA384, []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	"RS512": {crypto.SHA512, []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// rsaModuli maps a *rsa.PublicKey to its prepared modulus (nil: a key
// verifyRSA leaves to crypto/rsa). Keys live as long as their
// configuration or JWKS fetch; the map is emptied when it outgrows
// maxRSAModuli, so keys of past fetches do not pile up.
var (
	rsaModuli     sync.Map
	rsaModuliSize atomic.Int64
)

const maxRSAModuli = 1024

// rsaModulus returns pub's prepared modulus, or nil when verifyRSA must
// leave pub to crypto/rsa.
func rsaModulus(pub *rsa.PublicKey) *bigmod.Modulus {
	if m, ok := rsaModuli.Load(pub); ok {
		return m.(*bigmod.Modulus)
	}
	var m *bigmod.Modulus
	if pub.N != nil && pub.E == 65537 && pub.N.Sign() > 0 && pub.N.Bit(0) == 1 && pub.N.BitLen() >= 1024 && pub.N.BitLen() <= 16384 {
		m, _ = bigmod.NewModulus(pub.N.Bytes()) // cannot fail for an odd N > 1
	}
	if rsaModuliSize.Add(1) > maxRSAModuli {
		rsaModuli.Clear()
		rsaModuliSize.Store(1)
	}
	rsaModuli.Store(pub, m)
	return m
}

// verifyRSA verifies an RSASSA-PKCS1-v1_5 signature of signingInput.
// handled is false when it does not take alg or pub: the caller then asks
// crypto/rsa.
func verifyRSA(alg, signingInput string, sig []byte, pub *rsa.PublicKey) (handled bool, err error) {
	a, known := rsaAlgs[alg]
	if !known {
		return false, nil
	}
	n := rsaModulus(pub)
	if n == nil {
		return false, nil
	}
	hh := a.hash.New()
	hh.Write([]byte(signingInput))
	var sum [64]byte
	hashed := hh.Sum(sum[:0])

	prefix := a.prefix
	k := n.Size()
	tLen := len(prefix) + len(hashed)
	if k < tLen+11 || len(sig) != k {
		return true, rsa.ErrVerification
	}
	s, err := bigmod.NewNat().SetBytes(sig, n)
	if err != nil { // s >= N
		return true, rsa.ErrVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, uint(pub.E), n).Bytes(n)

	ok1 := subtle.ConstantTimeByteEq(em[0], 0)
	ok1 &= subtle.ConstantTimeByteEq(em[1], 1)
	ok1 &= subtle.ConstantTimeCompare(em[k-tLen:k-len(hashed)], prefix)
	ok1 &= subtle.ConstantTimeCompare(em[k-len(hashed):], hashed)
	ok1 &= subtle.ConstantTimeByteEq(em[k-tLen-1], 0)
	for i := 2; i < k-tLen-1; i++ {
		ok1 &= subtle.ConstantTimeByteEq(em[i], 0xff)
	}
	if ok1 != 1 {
		return true, rsa.ErrVerification
	}
	return true, nil
}
