package store

import (
	"encoding/json"
	"slices"
	"testing"
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
