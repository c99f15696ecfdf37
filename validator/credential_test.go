package validator

import (
	"errors"
	"net/http/httptest"
	"testing"
)

const (
	testCookie = "__Host-portcullis"
	jwtLike    = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
	opaqueID   = "dGhpcyBpcyBhIDMyIGJ5dGUgc2Vzc2lvbiBpZCEhIQ"
	otherID    = "b3RoZXIgaXMgYSAzMiBieXRlIHNlc3Npb24gaWQhISE"
)

func TestExtract(t *testing.T) {
	t.Parallel()
	type hdr struct{ name, value string }
	authz := func(v string) hdr { return hdr{"Authorization", v} }
	cookie := func(v string) hdr { return hdr{"Cookie", v} }
	tests := []struct {
		name    string
		auth    string
		headers []hdr
		want    Credential
		wantErr error
		reason  string
	}{
		// jwt routes
		{"jwt bearer", "jwt", []hdr{authz("Bearer " + jwtLike)}, Credential{Kind: CredentialJWT, Value: jwtLike}, nil, ""},
		{"scheme is case-insensitive", "jwt", []hdr{authz("bEARER " + jwtLike)}, Credential{Kind: CredentialJWT, Value: jwtLike}, nil, ""},
		{"several spaces", "jwt", []hdr{authz("Bearer   " + jwtLike + " ")}, Credential{Kind: CredentialJWT, Value: jwtLike}, nil, ""},
		{"jwt route, opaque bearer", "jwt", []hdr{authz("Bearer " + opaqueID)}, Credential{}, ErrInvalidToken, ReasonMalformed},
		{"jwt route ignores cookie", "jwt", []hdr{cookie(testCookie + "=" + opaqueID)}, Credential{}, ErrNoCredential, ""},
		{"jwt route, bearer and cookie", "jwt", []hdr{authz("Bearer " + jwtLike), cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialJWT, Value: jwtLike}, nil, ""},
		{"nothing", "jwt", nil, Credential{}, ErrNoCredential, ""},
		{"basic is not a credential", "jwt", []hdr{authz("Basic YWxhZGRpbjpvcGVuc2VzYW1l")}, Credential{}, ErrNoCredential, ""},
		{"empty authorization", "jwt", []hdr{authz("")}, Credential{}, ErrNoCredential, ""},
		{"bearer without token", "jwt", []hdr{authz("Bearer")}, Credential{}, ErrInvalidToken, ReasonMalformed},
		{"bearer with two tokens", "jwt", []hdr{authz("Bearer " + jwtLike + " " + jwtLike)}, Credential{}, ErrInvalidToken, ReasonMalformed},
		{"bearer with a control char", "jwt", []hdr{authz("Bearer a.b\x01.c")}, Credential{}, ErrInvalidToken, ReasonMalformed},
		{"two authorization headers", "jwt", []hdr{authz("Bearer " + jwtLike), authz("Bearer " + jwtLike)}, Credential{}, ErrConflict, ""},
		{"two cookies on a jwt route", "jwt", []hdr{authz("Bearer " + jwtLike), cookie(testCookie + "=" + opaqueID + "; " + testCookie + "=" + otherID)}, Credential{}, ErrConflict, ""},
		// session routes
		{"session cookie", "session", []hdr{cookie("a=b; " + testCookie + "=" + opaqueID + "; c=d")}, Credential{Kind: CredentialOpaque, Value: opaqueID, FromCookie: true}, nil, ""},
		{"quoted cookie", "session", []hdr{cookie(testCookie + `="` + opaqueID + `"`)}, Credential{Kind: CredentialOpaque, Value: opaqueID, FromCookie: true}, nil, ""},
		{"opaque bearer", "session", []hdr{authz("Bearer " + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID}, nil, ""},
		{"session route, bearer jwt", "session", []hdr{authz("Bearer " + jwtLike)}, Credential{}, ErrInvalidToken, ReasonMalformed},
		{"session route, bearer equals cookie", "session", []hdr{authz("Bearer " + opaqueID), cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID}, nil, ""},
		{"session route, bearer and cookie differ", "session", []hdr{authz("Bearer " + opaqueID), cookie(testCookie + "=" + otherID)}, Credential{}, ErrConflict, ""},
		{"same cookie twice", "session", []hdr{cookie(testCookie + "=" + opaqueID), cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID, FromCookie: true}, nil, ""},
		{"two cookies differ (one header)", "session", []hdr{cookie(testCookie + "=" + opaqueID + ";" + testCookie + "=" + otherID)}, Credential{}, ErrConflict, ""},
		{"two cookies differ (two headers)", "session", []hdr{cookie(testCookie + "=" + opaqueID), cookie(testCookie + "=" + otherID)}, Credential{}, ErrConflict, ""},
		{"cookie name is case-sensitive", "session", []hdr{cookie("__host-portcullis=" + opaqueID)}, Credential{}, ErrNoCredential, ""},
		{"empty cookie is absent", "session", []hdr{cookie(testCookie + "=")}, Credential{}, ErrNoCredential, ""},
		{"other cookies only", "session", []hdr{cookie("x=" + opaqueID)}, Credential{}, ErrNoCredential, ""},
		// any routes
		{"any: jwt", "any", []hdr{authz("Bearer " + jwtLike)}, Credential{Kind: CredentialJWT, Value: jwtLike}, nil, ""},
		{"any: opaque bearer", "any", []hdr{authz("Bearer " + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID}, nil, ""},
		{"any: cookie", "any", []hdr{cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID, FromCookie: true}, nil, ""},
		{"any: jwt and cookie", "any", []hdr{authz("Bearer " + jwtLike), cookie(testCookie + "=" + opaqueID)}, Credential{}, ErrConflict, ""},
		{"any: same opaque twice", "any", []hdr{authz("Bearer " + opaqueID), cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID}, nil, ""},
		{"any: opaque bearer and other cookie", "any", []hdr{authz("Bearer " + opaqueID), cookie(testCookie + "=" + otherID)}, Credential{}, ErrConflict, ""},
		{"any: basic and cookie", "any", []hdr{authz("Basic YTpi"), cookie(testCookie + "=" + opaqueID)}, Credential{Kind: CredentialOpaque, Value: opaqueID, FromCookie: true}, nil, ""},
		{"any: nothing", "any", nil, Credential{}, ErrNoCredential, ""},
		// none: only the hygiene checks
		{"none route", "none", []hdr{authz("Bearer " + jwtLike)}, Credential{}, ErrNoCredential, ""},
		{"none route, two authorization headers", "none", []hdr{authz("Basic YTpi"), authz("Basic YTpi")}, Credential{}, ErrConflict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.headers {
				r.Header.Add(h.name, h.value)
			}
			got, err := Extract(r, tt.auth, testCookie)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.reason != "" && ReasonOf(err) != tt.reason {
					t.Fatalf("reason = %q, want %q", ReasonOf(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExtractDoesNotAllocate(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+opaqueID)
	r.Header.Set("Cookie", "a=b; "+testCookie+"="+opaqueID)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Extract(r, "any", testCookie); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Extract allocates %.0f times", allocs)
	}
}
