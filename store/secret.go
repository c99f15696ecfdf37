package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Secrets and the names derived from them. Both implementations use these,
// so that their handles and groups behave alike.
//
// A session ID or refresh token is 32 random bytes in unpadded base64url (43
// characters). It is drawn again until the first byte of its SHA-256 equals
// the group of its subject (rejection sampling, ~256 draws), so the Redis
// key it names lands in its subject's cluster slot. The secret stays uniform
// among such strings; its hash reveals at most those 8 bits.

const (
	secretBytes = 32
	handleBytes = 16
)

var b64 = base64.RawURLEncoding

// group is the slot group of a subject: the first byte of its SHA-256.
func group(subject string) byte {
	h := sha256.Sum256([]byte(subject))
	return h[0]
}

// subjectHash names a subject in keys: base64url of its SHA-256.
func subjectHash(subject string) string {
	h := sha256.Sum256([]byte(subject))
	return b64.EncodeToString(h[:])
}

// newSecret draws a 43-character secret whose SHA-256 starts with g. It
// returns the secret and its SHA-256. Candidates are drawn independently, 16
// per read of the random source.
func newSecret(g byte) (string, [32]byte) {
	const batch = 16
	var raw [batch * secretBytes]byte
	buf := make([]byte, b64.EncodedLen(secretBytes))
	for {
		_, _ = rand.Read(raw[:]) // never fails (crypto/rand doc)
		for i := range batch {
			b64.Encode(buf, raw[i*secretBytes:(i+1)*secretBytes])
			h := sha256.Sum256(buf)
			if h[0] == g {
				clear(raw[:])
				return string(buf), h
			}
		}
	}
}

// secretHash is the SHA-256 of a presented secret.
func secretHash(secret string) [32]byte {
	return sha256.Sum256([]byte(secret))
}

// sessionHandle is the handle of the opaque session whose ID hashes to h.
func sessionHandle(h [32]byte) string {
	return b64.EncodeToString(h[:handleBytes])
}

// newFamilyHandle is a random handle for a refresh family of group g.
func newFamilyHandle(g byte) string {
	var raw [handleBytes]byte
	_, _ = rand.Read(raw[:])
	raw[0] = g
	return b64.EncodeToString(raw[:])
}

// handleGroup is the group a handle belongs to (its first byte); false for
// a string that is not a handle.
func handleGroup(handle string) (byte, bool) {
	if len(handle) != b64.EncodedLen(handleBytes) {
		return 0, false
	}
	var raw [handleBytes]byte
	n, err := b64.Decode(raw[:], []byte(handle))
	if err != nil || n != handleBytes {
		return 0, false
	}
	return raw[0], true
}

// tokenName names a refresh token's pointer: base64url of its SHA-256.
func tokenName(h [32]byte) string {
	return b64.EncodeToString(h[:])
}
