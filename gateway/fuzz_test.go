package gateway

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig: any document either loads into a configuration that
// compiled a route table, or fails with ConfigErrors that each name the
// file; it never panics.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		minimal,
		"server:\n  listen: \":8080\"\n" + minimal,
		"server:\n  lsten: x\n" + minimal,
		"routes:\n  - {path: /a, upstream: \"http://h\", auth: jwt, roles: [a], step_up: {acr: [mfa], max_age: 5m}}\n",
		"jwt:\n  issuers:\n    - {issuer: \"https://i/\", algorithms: [none]}\n" + minimal,
		"admin:\n  token: \"${PC_FUZZ_UNSET:-x}\"\n" + minimal,
		"routes: [1, 2]\n",
		"- a\n",
		"server: [\n",
		"identity:\n  headers: {email: X-Auth-Email}\n" + minimal,
		"tokens:\n  signing_key: k.pem\n  refresh_cookie: x\n" + minimal,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := ParseConfig("fuzz.yaml", []byte(doc))
		if err == nil {
			if cfg.routes == nil || len(cfg.routes.Routes()) != len(cfg.Routes) {
				t.Fatalf("accepted without a route table: %q", doc)
			}
			return
		}
		for _, e := range flatten(err) {
			var ce *ConfigError
			if !errors.As(e, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", e, e)
			}
			if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", e)
			}
		}
	})
}

// FuzzAdminJSON: the admin API's bodies are decoded strictly; a failure is
// always a fieldError (a 400 naming the field), and an accepted session
// body yields either a valid new session or a fieldError.
func FuzzAdminJSON(f *testing.F) {
	for _, seed := range []string{
		`{"subject":"alice","roles":["a"],"ttl":"1h"}`,
		`{"subject":1}`,
		`{"subject":"a","colour":"x"}`,
		`{"subject":"a","ttl":"-1s"}`,
		`{"subject":"a\u0000"}`,
		`{"subject":"a","roles":["a,b"]}`,
		`{"subject":"a","mode":"tokens"}`,
		`{"roles":["admin"]}`,
		`{"acr":5}`,
		`{} {}`,
		`[`,
		``,
	} {
		f.Add(seed)
	}
	cfg, err := ParseConfig("c.yaml", []byte(minimal))
	if err != nil {
		f.Fatal(err)
	}
	st := &state{cfg: cfg}
	f.Fuzz(func(t *testing.T, body string) {
		var req sessionRequest
		if err := decodeJSON([]byte(body), &req); err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("decode error %T is not a fieldError", err)
			}
		} else if _, err := st.newSession(req, time.Unix(1700000000, 0)); err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("validation error %T is not a fieldError", err)
			}
		}
		var u sessionUpdate
		if err := decodeJSON([]byte(body), &u); err == nil {
			if _, err := u.toStore(); err != nil {
				var fe *fieldError
				if !errors.As(err, &fe) {
					t.Fatalf("update error %T is not a fieldError", err)
				}
			}
		}
		var rr revocationRequest
		if err := decodeJSON([]byte(body), &rr); err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("revocation decode error %T is not a fieldError", err)
			}
		}
	})
}
