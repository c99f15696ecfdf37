package store

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var stringListSeeds = []string{
	`[]`, `[""]`, `["a"]`, `["user","orders:read"]`, `["a", "b"]`, `[ "a"]`,
	`["a\"b"]`, `["\u003cscript\u003e"]`, `["é","日本"]`, "[\"a\xffb\"]", "[\"a\x01\"]",
	`["a",]`, `[,]`, `["a"x]`, `["a""b"]`, `[1]`, `[null]`, `null`, `["a"`, `"a"]`, `[`, `]`, ``,
	`[true,"a"]`, `["a",1]`, `{"a":"b"}`,
}

// decodeStrings gives encoding/json's answer, and fails where it fails.
func TestDecodeStringsMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, v := range stringListSeeds {
		checkDecodeStrings(t, v)
	}
	for _, l := range [][]string{{}, {"user"}, {"a b", "c,d", `q"uote`, "back\\slash", "<&>", "tab\t", "ünï"}} {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeStrings(string(b))
		if err != nil || !slices.Equal(got, l) {
			t.Errorf("decodeStrings(%s) = %q, %v; want %q", b, got, err, l)
		}
	}
}

func checkDecodeStrings(t *testing.T, v string) {
	t.Helper()
	var want []string
	wantErr := json.Unmarshal([]byte(v), &want)
	got, err := decodeStrings(v)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decodeStrings(%q) error %v; encoding/json %v", v, err, wantErr)
	}
	if err == nil && (!slices.Equal(got, want) || (got == nil) != (want == nil)) {
		t.Fatalf("decodeStrings(%q) = %#v; encoding/json %#v", v, got, want)
	}
}

func FuzzDecodeStrings(f *testing.F) {
	for _, v := range stringListSeeds {
		f.Add(v)
	}
	f.Fuzz(checkDecodeStrings)
}

// TestSessionFieldsOrder: a session read by HMGET (values in sessionFields
// order) decodes to the same fields as the whole hash read by HGETALL.
func TestSessionFieldsOrder(t *testing.T) {
	m := map[string]string{}
	values := make([]string, len(sessionFields))
	for i, f := range sessionFields {
		m[f] = "value of " + f
		values[i] = m[f]
	}
	if got, want := rawFromValues(values), rawFromMap(m); got != want {
		t.Fatalf("from HMGET values %+v\nfrom the hash %+v", got, want)
	}
	seen := map[string]bool{}
	for _, f := range sessionFields {
		if seen[f] {
			t.Errorf("field %q read twice", f)
		}
		seen[f] = true
	}
}

// TestDecodeRecord: a record decodes field by field, and a corrupt one is
// an error that names the first bad field, never a half-decoded session.
func TestDecodeRecord(t *testing.T) {
	good := rawRecord{
		handle: "h1", subject: "alice", roles: `["admin","user"]`, scopes: `["orders:read"]`, acr: "mfa",
		amr: `["pwd","otp"]`, attributes: `{"tenant":"t1"}`, authTime: "1700000000000",
		created: "1700000000000", lastSeen: "1700000060000", expires: "1700043200000",
		idleUntil: "1700001800000", updated: "1700000030000", generation: "3", idHash: "x",
	}
	rec, err := decodeRecord(good)
	if err != nil {
		t.Fatal(err)
	}
	s := rec.s
	if s.Handle != "h1" || s.Subject != "alice" || s.ACR != "mfa" || rec.idHash != "x" || s.Generation != 3 ||
		!slices.Equal(s.Roles, []string{"admin", "user"}) || !slices.Equal(s.Scopes, []string{"orders:read"}) ||
		!slices.Equal(s.AMR, []string{"pwd", "otp"}) || s.Attributes["tenant"] != "t1" ||
		!s.AuthTime.Equal(time.UnixMilli(1700000000000)) || !s.LastSeenAt.Equal(time.UnixMilli(1700000060000)) ||
		!s.ExpiresAt.Equal(time.UnixMilli(1700043200000)) || !rec.idleUntil.Equal(time.UnixMilli(1700001800000)) ||
		!s.UpdatedAt.Equal(time.UnixMilli(1700000030000)) || !s.CreatedAt.Equal(time.UnixMilli(1700000000000)) {
		t.Fatalf("decoded %+v (idle until %v)", rec.s, rec.idleUntil)
	}
	if rec, err := decodeRecord(rawRecord{handle: "h", subject: "s", expires: "2", idleUntil: "1"}); err != nil ||
		rec.s.Roles != nil || rec.s.Attributes != nil || !rec.s.AuthTime.IsZero() || rec.s.Generation != 0 {
		t.Fatalf("a record with only the required fields: %+v, %v", rec.s, err)
	}
	for _, c := range []struct {
		name string
		mod  func(*rawRecord)
		want string // in the error
	}{
		{"bad time", func(r *rawRecord) { r.lastSeen = "soon" }, "corrupt session record: l:"},
		{"bad generation", func(r *rawRecord) { r.generation = "3.5" }, "corrupt session record: g:"},
		{"bad list", func(r *rawRecord) { r.scopes = `["a",` }, "corrupt session record: sc:"},
		{"bad attributes", func(r *rawRecord) { r.attributes = `[1]` }, "corrupt session record: att:"},
		{"first bad field named", func(r *rawRecord) { r.authTime, r.amr = "x", "y" }, "corrupt session record: at:"},
		{"no handle", func(r *rawRecord) { r.handle = "" }, "corrupt session record"},
		{"no subject", func(r *rawRecord) { r.subject = "" }, "corrupt session record"},
		{"no expiry", func(r *rawRecord) { r.expires = "" }, "corrupt session record"},
		{"no idle end", func(r *rawRecord) { r.idleUntil = "" }, "corrupt session record"},
	} {
		raw := good
		c.mod(&raw)
		rec, err := decodeRecord(raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.want)
		}
		if rec.s.Handle != "" || rec.s.Roles != nil {
			t.Errorf("%s: a corrupt record decoded partly: %+v", c.name, rec.s)
		}
	}
}
