package policy

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reasons of a refusing Decision. They are kebab-case so that they can go
// into logs and metric labels as they are.
const (
	// ReasonRoleMissing: the identity holds none of the route's roles (403).
	ReasonRoleMissing = "role-missing"
	// ReasonScopeMissing: the identity lacks one of the route's scopes (403
	// insufficient_scope).
	ReasonScopeMissing = "scope-missing"
	// ReasonStepUpRequired: the step_up rule is not met (401
	// insufficient_user_authentication, RFC 9470).
	ReasonStepUpRequired = "step-up-required"
)

// AuthTimeLeeway is how far in the future an auth_time may lie (clock skew
// between the identity provider and the gateway) and still satisfy a
// step_up max_age rule. An auth_time further ahead fails the rule.
const AuthTimeLeeway = 60 * time.Second

// Input is what Decide needs to know about an authenticated caller.
type Input struct {
	Subject string
	Roles   []string
	Scopes  []string
	ACR     string
	// AuthTime is the time of the last authentication; zero when unknown.
	AuthTime time.Time
}

// Decision is the outcome of Route.Decide.
type Decision struct {
	// Allow is true when the request may proceed.
	Allow bool
	// Reason is "" when allowed, else one of the Reason* constants.
	Reason string
	// StepUp is set when Reason is ReasonStepUpRequired. It is shared by
	// every request of the route: callers must not modify it.
	StepUp *Challenge
}

// Challenge describes the step-up to ask for (RFC 9470). Only the parts the
// route's rule uses are set.
type Challenge struct {
	// ACRValues are the acceptable acr values; nil when any acr will do.
	ACRValues []string
	// MaxAge is the largest acceptable age of the authentication; 0 when
	// the rule has none.
	MaxAge time.Duration
	// Description is a short human text for error_description; it holds
	// no secret.
	Description string
	// URL is step_up.url, where browsers are sent; may be empty.
	URL string
}

// Params returns the RFC 9470 parameters of c for a redirect (see
// RedirectURL): acr_values (space-separated) when c has ACRValues, and
// max_age in whole seconds (rounded down, so an identity provider honouring
// it satisfies the rule) when c has MaxAge.
func (c *Challenge) Params() url.Values {
	v := url.Values{}
	if len(c.ACRValues) > 0 {
		v.Set("acr_values", strings.Join(c.ACRValues, " "))
	}
	if c.MaxAge > 0 {
		v.Set("max_age", strconv.FormatInt(int64(c.MaxAge/time.Second), 10))
	}
	return v
}

// Challenge descriptions.
const (
	descACR = "a stronger authentication is required"
	descAge = "a more recent authentication is required"
)

// challenges precomputes the step-up challenges of a rule: one for a failed
// acr, one for a failed max_age. Both are nil when the rule is disabled.
func challenges(s StepUpConfig) (acr, age *Challenge) {
	if !s.Enabled() {
		return nil, nil
	}
	base := Challenge{URL: s.URL}
	if len(s.ACR) > 0 {
		base.ACRValues = s.ACR
	}
	if s.MaxAge > 0 {
		base.MaxAge = s.MaxAge
	}
	a, b := base, base
	a.Description, b.Description = descACR, descAge
	return &a, &b
}

// Decide applies the route's rules to an authenticated caller at time now:
// roles (the caller holds at least one), then scopes (all of them), then
// step-up. The step_up rule is met when the caller's acr is one of
// step_up.acr (an empty list accepts any acr) and, when max_age > 0, its
// AuthTime is known, not more than AuthTimeLeeway in the future, and no older
// than max_age. Decide does not allocate.
func (r *Route) Decide(in Input, now time.Time) Decision {
	c := &r.Config
	if len(c.Roles) > 0 && !anyOf(c.Roles, in.Roles) {
		return Decision{Reason: ReasonRoleMissing}
	}
	for _, s := range c.Scopes {
		if !contains(in.Scopes, s) {
			return Decision{Reason: ReasonScopeMissing}
		}
	}
	if r.acrChallenge != nil {
		if len(c.StepUp.ACR) > 0 && !contains(c.StepUp.ACR, in.ACR) {
			return Decision{Reason: ReasonStepUpRequired, StepUp: r.acrChallenge}
		}
		if maxAge := c.StepUp.MaxAge; maxAge > 0 {
			if in.AuthTime.IsZero() || in.AuthTime.Sub(now) > AuthTimeLeeway || now.Sub(in.AuthTime) > maxAge {
				return Decision{Reason: ReasonStepUpRequired, StepUp: r.ageChallenge}
			}
		}
	}
	return Decision{Allow: true}
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func anyOf(want, have []string) bool {
	for _, h := range have {
		if contains(want, h) {
			return true
		}
	}
	return false
}
