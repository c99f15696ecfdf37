package denylist

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/store"
)

// compact builds header.payload.signature from raw JSON (no signing).
func compact(header, payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
}

func TestRevocationFromToken(t *testing.T) {
	const hdr = `{"alg":"RS256","kid":"k1","typ":"JWT"}`
	noJTI := compact(hdr, `{"iss":"https://idp.example.com/","sub":"alice","exp":1900000000}`)
	sum := sha256.Sum256([]byte(noJTI[:strings.LastIndexByte(noJTI, '.')]))
	noJTIHash := "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
	exp := time.Unix(1900000000, 0)

	tests := []struct {
		name    string
		token   string
		want    store.Revocation
		wantErr error
	}{
		{"jti", compact(hdr, `{"iss":"https://idp.example.com/","jti":"abc-123","exp":1900000000}`),
			store.Revocation{Kind: store.KindToken, Issuer: iss, ID: "abc-123", ExpiresAt: exp}, nil},
		{"no jti: signing-input hash", noJTI,
			store.Revocation{Kind: store.KindToken, Issuer: iss, ID: noJTIHash, ExpiresAt: exp}, nil},
		{"empty jti counts as none", compact(hdr, `{"iss":"x","jti":"","exp":1900000000}`),
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "", ExpiresAt: exp}, nil},
		{"fractional exp truncated", compact(hdr, `{"iss":"x","jti":"j","exp":1900000000.9}`),
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "j", ExpiresAt: exp}, nil},
		{"no iss", compact(hdr, `{"jti":"j","exp":1900000000}`),
			store.Revocation{Kind: store.KindToken, ID: "j", ExpiresAt: exp}, nil},
		{"unknown alg is fine (not verified)", compact(`{"alg":"XX999"}`, `{"iss":"x","jti":"j","exp":1900000000}`),
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "j", ExpiresAt: exp}, nil},
		{"surrounding space", " " + compact(hdr, `{"iss":"x","jti":"j","exp":1900000000}`) + "\n",
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "j", ExpiresAt: exp}, nil},
		{"no exp", compact(hdr, `{"iss":"x","jti":"j"}`),
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "j"}, ErrNoExpiry},
		{"null exp", compact(hdr, `{"iss":"x","jti":"j","exp":null}`),
			store.Revocation{Kind: store.KindToken, Issuer: "x", ID: "j"}, ErrNoExpiry},
		{"exp string", compact(hdr, `{"jti":"j","exp":"soon"}`), store.Revocation{}, ErrInvalid},
		{"exp negative", compact(hdr, `{"jti":"j","exp":-5}`), store.Revocation{}, ErrInvalid},
		{"exp huge", compact(hdr, `{"jti":"j","exp":1e300}`), store.Revocation{}, ErrInvalid},
		{"jti number", compact(hdr, `{"jti":42,"exp":1900000000}`), store.Revocation{}, ErrInvalid},
		{"iss object", compact(hdr, `{"iss":{},"exp":1900000000}`), store.Revocation{}, ErrInvalid},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9", store.Revocation{}, ErrInvalid},
		{"JWE five parts", "a.b.c.d.e", store.Revocation{}, ErrInvalid},
		{"opaque", "not-a-jwt", store.Revocation{}, ErrInvalid},
		{"empty", "", store.Revocation{}, ErrInvalid},
		{"bad base64", "!!!." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1}`)) + ".s", store.Revocation{}, ErrInvalid},
		{"payload not JSON", compact(hdr, `exp=1`), store.Revocation{}, ErrInvalid},
		{"payload array", compact(hdr, `[1,2]`), store.Revocation{}, ErrInvalid},
		{"header null", compact(`null`, `{"exp":1900000000}`), store.Revocation{}, ErrInvalid},
		{"too long", compact(hdr, `{"exp":1900000000,"pad":"`+strings.Repeat("x", maxTokenBytes)+`"}`), store.Revocation{}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RevocationFromToken(tt.token)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && tt.token != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.token)) {
				t.Errorf("error %q echoes the token", err)
			}
			if tt.want.ID == "" && tt.wantErr == nil {
				// "empty jti counts as none": the hash of this token.
				tok := strings.TrimSpace(tt.token)
				s := sha256.Sum256([]byte(tok[:strings.LastIndexByte(tok, '.')]))
				tt.want.ID = "sha256:" + base64.RawURLEncoding.EncodeToString(s[:])
			}
			if got.Kind != tt.want.Kind || got.Issuer != tt.want.Issuer || got.ID != tt.want.ID || !got.ExpiresAt.Equal(tt.want.ExpiresAt) {
				t.Errorf("got %+v (exp %v), want %+v (exp %v)", got, got.ExpiresAt, tt.want, tt.want.ExpiresAt)
			}
		})
	}
}

func FuzzRevocationFromToken(f *testing.F) {
	f.Add(compact(`{"alg":"ES256"}`, `{"iss":"x","jti":"j","exp":1900000000}`))
	f.Add(compact(`{"alg":"ES256"}`, `{"iss":"x","exp":1900000000.5}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		r, err := RevocationFromToken(token)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoExpiry) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if r.Kind != store.KindToken || r.ID == "" || r.ExpiresAt.IsZero() {
			t.Fatalf("incomplete revocation %+v", r)
		}
	})
}

func FuzzAppendKey(f *testing.F) {
	f.Add(store.KindToken, "https://idp.example.com/", "abc")
	f.Add(store.KindSession, "", "handle")
	f.Add(store.KindToken, "", "sha256:x")
	f.Add("", "é", "")
	f.Fuzz(func(t *testing.T, kind, issuer, id string) {
		r := store.Revocation{Kind: kind, Issuer: issuer, ID: id}
		if got, want := string(appendKey([]byte("junk"), r)[4:]), r.Key(); got != want {
			t.Fatalf("appendKey(%+v) = %q, want Key() %q", r, got, want)
		}
	})
}
