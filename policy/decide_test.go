package policy

import (
	"net/url"
	"reflect"
	"testing"
	"time"
)

func compileOne(tb testing.TB, rc RouteConfig) *Route {
	tb.Helper()
	rc.Path, rc.Upstream, rc.Auth = "/x", "http://127.0.0.1:9001", AuthJWT
	return mustCompile(tb, []RouteConfig{rc}).Routes()[0]
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	full := compileOne(t, RouteConfig{
		Roles:  []string{"admin", "ops"},
		Scopes: []string{"orders:read", "orders:write"},
		StepUp: StepUpConfig{ACR: []string{"mfa", "hwk"}, MaxAge: 5 * time.Minute, URL: "/stepup"},
	})
	acrOnly := compileOne(t, RouteConfig{StepUp: StepUpConfig{ACR: []string{"mfa"}}})
	ageOnly := compileOne(t, RouteConfig{StepUp: StepUpConfig{MaxAge: time.Minute}})
	open := compileOne(t, RouteConfig{})

	fullACR := &Challenge{ACRValues: []string{"mfa", "hwk"}, MaxAge: 5 * time.Minute, URL: "/stepup", Description: "a stronger authentication is required"}
	fullAge := &Challenge{ACRValues: []string{"mfa", "hwk"}, MaxAge: 5 * time.Minute, URL: "/stepup", Description: "a more recent authentication is required"}
	good := Input{Subject: "alice", Roles: []string{"user", "ops"}, Scopes: []string{"x", "orders:write", "orders:read"}, ACR: "mfa", AuthTime: now.Add(-time.Minute)}
	with := func(f func(*Input)) Input {
		in := good
		f(&in)
		return in
	}
	allow := Decision{Allow: true}
	tests := []struct {
		name  string
		route *Route
		in    Input
		want  Decision
	}{
		{"everything satisfied", full, good, allow},
		{"no roles", full, with(func(in *Input) { in.Roles = nil }), Decision{Reason: ReasonRoleMissing}},
		{"other roles", full, with(func(in *Input) { in.Roles = []string{"user", "Admin"} }), Decision{Reason: ReasonRoleMissing}},
		{"one role is enough", full, with(func(in *Input) { in.Roles = []string{"admin"} }), allow},
		{"one scope missing", full, with(func(in *Input) { in.Scopes = []string{"orders:read"} }), Decision{Reason: ReasonScopeMissing}},
		{"no scopes", full, with(func(in *Input) { in.Scopes = nil }), Decision{Reason: ReasonScopeMissing}},
		{"role checked before scope", full, with(func(in *Input) { in.Roles, in.Scopes = nil, nil }), Decision{Reason: ReasonRoleMissing}},
		{"403 before step-up", full, with(func(in *Input) { in.Scopes, in.ACR = nil, "pwd" }), Decision{Reason: ReasonScopeMissing}},
		{"wrong acr", full, with(func(in *Input) { in.ACR = "pwd" }), Decision{Reason: ReasonStepUpRequired, StepUp: fullACR}},
		{"no acr", full, with(func(in *Input) { in.ACR = "" }), Decision{Reason: ReasonStepUpRequired, StepUp: fullACR}},
		{"acr case-sensitive", full, with(func(in *Input) { in.ACR = "MFA" }), Decision{Reason: ReasonStepUpRequired, StepUp: fullACR}},
		{"second acr accepted", full, with(func(in *Input) { in.ACR = "hwk" }), allow},
		{"auth_time unknown", full, with(func(in *Input) { in.AuthTime = time.Time{} }), Decision{Reason: ReasonStepUpRequired, StepUp: fullAge}},
		{"auth_time exactly max_age ago", full, with(func(in *Input) { in.AuthTime = now.Add(-5 * time.Minute) }), allow},
		{"auth_time too old", full, with(func(in *Input) { in.AuthTime = now.Add(-5*time.Minute - time.Second) }), Decision{Reason: ReasonStepUpRequired, StepUp: fullAge}},
		{"auth_time now", full, with(func(in *Input) { in.AuthTime = now }), allow},
		{"auth_time within leeway ahead", full, with(func(in *Input) { in.AuthTime = now.Add(AuthTimeLeeway) }), allow},
		{"auth_time beyond leeway ahead", full, with(func(in *Input) { in.AuthTime = now.Add(AuthTimeLeeway + time.Second) }), Decision{Reason: ReasonStepUpRequired, StepUp: fullAge}},
		{"auth_time far future", full, with(func(in *Input) { in.AuthTime = now.AddDate(10, 0, 0) }), Decision{Reason: ReasonStepUpRequired, StepUp: fullAge}},
		{"acr checked before age", full, with(func(in *Input) { in.ACR, in.AuthTime = "pwd", time.Time{} }), Decision{Reason: ReasonStepUpRequired, StepUp: fullACR}},

		{"acr-only rule ignores auth_time", acrOnly, Input{ACR: "mfa"}, allow},
		{"acr-only challenge has no max_age", acrOnly, Input{ACR: "pwd"},
			Decision{Reason: ReasonStepUpRequired, StepUp: &Challenge{ACRValues: []string{"mfa"}, Description: "a stronger authentication is required"}}},
		{"age-only rule accepts any acr", ageOnly, Input{ACR: "", AuthTime: now.Add(-30 * time.Second)}, allow},
		{"age-only challenge has no acr_values", ageOnly, Input{ACR: "mfa", AuthTime: now.Add(-2 * time.Minute)},
			Decision{Reason: ReasonStepUpRequired, StepUp: &Challenge{MaxAge: time.Minute, Description: "a more recent authentication is required"}}},
		{"no rules", open, Input{}, allow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.route.Decide(tc.in, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decide = %+v (challenge %+v), want %+v (challenge %+v)", got, got.StepUp, tc.want, tc.want.StepUp)
			}
		})
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	now := time.Now()
	r := compileOne(t, RouteConfig{
		Roles: []string{"admin", "ops"}, Scopes: []string{"a", "b"},
		StepUp: StepUpConfig{ACR: []string{"mfa"}, MaxAge: time.Hour},
	})
	allowed := Input{Roles: []string{"ops"}, Scopes: []string{"b", "a"}, ACR: "mfa", AuthTime: now}
	stepUp := Input{Roles: []string{"ops"}, Scopes: []string{"b", "a"}, ACR: "pwd", AuthTime: now}
	for name, in := range map[string]Input{"allow": allowed, "step-up": stepUp} {
		if n := testing.AllocsPerRun(100, func() { _ = r.Decide(in, now) }); n != 0 {
			t.Errorf("Decide (%s): %v allocations, want 0", name, n)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	now := time.Now()
	r := compileOne(b, RouteConfig{
		Roles:  []string{"admin", "ops", "support"},
		Scopes: []string{"orders:read", "orders:write"},
		StepUp: StepUpConfig{ACR: []string{"mfa", "hwk"}, MaxAge: 5 * time.Minute},
	})
	in := Input{Subject: "alice", Roles: []string{"user", "support"}, Scopes: []string{"profile", "orders:read", "orders:write"}, ACR: "hwk", AuthTime: now.Add(-time.Minute)}
	if d := r.Decide(in, now); !d.Allow {
		b.Fatalf("Decide = %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Decide(in, now)
	}
}

func TestChallengeParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    Challenge
		want url.Values
	}{
		{"both", Challenge{ACRValues: []string{"mfa", "otp"}, MaxAge: 300 * time.Second}, url.Values{"acr_values": {"mfa otp"}, "max_age": {"300"}}},
		{"acr only", Challenge{ACRValues: []string{"mfa"}}, url.Values{"acr_values": {"mfa"}}},
		{"max_age rounded down", Challenge{MaxAge: 90*time.Second + 900*time.Millisecond}, url.Values{"max_age": {"90"}}},
		{"nothing", Challenge{}, url.Values{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.c.Params(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Params() = %v, want %v", got, tc.want)
			}
		})
	}
}
