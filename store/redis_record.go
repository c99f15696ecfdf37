package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Fields of a session or family record (a Redis hash). Lists and maps are
// JSON; times are unix milliseconds.
const (
	fHandle      = "hd"
	fSubject     = "sub"
	fSubjectHash = "uh" // names the subject index, for deletions in scripts
	fRoles       = "ro"
	fScopes      = "sc"
	fACR         = "acr"
	fAMR         = "amr"
	fAttributes  = "att"
	fAuthTime    = "at"
	fMode        = "m"
	fCreated     = "c"
	fLastSeen    = "l"
	fExpires     = "e"
	fIdleUntil   = "x" // min(ExpiresAt, last use + idle): the record's end
	fUpdated     = "u"
	fGeneration  = "g"
	fIDHash      = "h" // SHA-256 of the session ID (opaque sessions)
	fCurrent     = "t" // sha(current refresh token) (families)
)

// record is a decoded session or family record.
type record struct {
	s         Session
	idleUntil time.Time
	idHash    string
}

func (rec record) live(now time.Time) bool {
	return now.Before(rec.s.ExpiresAt) && now.Before(rec.idleUntil)
}

// encodeRecord is the field/value list of a new record.
func encodeRecord(s Session, idle time.Time, idHash []byte, current string) ([]any, error) {
	a := []any{
		fHandle, s.Handle,
		fSubject, s.Subject,
		fSubjectHash, subjectHash(s.Subject),
		fCreated, msArg(ms(s.CreatedAt)),
		fLastSeen, msArg(ms(s.LastSeenAt)),
		fExpires, msArg(ms(s.ExpiresAt)),
		fIdleUntil, msArg(ms(idle)),
	}
	if s.Mode != "" {
		a = append(a, fMode, s.Mode, fGeneration, strconv.FormatInt(s.Generation, 10), fCurrent, current)
	} else {
		a = append(a, fIDHash, idHash)
	}
	return appendIdentity(a, s.Roles, s.Scopes, s.AMR, s.Attributes, &s.ACR, &s.AuthTime)
}

// encodeUpdate is the field/value list that applies u.
func encodeUpdate(u Update) ([]any, error) {
	var a []any
	var err error
	if u.Roles != nil {
		if a, err = appendJSON(a, fRoles, *u.Roles); err != nil {
			return nil, err
		}
	}
	if u.Scopes != nil {
		if a, err = appendJSON(a, fScopes, *u.Scopes); err != nil {
			return nil, err
		}
	}
	if u.AMR != nil {
		if a, err = appendJSON(a, fAMR, *u.AMR); err != nil {
			return nil, err
		}
	}
	return appendIdentity(a, nil, nil, nil, nil, u.ACR, u.AuthTime)
}

// appendIdentity adds the non-empty identity fields.
func appendIdentity(a []any, roles, scopes, amr []string, attrs map[string]string, acr *string, authTime *time.Time) ([]any, error) {
	var err error
	for _, f := range []struct {
		name string
		v    []string
	}{{fRoles, roles}, {fScopes, scopes}, {fAMR, amr}} {
		if len(f.v) > 0 {
			if a, err = appendJSON(a, f.name, f.v); err != nil {
				return nil, err
			}
		}
	}
	if len(attrs) > 0 {
		if a, err = appendJSON(a, fAttributes, attrs); err != nil {
			return nil, err
		}
	}
	if acr != nil {
		a = append(a, fACR, *acr)
	}
	if authTime != nil {
		a = append(a, fAuthTime, msArg(ms(*authTime)))
	}
	return a, nil
}

func appendJSON(a []any, field string, v any) ([]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s: %w", field, err)
	}
	return append(a, field, string(b)), nil
}

// rawRecord is a record's fields as stored, before decoding.
type rawRecord struct {
	handle, subject, roles, scopes, acr, amr, attributes, authTime, mode string
	created, lastSeen, expires, idleUntil, updated, generation, idHash   string
}

// sessionFields are the fields a session read fetches (HMGET), in the
// order rawFromValues takes them.
var sessionFields = [...]string{
	fHandle, fSubject, fRoles, fScopes, fACR, fAMR, fAttributes, fAuthTime, fMode,
	fCreated, fLastSeen, fExpires, fIdleUntil, fUpdated, fGeneration, fIDHash,
}

// rawFromValues takes the values of sessionFields, in order (a missing
// field is "").
func rawFromValues(v []string) rawRecord {
	_ = v[len(sessionFields)-1]
	return rawRecord{
		handle: v[0], subject: v[1], roles: v[2], scopes: v[3], acr: v[4], amr: v[5], attributes: v[6], authTime: v[7], mode: v[8],
		created: v[9], lastSeen: v[10], expires: v[11], idleUntil: v[12], updated: v[13], generation: v[14], idHash: v[15],
	}
}

// rawFromMap takes the fields of a whole hash (HGETALL).
func rawFromMap(f map[string]string) rawRecord {
	return rawRecord{
		handle: f[fHandle], subject: f[fSubject], roles: f[fRoles], scopes: f[fScopes], acr: f[fACR], amr: f[fAMR],
		attributes: f[fAttributes], authTime: f[fAuthTime], mode: f[fMode],
		created: f[fCreated], lastSeen: f[fLastSeen], expires: f[fExpires], idleUntil: f[fIdleUntil],
		updated: f[fUpdated], generation: f[fGeneration], idHash: f[fIDHash],
	}
}

// decodeRecord decodes a record's fields; a missing or empty field is the
// zero value. It runs on every session request, so it takes no pointer into
// rec that could escape (a table of field pointers, json.Unmarshal into a
// field): rec, a few hundred bytes, would move to the heap.
func decodeRecord(f rawRecord) (rec record, err error) {
	var d fieldDecoder
	rec.s.Handle, rec.s.Subject, rec.s.ACR, rec.s.Mode = f.handle, f.subject, f.acr, f.mode
	rec.idHash = f.idHash
	rec.s.AuthTime = d.ms(fAuthTime, f.authTime)
	rec.s.CreatedAt = d.ms(fCreated, f.created)
	rec.s.LastSeenAt = d.ms(fLastSeen, f.lastSeen)
	rec.s.ExpiresAt = d.ms(fExpires, f.expires)
	rec.idleUntil = d.ms(fIdleUntil, f.idleUntil)
	rec.s.UpdatedAt = d.ms(fUpdated, f.updated)
	rec.s.Generation = d.int(fGeneration, f.generation)
	rec.s.Roles = d.list(fRoles, f.roles)
	rec.s.Scopes = d.list(fScopes, f.scopes)
	rec.s.AMR = d.list(fAMR, f.amr)
	if f.attributes != "" {
		var attrs map[string]string // not &rec.s.Attributes: rec would escape
		if err := json.Unmarshal([]byte(f.attributes), &attrs); err != nil {
			d.fail(fAttributes, err)
		}
		rec.s.Attributes = attrs
	}
	if d.err != nil {
		return record{}, d.err
	}
	if rec.s.Handle == "" || rec.s.Subject == "" || rec.s.ExpiresAt.IsZero() || rec.idleUntil.IsZero() {
		return record{}, fmt.Errorf("store: corrupt session record")
	}
	return rec, nil
}

// fieldDecoder decodes a record's fields one by one and keeps the first
// error; "" decodes to the zero value.
type fieldDecoder struct{ err error }

func (d *fieldDecoder) fail(name string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("store: corrupt session record: %s: %w", name, err)
	}
}

// int decodes a decimal integer.
func (d *fieldDecoder) int(name, v string) int64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		d.fail(name, err)
	}
	return n
}

// ms decodes a time in unix milliseconds.
func (d *fieldDecoder) ms(name, v string) time.Time {
	if n := d.int(name, v); n != 0 {
		return fromMS(n)
	}
	return time.Time{}
}

// list decodes a JSON list of strings.
func (d *fieldDecoder) list(name, v string) []string {
	if v == "" {
		return nil
	}
	l, err := decodeStrings(v)
	if err != nil {
		d.fail(name, err)
	}
	return l
}

// decodeStrings decodes a JSON list of strings, as json.Marshal wrote it.
// The list of a session read on every request is decoded without
// encoding/json when it is plain: quoted strings without any escape,
// separated by commas, in valid UTF-8 (what json.Marshal writes for
// names like "orders:read"). Anything else, and anything that is not such a
// list, takes encoding/json, which gives the answer or the error.
func decodeStrings(v string) ([]string, error) {
	if len(v) >= 2 && v[0] == '[' && v[len(v)-1] == ']' && plainJSON(v) {
		body := v[1 : len(v)-1]
		if body == "" {
			return []string{}, nil
		}
		out := make([]string, 0, strings.Count(body, ",")+1)
		for {
			if len(body) < 2 || body[0] != '"' {
				break
			}
			end := strings.IndexByte(body[1:], '"') + 1
			if end == 0 {
				break
			}
			out = append(out, body[1:end])
			body = body[end+1:]
			if body == "" {
				return out, nil
			}
			if body[0] != ',' {
				break
			}
			body = body[1:]
		}
	}
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// plainJSON reports valid UTF-8 without a backslash or a control byte.
func plainJSON(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\\' || c < 0x20 {
			return false
		}
	}
	return utf8.ValidString(v)
}

// flatMap turns a script's HGETALL reply (field, value, ...) into a map.
func flatMap(v any) (map[string]string, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("store: unexpected script reply %T", v)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok1 := list[i].(string)
		val, ok2 := list[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("store: unexpected script reply field %T", list[i])
		}
		m[k] = val
	}
	return m, nil
}

// decodeFlat decodes a record returned by a script.
func decodeFlat(v any) (record, error) {
	f, err := flatMap(v)
	if err != nil {
		return record{}, err
	}
	return decodeRecord(rawFromMap(f))
}
