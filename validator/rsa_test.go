package validator

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
)

// rsaTestKeys are generated once: 1024, 2048 and 3072 bits, e = 65537.
var rsaTestKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	var keys []*rsa.PrivateKey
	for _, bits := range []int{1024, 2048, 3072} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	return keys
})

func signPKCS1(t testing.TB, k *rsa.PrivateKey, alg, input string) []byte {
	t.Helper()
	h := rsaAlgs[alg].hash
	hh := h.New()
	hh.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, hh.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// stdVerify is crypto/rsa's verdict.
func stdVerify(alg, input string, sig []byte, pub *rsa.PublicKey) error {
	h := rsaAlgs[alg].hash
	hh := h.New()
	hh.Write([]byte(input))
	return rsa.VerifyPKCS1v15(pub, h, hh.Sum(nil), sig)
}

// verifyRSA and crypto/rsa agree on good signatures and on every way of
// spoiling one.
func TestVerifyRSAAgreesWithCryptoRSA(t *testing.T) {
	t.Parallel()
	const input = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
	for _, k := range rsaTestKeys() {
		pub := &k.PublicKey
		for _, alg := range []string{"RS256", "RS384", "RS512"} {
			good := signPKCS1(t, k, alg, input)
			other := map[string]string{"RS256": "RS384", "RS384": "RS512", "RS512": "RS256"}[alg]
			n := pub.N.Bytes()
			cases := map[string]struct {
				input string
				sig   []byte
				alg   string
				valid bool
			}{
				"good":             {input, good, alg, true},
				"other input":      {input + "x", good, alg, false},
				"other alg":        {input, good, other, false},
				"a bit flipped":    {input, flip(good, len(good)/2), alg, false},
				"last bit flipped": {input, flip(good, len(good)-1), alg, false},
				"one byte short":   {input, good[1:], alg, false},
				"one byte long":    {input, append([]byte{0}, good...), alg, false},
				"empty":            {input, nil, alg, false},
				"zero":             {input, make([]byte, len(good)), alg, false},
				"one":              {input, leftPad(big.NewInt(1).Bytes(), len(good)), alg, false},
				"N":                {input, n, alg, false},
				"N-1":              {input, leftPad(new(big.Int).Sub(pub.N, big.NewInt(1)).Bytes(), len(good)), alg, false},
				"good+N":           {input, new(big.Int).Add(new(big.Int).SetBytes(good), pub.N).Bytes(), alg, false},
				"all ones":         {input, []byte(strings.Repeat("\xff", len(good))), alg, false},
			}
			for name, c := range cases {
				std := stdVerify(c.alg, c.input, c.sig, pub)
				handled, fast := verifyRSA(c.alg, c.input, c.sig, pub)
				if !handled {
					t.Fatalf("%d bits %s %s: not handled", pub.N.BitLen(), alg, name)
				}
				if (std == nil) != c.valid || (fast == nil) != c.valid {
					t.Errorf("%d bits %s %s: crypto/rsa %v, verifyRSA %v; want valid=%v", pub.N.BitLen(), alg, name, std, fast, c.valid)
				}
				if fast != nil && !errors.Is(fast, rsa.ErrVerification) {
					t.Errorf("%d bits %s %s: error %v, want rsa.ErrVerification", pub.N.BitLen(), alg, name, fast)
				}
			}
		}
	}
}

// A signature whose encoding is right except for one byte of the padding,
// the separator, the DigestInfo or the hash is refused: m is compared in
// full, not parsed.
func TestVerifyRSARefusesEveryWrongEncodingByte(t *testing.T) {
	t.Parallel()
	k := rsaTestKeys()[1]
	pub := &k.PublicKey
	const input = "header.payload"
	a := rsaAlgs["RS256"]
	hh := a.hash.New()
	hh.Write([]byte(input))
	hashed := hh.Sum(nil)
	prefix := a.prefix
	size := (pub.N.BitLen() + 7) / 8
	em := make([]byte, size)
	em[1] = 1
	tLen := len(prefix) + len(hashed)
	for i := 2; i < size-tLen-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-tLen:], prefix)
	copy(em[size-len(hashed):], hashed)

	// Raw RSA "signing" of an arbitrary encoding: s = em^d mod N.
	rawSign := func(em []byte) []byte {
		s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.D, pub.N)
		return leftPad(s.Bytes(), size)
	}
	if err := stdVerify("RS256", input, rawSign(em), pub); err != nil {
		t.Fatalf("the well-formed encoding does not verify with crypto/rsa: %v", err)
	}
	if handled, err := verifyRSA("RS256", input, rawSign(em), pub); !handled || err != nil {
		t.Fatalf("the well-formed encoding: handled %v, %v", handled, err)
	}
	for _, i := range []int{1, 2, size / 2, size - tLen - 2, size - tLen - 1, size - tLen, size - len(hashed) - 1, size - len(hashed), size - 1} {
		bad := flip(em, i)
		handled, err := verifyRSA("RS256", input, rawSign(bad), pub)
		if !handled || err == nil {
			t.Errorf("encoding with byte %d changed: handled %v, err %v; want refused", i, handled, err)
		}
		if stdVerify("RS256", input, rawSign(bad), pub) == nil {
			t.Errorf("encoding with byte %d changed: crypto/rsa accepts it", i)
		}
	}
}

// Keys and algs verifyRSA does not take go to crypto/rsa.
func TestVerifyRSALeavesOddKeysToCryptoRSA(t *testing.T) {
	t.Parallel()
	k := rsaTestKeys()[1]
	e3 := &rsa.PublicKey{N: k.N, E: 3}
	even := &rsa.PublicKey{N: new(big.Int).Add(k.N, big.NewInt(1)), E: 65537}
	small := &rsa.PublicKey{N: new(big.Int).Rsh(k.N, 1100), E: 65537}
	small.N.SetBit(small.N, 0, 1)
	for name, c := range map[string]struct {
		alg string
		pub *rsa.PublicKey
	}{
		"PS256":       {"PS256", &k.PublicKey},
		"e = 3":       {"RS256", e3},
		"even N":      {"RS256", even},
		"948-bit N":   {"RS256", small},
		"nil N":       {"RS256", &rsa.PublicKey{E: 65537}},
		"unknown alg": {"RS1", &k.PublicKey},
	} {
		if handled, _ := verifyRSA(c.alg, "x.y", make([]byte, 256), c.pub); handled {
			t.Errorf("%s: handled, want left to crypto/rsa", name)
		}
	}
}

// FuzzVerifyRSA holds verifyRSA to crypto/rsa's verdict on any signature
// bytes, good ones included.
func FuzzVerifyRSA(f *testing.F) {
	k := rsaTestKeys()[0]
	pub := &k.PublicKey
	good := signPKCS1(f, k, "RS256", "a.b")
	f.Add("a.b", good, uint8(0))
	f.Add("a.b", flip(good, 3), uint8(1))
	f.Add("a.c", good, uint8(2))
	f.Add("", []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, input string, sig []byte, a uint8) {
		alg := []string{"RS256", "RS384", "RS512"}[int(a)%3]
		std := stdVerify(alg, input, sig, pub)
		handled, fast := verifyRSA(alg, input, sig, pub)
		if !handled {
			t.Fatal("not handled")
		}
		if (std == nil) != (fast == nil) {
			t.Fatalf("crypto/rsa %v, verifyRSA %v", std, fast)
		}
	})
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x01
	return out
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	out := make([]byte, n)
	copy(out[n-len(b):], b)
	return out
}
