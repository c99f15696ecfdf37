package mint

import (
	"encoding/base64"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintAccessClaims(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testP256())
	authTime := t0.Add(-90 * time.Minute)
	in := Access{
		Issuer:    "https://gw.example/",
		Audience:  []string{"orders-api"},
		Subject:   "alice",
		SessionID: "h-123",
		Roles:     []string{"admin", "ops"},
		Scopes:    []string{"orders:read", "orders:write"},
		AMR:       []string{"pwd", "otp"},
		ACR:       "urn:mfa",
		AuthTime:  authTime,
		IssuedAt:  t0.Add(700 * time.Millisecond), // truncated to t0
		TTL:       5 * time.Minute,
	}
	tok, jti, err := s.MintAccess(in)
	if err != nil {
		t.Fatal(err)
	}
	hdr, c := verify(t, tok, s.Key(), t0)
	if hdr["typ"] != "at+jwt" {
		t.Errorf("typ = %v, want at+jwt (RFC 9068)", hdr["typ"])
	}

	want := []string{"iss", "aud", "sub", "exp", "iat", "jti", "sid", "roles", "scope", "acr", "amr", "auth_time"}
	got := claimNames(c)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("claims = %v, want exactly %v", got, want)
	}
	if v := claimString(t, c, "iss"); v != in.Issuer {
		t.Errorf("iss = %q", v)
	}
	if v := claimString(t, c, "aud"); v != "orders-api" {
		t.Errorf("aud = %q, want the single audience as a string", v)
	}
	if v := claimString(t, c, "sub"); v != "alice" {
		t.Errorf("sub = %q", v)
	}
	if v := claimInt(t, c, "iat"); v != t0.Unix() {
		t.Errorf("iat = %d, want %d (IssuedAt truncated to the second)", v, t0.Unix())
	}
	if v := claimInt(t, c, "exp"); v != t0.Add(5*time.Minute).Unix() {
		t.Errorf("exp = %d, want iat+TTL = %d", v, t0.Add(5*time.Minute).Unix())
	}
	if v := claimString(t, c, "jti"); v != jti {
		t.Errorf("jti claim %q != returned jti %q", v, jti)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(raw) != 16 {
		t.Errorf("jti %q is not 128 bits of base64url (%d bytes, %v)", jti, len(raw), err)
	}
	if v := claimString(t, c, "sid"); v != "h-123" {
		t.Errorf("sid = %q", v)
	}
	if v := claimStrings(t, c, "roles"); !slices.Equal(v, in.Roles) {
		t.Errorf("roles = %v", v)
	}
	if v := claimString(t, c, "scope"); v != "orders:read orders:write" {
		t.Errorf("scope = %q, want space-separated scopes", v)
	}
	if v := claimString(t, c, "acr"); v != "urn:mfa" {
		t.Errorf("acr = %q", v)
	}
	if v := claimStrings(t, c, "amr"); !slices.Equal(v, in.AMR) {
		t.Errorf("amr = %v", v)
	}
	if v := claimInt(t, c, "auth_time"); v != authTime.Unix() {
		t.Errorf("auth_time = %d, want %d", v, authTime.Unix())
	}

	// A relying party rejects it once exp has passed.
	late := func() time.Time { return t0.Add(5*time.Minute + time.Second) }
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return s.Key().Public, nil }, jwt.WithTimeFunc(late))
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("verifying after exp: %v, want ErrTokenExpired", err)
	}
}

func TestMintAccessAudienceAndOptionalClaims(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	tests := []struct {
		name     string
		aud      []string
		wantAud  any // nil: absent; string; []string
		authTime time.Time
	}{
		{"no audience", nil, nil, time.Time{}},
		{"empty audience list", []string{}, nil, time.Time{}},
		{"one audience", []string{"a"}, "a", t0},
		{"two audiences", []string{"a", "b"}, []string{"a", "b"}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, _, err := s.MintAccess(Access{Issuer: "i", Audience: tt.aud, Subject: "s", AuthTime: tt.authTime, IssuedAt: t0, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			_, c := verify(t, tok, s.Key(), t0)
			switch want := tt.wantAud.(type) {
			case nil:
				if _, ok := c["aud"]; ok {
					t.Errorf("aud = %v, want absent", c["aud"])
				}
			case string:
				if got := claimString(t, c, "aud"); got != want {
					t.Errorf("aud = %q, want %q", got, want)
				}
			case []string:
				if got := claimStrings(t, c, "aud"); !slices.Equal(got, want) {
					t.Errorf("aud = %v, want %v", got, want)
				}
			}
			if _, ok := c["auth_time"]; ok != !tt.authTime.IsZero() {
				t.Errorf("auth_time present = %v, want %v", ok, !tt.authTime.IsZero())
			}
			// Empty lists are still arrays, never null.
			if len(claimStrings(t, c, "roles")) != 0 || len(claimStrings(t, c, "amr")) != 0 {
				t.Errorf("roles/amr = %v/%v, want empty arrays", c["roles"], c["amr"])
			}
			if claimString(t, c, "scope") != "" {
				t.Errorf("scope = %v, want empty string", c["scope"])
			}
		})
	}
}

func TestMintAccessUniqueJTI(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	seen := map[string]bool{}
	for range 100 {
		_, jti, err := s.MintAccess(Access{Issuer: "i", Subject: "s", IssuedAt: t0, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if seen[jti] {
			t.Fatalf("jti %q minted twice", jti)
		}
		seen[jti] = true
	}
}

func TestMintAccessInvalid(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	ok := Access{Issuer: "i", Subject: "s", IssuedAt: t0, TTL: time.Minute}
	tests := []struct {
		name  string
		tweak func(*Access)
	}{
		{"no issuer", func(a *Access) { a.Issuer = "" }},
		{"no subject", func(a *Access) { a.Subject = "" }},
		{"no issue time", func(a *Access) { a.IssuedAt = time.Time{} }},
		{"zero ttl", func(a *Access) { a.TTL = 0 }},
		{"negative ttl", func(a *Access) { a.TTL = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := ok
			tt.tweak(&a)
			tok, jti, err := s.MintAccess(a)
			if !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("error = %v, want ErrInvalidClaims", err)
			}
			if tok != "" || jti != "" {
				t.Errorf("returned token %q / jti %q with an error", tok, jti)
			}
		})
	}
}
