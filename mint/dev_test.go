package mint

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintDev(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testP256())
	tests := []struct {
		name      string
		in        Dev
		want      []string // claim names, exactly
		wantTTL   int64
		wantAud   any
		wantJTI   string
		checkMore func(t *testing.T, c map[string]any)
	}{
		{
			name:    "subject only",
			in:      Dev{Subject: "dev", Now: t0},
			want:    []string{"sub", "iat", "exp", "jti"},
			wantTTL: int64(DefaultDevTTL / time.Second),
		},
		{
			name: "every flag",
			in: Dev{
				Issuer: "https://idp.example/", Audience: []string{"orders-api"}, Subject: "dev",
				Roles: []string{"admin", "ops"}, Scope: "orders:read orders:write", ACR: "urn:mfa",
				AMR: []string{"pwd", "otp"}, AuthTime: t0.Add(-time.Hour).Unix(), TTL: 2 * time.Minute,
				JTI: "fixed-id", Now: t0.Add(999 * time.Millisecond),
			},
			want:    []string{"iss", "aud", "sub", "iat", "exp", "jti", "roles", "scope", "acr", "amr", "auth_time"},
			wantTTL: 120,
			wantAud: "orders-api",
			wantJTI: "fixed-id",
			checkMore: func(t *testing.T, c map[string]any) {
				if v := claimStrings(t, c, "roles"); !slices.Equal(v, []string{"admin", "ops"}) {
					t.Errorf("roles = %v", v)
				}
				if v := claimStrings(t, c, "amr"); !slices.Equal(v, []string{"pwd", "otp"}) {
					t.Errorf("amr = %v", v)
				}
				if v := claimString(t, c, "scope"); v != "orders:read orders:write" {
					t.Errorf("scope = %q", v)
				}
				if v := claimInt(t, c, "auth_time"); v != t0.Add(-time.Hour).Unix() {
					t.Errorf("auth_time = %d", v)
				}
			},
		},
		{
			name:    "two audiences",
			in:      Dev{Subject: "dev", Audience: []string{"a", "b"}, Now: t0},
			want:    []string{"aud", "sub", "iat", "exp", "jti"},
			wantTTL: int64(DefaultDevTTL / time.Second),
			wantAud: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := s.MintDev(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			hdr, c := verify(t, tok, s.Key(), t0)
			if hdr["typ"] != "JWT" {
				t.Errorf("typ = %v, want JWT", hdr["typ"])
			}
			got := claimNames(c)
			slices.Sort(got)
			slices.Sort(tt.want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("claims = %v, want exactly %v", got, tt.want)
			}
			if iat := claimInt(t, c, "iat"); iat != t0.Unix() {
				t.Errorf("iat = %d, want %d", iat, t0.Unix())
			}
			if ttl := claimInt(t, c, "exp") - claimInt(t, c, "iat"); ttl != tt.wantTTL {
				t.Errorf("exp-iat = %d, want %d", ttl, tt.wantTTL)
			}
			jti := claimString(t, c, "jti")
			if tt.wantJTI != "" && jti != tt.wantJTI {
				t.Errorf("jti = %q, want %q", jti, tt.wantJTI)
			}
			switch want := tt.wantAud.(type) {
			case string:
				if v := claimString(t, c, "aud"); v != want {
					t.Errorf("aud = %q, want %q", v, want)
				}
			case []string:
				if v := claimStrings(t, c, "aud"); !slices.Equal(v, want) {
					t.Errorf("aud = %v, want %v", v, want)
				}
			}
			if tt.checkMore != nil {
				tt.checkMore(t, c)
			}
		})
	}
}

func TestMintDevExpiredAndWallClock(t *testing.T) {
	t.Parallel()
	s := newSigner(t, testEd())
	expired, err := s.MintDev(Dev{Subject: "dev", TTL: -time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, err = jwt.Parse(expired, func(*jwt.Token) (any, error) { return s.Key().Public, nil })
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("negative TTL token: %v, want ErrTokenExpired", err)
	}

	before := time.Now().Unix()
	tok, err := s.MintDev(Dev{Subject: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	_, c := verify(t, tok, s.Key(), time.Now())
	if iat := claimInt(t, c, "iat"); iat < before || iat > after {
		t.Errorf("iat = %d, want the wall clock in [%d, %d]", iat, before, after)
	}

	if _, err := s.MintDev(Dev{}); !errors.Is(err, ErrInvalidClaims) {
		t.Errorf("no subject: %v, want ErrInvalidClaims", err)
	}
}
