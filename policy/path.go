package policy

import (
	"errors"
	"strings"
)

// ErrBadPath is matched (errors.Is) by every error that refuses a request
// path; the gateway answers 400. The concrete error is a *PathError naming
// the reason.
var ErrBadPath = errors.New("policy: path not canonical")

// Reasons carried by a *PathError.
const (
	// PathNotAbsolute: the path is empty or does not start with "/".
	PathNotAbsolute = "not-absolute"
	// PathEmptySegment: "//" inside the path, or a segment made only of
	// ";params". A single trailing slash is fine.
	PathEmptySegment = "empty-segment"
	// PathDotSegment: a "." or ".." segment, plain or percent-encoded in any
	// case, also when it carries ";params".
	PathDotSegment = "dot-segment"
	// PathBackslash: "\" raw or as %5C.
	PathBackslash = "backslash"
	// PathNUL: %00 (a raw NUL is reported the same way).
	PathNUL = "nul"
	// PathControlCharacter: a byte 0x01–0x1F or 0x7F, raw or encoded.
	PathControlCharacter = "control-character"
	// PathBadPercentEncoding: "%" not followed by two hex digits.
	PathBadPercentEncoding = "bad-percent-encoding"
	// PathNonASCII: a raw byte >= 0x80 (it must be percent-encoded).
	PathNonASCII = "non-ascii"
	// PathInvalidCharacter: a raw space, "#" or "?".
	PathInvalidCharacter = "invalid-character"
	// PathDoubleEncoding: a segment that, decoded once, still contains an
	// encoded dot, slash, backslash, percent sign or control character
	// (%252e, %252f, %255c, %2500, %2525, ...).
	PathDoubleEncoding = "double-encoding"
	// PathEncodedSlash: %2F inside a segment on a route without
	// allow_encoded_slash (reported by Table.Match).
	PathEncodedSlash = "encoded-slash"
)

// PathError refuses a request path. It matches ErrBadPath with errors.Is.
// It never contains the path itself.
type PathError struct {
	// Reason is one of the kebab-case Path* constants.
	Reason string
}

// Error implements error.
func (e *PathError) Error() string { return "policy: path not canonical: " + e.Reason }

// Is reports whether target is ErrBadPath.
func (e *PathError) Is(target error) bool { return target == ErrBadPath }

var _ error = (*PathError)(nil)

// Preallocated errors: refusing a hostile path costs no allocation.
var (
	errNotAbsolute     = &PathError{Reason: PathNotAbsolute}
	errEmptySegment    = &PathError{Reason: PathEmptySegment}
	errDotSegment      = &PathError{Reason: PathDotSegment}
	errBackslash       = &PathError{Reason: PathBackslash}
	errNUL             = &PathError{Reason: PathNUL}
	errControl         = &PathError{Reason: PathControlCharacter}
	errBadPercent      = &PathError{Reason: PathBadPercentEncoding}
	errNonASCII        = &PathError{Reason: PathNonASCII}
	errInvalidChar     = &PathError{Reason: PathInvalidCharacter}
	errDoubleEncoding  = &PathError{Reason: PathDoubleEncoding}
	errEncodedSlashErr = &PathError{Reason: PathEncodedSlash}
)

// Path is a canonical request path, produced by Canonicalize. It is a small
// value type (two strings and a flag byte) meant to be passed by value. The
// zero Path is not canonical: Table.Match refuses it.
type Path struct {
	// raw is the escaped path exactly as sent; it is what is forwarded.
	raw string
	// key is what routing compares: every segment percent-decoded, with its
	// ";params" suffix removed and a decoded "/" replaced by keySlash. It
	// shares raw's bytes when raw has neither "%" nor ";".
	key   string
	flags uint8
}

const (
	// flagEncodedSlash: some segment holds %2F.
	flagEncodedSlash uint8 = 1 << iota
	// flagRewrite: the path holds "%" or ";", so key differs from raw.
	flagRewrite
)

// keySlash stands for a decoded %2F inside a segment of a routing key. NUL
// can never survive Canonicalize, so it cannot collide with a real byte.
const keySlash = 0x00

// String returns the escaped path exactly as the client sent it: the path
// forwarded upstream (unless the route strips a prefix, see
// Route.ForwardPath).
func (p Path) String() string { return p.raw }

// EncodedSlash reports whether a segment of p holds %2F; Table.Match accepts
// such a path only for a route with allow_encoded_slash.
func (p Path) EncodedSlash() bool { return p.flags&flagEncodedSlash != 0 }

// IsZero reports whether p is the zero Path (not produced by Canonicalize).
func (p Path) IsZero() bool { return p.raw == "" }

// Canonicalize checks the escaped request path (exactly as sent, without the
// query) and returns it as a Path, or a *PathError matching ErrBadPath. It
// refuses: a path not starting with "/"; "." and ".." segments, plain or
// percent-encoded in any case and also with ";params" ("/..;/", "/.;x=1/");
// empty segments ("//"; one trailing slash is fine); "\" raw or %5C; NUL and
// control characters raw or encoded; bad percent-encoding; raw bytes >= 0x80,
// space, "#" and "?"; and double encoding (a segment that, decoded once,
// still holds an encoded dot, slash, backslash, percent or control
// character). An encoded slash (%2F) is accepted here and recorded; see
// Table.Match. It does not allocate for a path without "%" and ";".
func Canonicalize(escaped string) (Path, error) {
	if escaped == "" || escaped[0] != '/' {
		return Path{}, errNotAbsolute
	}
	var flags uint8
	start := 1
	for i := 1; ; i++ {
		if i < len(escaped) && escaped[i] != '/' {
			continue
		}
		last := i == len(escaped)
		if seg := escaped[start:i]; seg == "" {
			if !last {
				return Path{}, errEmptySegment
			}
			// The root "/" or a single trailing slash.
		} else {
			f, err := checkSegment(seg)
			if err != nil {
				return Path{}, err
			}
			flags |= f
		}
		if last {
			break
		}
		start = i + 1
	}
	p := Path{raw: escaped, key: escaped, flags: flags}
	if flags&flagRewrite != 0 {
		p.key = routingKey(escaped)
	}
	return p, nil
}

// checkSegment validates one non-empty raw segment and returns the flags it
// contributes.
func checkSegment(seg string) (uint8, error) {
	var (
		flags    uint8
		nameLen  int // decoded bytes before the first ';'
		subLen   int // decoded bytes of the name since the last %2F
		subDots  = true
		inParams bool
		// Double-encoding detector over the decoded bytes: pend is 1 after
		// a decoded '%', 2 after '%' and one hex digit (kept in hi).
		pend int
		hi   byte
	)
	for j := 0; j < len(seg); j++ {
		c := seg[j]
		d := c
		switch {
		case c == '%':
			if j+2 >= len(seg) {
				return 0, errBadPercent
			}
			h, ok1 := unhex(seg[j+1])
			l, ok2 := unhex(seg[j+2])
			if !ok1 || !ok2 {
				return 0, errBadPercent
			}
			j += 2
			d = h<<4 | l
			flags |= flagRewrite
			switch {
			case d == 0:
				return 0, errNUL
			case d < 0x20 || d == 0x7f:
				return 0, errControl
			case d == '\\':
				return 0, errBackslash
			case d == '/':
				flags |= flagEncodedSlash
			}
		case c == 0:
			return 0, errNUL
		case c < 0x20 || c == 0x7f:
			return 0, errControl
		case c >= 0x80:
			return 0, errNonASCII
		case c == ' ' || c == '#' || c == '?':
			return 0, errInvalidChar
		case c == '\\':
			return 0, errBackslash
		case c == ';':
			flags |= flagRewrite
		}
		if !inParams {
			switch {
			case d == ';' || (d == '/' && c == '%'):
				// End of the name, or of a part of it split by %2F: an
				// upstream that decodes %2F must not see "." or "..".
				if subLen > 0 && subLen <= 2 && subDots {
					return 0, errDotSegment
				}
				subLen, subDots = 0, true
				inParams = d == ';'
				if d == '/' {
					nameLen++
				}
			default:
				nameLen++
				subLen++
				if d != '.' {
					subDots = false
				}
			}
		}
		switch pend {
		case 1:
			if v, ok := unhex(d); ok {
				hi, pend = v, 2
				continue
			}
		case 2:
			if v, ok := unhex(d); ok {
				if e := hi<<4 | v; e == '.' || e == '/' || e == '\\' || e == '%' || e < 0x20 || e == 0x7f {
					return 0, errDoubleEncoding
				}
			}
		}
		pend = 0
		if d == '%' {
			pend = 1
		}
	}
	if nameLen == 0 {
		return 0, errEmptySegment // ";x" alone: some servers read it as "//"
	}
	if subLen > 0 && subLen <= 2 && subDots {
		return 0, errDotSegment
	}
	return flags, nil
}

// routingKey builds the key of an already validated path: each segment
// percent-decoded and cut at its first ';' (raw or decoded), with a decoded
// '/' stored as keySlash.
func routingKey(raw string) string {
	var b strings.Builder
	b.Grow(len(raw))
	inParams := false
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c == '/' {
			b.WriteByte('/')
			inParams = false
			continue
		}
		if c == '%' {
			h, _ := unhex(raw[j+1])
			l, _ := unhex(raw[j+2])
			j += 2
			c = h<<4 | l
			if c == '/' {
				c = keySlash
			}
		}
		if inParams {
			continue
		}
		if c == ';' {
			inParams = true
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// trimKey removes the single trailing slash of a routing key ("/a/" ->
// "/a"); the root "/" stays.
func trimKey(k string) string {
	if len(k) > 1 && k[len(k)-1] == '/' {
		return k[:len(k)-1]
	}
	return k
}

// segmentCount is the number of segments of a trimmed routing key; the root
// "/" has none.
func segmentCount(k string) int {
	if k == "/" {
		return 0
	}
	return strings.Count(k, "/")
}
