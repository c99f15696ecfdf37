package validator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// parseToken decodes a compact JWS without verifying it: what jwt/v5's
// Parser.ParseUnverified does with WithStrictDecoding, with the same
// results and the same error classes (ErrTokenMalformed,
// ErrTokenUnverifiable) in the same order, two costs less for a token the
// cache has not seen:
//
//   - the header segment is decoded once per distinct header: the tokens of
//     an issuer share a handful of headers ({"alg":"RS256","kid":"k1"}), and
//     a decoded header is kept, read-only, keyed by the whole segment;
//   - a payload in plain JSON (decodePlain) is decoded without reflection;
//     any other payload goes to encoding/json.
//
// A differential test and a fuzz target hold it to ParseUnverified.
func parseToken(token string) (*jwt.Token, jwt.MapClaims, error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, nil, fmt.Errorf("%w: token contains an invalid number of segments", jwt.ErrTokenMalformed)
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return nil, nil, fmt.Errorf("%w: token contains an invalid number of segments", jwt.ErrTokenMalformed)
	}
	tok := &jwt.Token{Raw: token}
	h, err := decodeHeader(head)
	if err != nil {
		return tok, nil, err
	}
	tok.Header = h.header

	claimBytes, err := segments.DecodeString(payload)
	if err != nil {
		return tok, nil, fmt.Errorf("%w: could not base64 decode claim: %w", jwt.ErrTokenMalformed, err)
	}
	claims, ok := decodePlain(claimBytes)
	if !ok {
		claims = jwt.MapClaims{}
		if err := json.Unmarshal(claimBytes, &claims); err != nil {
			return tok, nil, fmt.Errorf("%w: could not JSON decode claim: %w", jwt.ErrTokenMalformed, err)
		}
		if claims == nil { // "null": no claims, as ParseUnverified leaves them
			claims = jwt.MapClaims{}
		}
	}
	tok.Claims = claims

	if h.alg == nil {
		return tok, claims, fmt.Errorf("%w: signing method (alg) is unspecified", jwt.ErrTokenUnverifiable)
	}
	if tok.Method = jwt.GetSigningMethod(*h.alg); tok.Method == nil {
		return tok, claims, fmt.Errorf("%w: signing method (alg) is unavailable", jwt.ErrTokenUnverifiable)
	}
	if tok.Signature, err = segments.DecodeString(sig); err != nil {
		return tok, claims, fmt.Errorf("%w: could not base64 decode signature: %w", jwt.ErrTokenMalformed, err)
	}
	return tok, claims, nil
}

// segments is the strict unpadded base64url of JWS segments.
var segments = base64.RawURLEncoding.Strict()

// parsedHeader is a decoded header segment, shared read-only by every token
// that carries the same segment.
type parsedHeader struct {
	header map[string]any
	alg    *string // nil: alg is missing or not a string
}

// headers caches parsedHeaders by segment; it is emptied when it outgrows
// maxHeaders, so a flood of made-up headers cannot grow it.
var (
	headers     sync.Map
	headersSize atomic.Int64
)

const maxHeaders = 256

func decodeHeader(seg string) (*parsedHeader, error) {
	if h, ok := headers.Load(seg); ok {
		return h.(*parsedHeader), nil
	}
	b, err := segments.DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("%w: could not base64 decode header: %w", jwt.ErrTokenMalformed, err)
	}
	h := &parsedHeader{}
	if err := json.Unmarshal(b, &h.header); err != nil {
		return nil, fmt.Errorf("%w: could not JSON decode header: %w", jwt.ErrTokenMalformed, err)
	}
	if h.header == nil { // "null" decodes without error, into no header
		return h, nil
	}
	if alg, ok := h.header["alg"].(string); ok {
		h.alg = &alg
	}
	if headersSize.Add(1) > maxHeaders {
		headers.Clear()
		headersSize.Store(1)
	}
	headers.Store(seg, h)
	return h, nil
}

// decodePlain decodes a JSON object the way encoding/json decodes it into a
// map[string]any (numbers as float64, arrays as []any, objects as
// map[string]any, the last of duplicate names winning), when the input is
// plain: valid UTF-8, no backslash anywhere (so no escapes), no control
// byte inside a string, at most maxPlainDepth levels. ok is false for
// anything else, valid or not; encoding/json then decides.
func decodePlain(b []byte) (claims jwt.MapClaims, ok bool) {
	for _, c := range b {
		if c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(b) {
		return nil, false
	}
	d := plainDecoder{b: b}
	d.space()
	if d.i >= len(b) || b[d.i] != '{' {
		return nil, false
	}
	m, ok := d.object(0)
	if !ok {
		return nil, false
	}
	d.space()
	if d.i != len(b) {
		return nil, false
	}
	return m, true
}

const maxPlainDepth = 32

// plainDecoder is decodePlain's cursor.
type plainDecoder struct {
	b []byte
	i int
}

func (d *plainDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips space and reports the byte there (0 at the end).
func (d *plainDecoder) next() byte {
	d.space()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *plainDecoder) value(depth int) (any, bool) {
	switch c := d.next(); {
	case c == '"':
		return d.str()
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return nil, false
}

// object reads {...} at d.i.
func (d *plainDecoder) object(depth int) (map[string]any, bool) {
	if depth > maxPlainDepth {
		return nil, false
	}
	d.i++ // {
	m := map[string]any{}
	if d.next() == '}' {
		d.i++
		return m, true
	}
	for {
		if d.next() != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok || d.next() != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

// array reads [...] at d.i.
func (d *plainDecoder) array(depth int) ([]any, bool) {
	if depth > maxPlainDepth {
		return nil, false
	}
	d.i++ // [
	a := []any{}
	if d.next() == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		switch d.next() {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// str reads a string without escapes at d.i.
func (d *plainDecoder) str() (string, bool) {
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return string(d.b[start:j]), true
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

func (d *plainDecoder) literal(word string) bool {
	if len(d.b)-d.i < len(word) || string(d.b[d.i:d.i+len(word)]) != word {
		return false
	}
	d.i += len(word)
	return true
}

// number reads a JSON number (RFC 8259 §6) at d.i as a float64.
func (d *plainDecoder) number() (any, bool) {
	start, b, j := d.i, d.b, d.i
	digits := func() int {
		n := 0
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
			n++
		}
		return n
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case digits() == 0:
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(b[start:j]), 64)
	if err != nil { // out of range: encoding/json refuses it
		return nil, false
	}
	d.i = j
	return f, true
}
