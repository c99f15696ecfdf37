package validator

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// refParser is what parseToken stands in for.
var refParser = jwt.NewParser(jwt.WithStrictDecoding())

// plainSeeds are payloads for decodePlain, plain or not, valid or not.
var plainSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"sub":"alice","aud":["api","x"],"exp":1893456000,"nbf":1.5e9,"roles":["user"],"n":null,"t":true,"f":false}`,
	`{"a":{"b":{"c":[1,[2,{}],[]]}}}`, `{"a":1,"a":2}`, `{"a":-0}`, `{"a":0.5}`, `{"a":1E+2}`, `{"a":1e-2}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1e400}`, `{"a":+1}`, `{"a":truex}`, `{"a":nul}`,
	`{"a":"\u0041"}`, `{"a":"b\"c"}`, "{\"a\":\"b\tc\"}", "{\"a\":\"\xff\"}", `{"é":"日本"}`, "{\"a\":\"\x7f\"}",
	`{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":1}x`, `{"a":1}{}`,
	`[]`, `null`, `"x"`, `1`, ``, ` `, `{`, `{"a"`, `{"a":`, `{"a":[`, "\ufeff{}", `{"a":1}` + " \n\r\t",
	strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40),
	strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40),
}

// checkPlain holds decodePlain to encoding/json: what it decodes,
// encoding/json decodes to the same map.
func checkPlain(t *testing.T, b []byte) {
	t.Helper()
	got, ok := decodePlain(b)
	if !ok {
		return
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("decodePlain(%q) = %v; encoding/json refuses it: %v", b, got, err)
	}
	if !reflect.DeepEqual(map[string]any(got), want) {
		t.Fatalf("decodePlain(%q) = %#v; encoding/json %#v", b, got, want)
	}
}

func TestDecodePlainMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	decoded := 0
	for _, s := range plainSeeds {
		checkPlain(t, []byte(s))
		if _, ok := decodePlain([]byte(s)); ok {
			decoded++
		}
	}
	// The common payloads take the fast path: the test is not vacuous.
	for _, s := range []string{`{}`, `{"a":1}`, plainSeeds[3], plainSeeds[4], `{"a":1,"a":2}`} {
		if _, ok := decodePlain([]byte(s)); !ok {
			t.Errorf("decodePlain(%s) left to encoding/json", s)
		}
	}
	// And what it must not take, it leaves.
	for _, s := range []string{`{"a":"\u0041"}`, "{\"a\":\"\xff\"}", `{"a":1e400}`, `{"a":01}`, `[]`, `null`, `{"a":1}x`,
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40)} {
		if _, ok := decodePlain([]byte(s)); ok {
			t.Errorf("decodePlain(%s) took it; want it left to encoding/json", s)
		}
	}
}

func FuzzDecodePlain(f *testing.F) {
	for _, s := range plainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkPlain)
}

// checkParse holds parseToken to refParser.ParseUnverified: the same token
// parts, or the same error class.
func checkParse(t *testing.T, token string) {
	t.Helper()
	want := jwt.MapClaims{}
	wtok, _, werr := refParser.ParseUnverified(token, want)
	gtok, got, gerr := parseToken(token)
	for _, class := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable} {
		if errors.Is(gerr, class) != errors.Is(werr, class) {
			t.Fatalf("parseToken(%q) error %v; ParseUnverified %v", token, gerr, werr)
		}
	}
	if (gerr == nil) != (werr == nil) || (gtok == nil) != (wtok == nil) {
		t.Fatalf("parseToken(%q) = %v, %v; ParseUnverified %v, %v", token, gtok, gerr, wtok, werr)
	}
	if gtok == nil {
		return
	}
	if !reflect.DeepEqual(gtok.Header, wtok.Header) {
		t.Fatalf("parseToken(%q) header %#v; ParseUnverified %#v", token, gtok.Header, wtok.Header)
	}
	// The claims were decoded when ParseUnverified got past them: no error,
	// an alg it cannot use, or a signature segment it cannot decode.
	if werr == nil || errors.Is(werr, jwt.ErrTokenUnverifiable) || wtok.Method != nil {
		if !reflect.DeepEqual(map[string]any(got), map[string]any(want)) {
			t.Fatalf("parseToken(%q) claims %#v; ParseUnverified %#v", token, got, want)
		}
	}
	if werr == nil {
		if gtok.Method != wtok.Method || string(gtok.Signature) != string(wtok.Signature) {
			t.Fatalf("parseToken(%q): method %v, signature %x; ParseUnverified %v, %x", token, gtok.Method, gtok.Signature, wtok.Method, wtok.Signature)
		}
	}
}

func parseSeeds() []string {
	h := b64([]byte(`{"alg":"RS256","kid":"k1","typ":"JWT"}`))
	p := b64([]byte(`{"sub":"alice","exp":1893456000,"roles":["a","b"]}`))
	s := b64([]byte("signature"))
	return []string{
		h + "." + p + "." + s,
		h + "." + p + ".",
		h + "." + p,
		h + "." + p + "." + s + ".x",
		"",
		"..",
		h + "." + p + "." + s + "=",
		h + "=." + p + "." + s,
		h + "." + p + "=." + s,
		h + "." + p + ".!!",
		b64([]byte(`{"alg":"XX9"}`)) + "." + p + ".!!",
		b64([]byte(`{"alg":1}`)) + "." + p + "." + s,
		b64([]byte(`{"kid":"k"}`)) + "." + p + "." + s,
		b64([]byte(`null`)) + "." + p + "." + s,
		b64([]byte(`[]`)) + "." + p + "." + s,
		b64([]byte(`{"alg":"none"}`)) + "." + p + "." + s,
		b64([]byte(`{"alg":"RS256","alg":"ES256"}`)) + "." + p + "." + s,
		h + "." + b64([]byte(`null`)) + "." + s,
		h + "." + b64([]byte(`{"a":"\u0041","b":1e400}`)) + "." + s,
		h + "." + b64([]byte(`{"a":1,"a":"x"}`)) + "." + s,
		h + "." + b64([]byte(`{"a":1}x`)) + "." + s,
		h + "." + b64([]byte("{\"a\":\"\xff\"}")) + "." + s,
		h + "\n." + p + "." + s,
	}
}

func TestParseTokenMatchesParseUnverified(t *testing.T) {
	t.Parallel()
	for _, tok := range parseSeeds() {
		checkParse(t, tok)
		checkParse(t, tok) // the second time from the header cache
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s)
	}
	f.Fuzz(checkParse)
}
