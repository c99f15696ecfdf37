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

// decodeRecord reads a record from its fields.
func decodeRecord(f map[string]string) (record, error) {
	rec := record{
		s: Session{
			Handle:  f[fHandle],
			Subject: f[fSubject],
			ACR:     f[fACR],
			Mode:    f[fMode],
		},
		idHash: f[fIDHash],
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{
		{fAuthTime, &rec.s.AuthTime}, {fCreated, &rec.s.CreatedAt}, {fLastSeen, &rec.s.LastSeenAt},
		{fExpires, &rec.s.ExpiresAt}, {fIdleUntil, &rec.idleUntil}, {fUpdated, &rec.s.UpdatedAt},
	} {
		v, ok := f[t.name]
		if !ok || v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return record{}, fmt.Errorf("store: corrupt session record: %s: %w", t.name, err)
		}
		*t.dst = fromMS(n)
	}
	if v, ok := f[fGeneration]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return record{}, fmt.Errorf("store: corrupt session record: %s: %w", fGeneration, err)
		}
		rec.s.Generation = n
	}
	for _, j := range []struct {
		name string
		dst  *[]string
	}{{fRoles, &rec.s.Roles}, {fScopes, &rec.s.Scopes}, {fAMR, &rec.s.AMR}} {
		if v, ok := f[j.name]; ok && v != "" {
			l, err := decodeStrings(v)
			if err != nil {
				return record{}, fmt.Errorf("store: corrupt session record: %s: %w", j.name, err)
			}
			*j.dst = l
		}
	}
	if v, ok := f[fAttributes]; ok && v != "" {
		if err := json.Unmarshal([]byte(v), &rec.s.Attributes); err != nil {
			return record{}, fmt.Errorf("store: corrupt session record: %s: %w", fAttributes, err)
		}
	}
	if rec.s.Handle == "" || rec.s.Subject == "" || rec.s.ExpiresAt.IsZero() || rec.idleUntil.IsZero() {
		return record{}, fmt.Errorf("store: corrupt session record")
	}
	return rec, nil
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
	return decodeRecord(f)
}
