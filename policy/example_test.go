package policy_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/portcullis/portcullis/policy"
)

// The sequence the gateway follows for each request.
func Example() {
	table, err := policy.Compile([]policy.RouteConfig{
		{Name: "public", Path: "/", Upstream: "http://127.0.0.1:9000", Auth: policy.AuthNone},
		{
			Name: "admin", Path: "/admin", Upstream: "http://127.0.0.1:9001/internal", StripPath: true,
			Auth: policy.AuthSession, Roles: []string{"admin"}, LoginURL: "/login",
			StepUp: policy.StepUpConfig{ACR: []string{"mfa"}, MaxAge: 5 * time.Minute, URL: "https://idp.example/mfa"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	p, err := policy.Canonicalize("/admin;jsessionid=1/users/%41")
	if err != nil {
		fmt.Println("400:", err)
		return
	}
	route, err := table.Match("GW.example.com:443", "GET", p)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("route:", route.Config.Name, "forward:", route.ForwardPath(p))

	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	d := route.Decide(policy.Input{Subject: "alice", Roles: []string{"admin"}, ACR: "pwd", AuthTime: now}, now)
	fmt.Println("allow:", d.Allow, "reason:", d.Reason)
	if d.StepUp != nil && policy.WantsHTML("text/html,*/*;q=0.8") {
		fmt.Println("302:", policy.RedirectURL(d.StepUp.URL, policy.ReturnTo(p, "tab=2"), d.StepUp.Params()))
	}

	_, err = policy.Canonicalize("/admin/..;/public")
	fmt.Println("refused:", errors.Is(err, policy.ErrBadPath), err)
	// Output:
	// route: admin forward: /users/%41
	// allow: false reason: step-up-required
	// 302: https://idp.example/mfa?return_to=%2Fadmin%3Bjsessionid%3D1%2Fusers%2F%2541%3Ftab%3D2&acr_values=mfa&max_age=300
	// refused: true policy: path not canonical: dot-segment
}

func ExampleCompile() {
	_, err := policy.Compile([]policy.RouteConfig{
		{Path: "/api", Upstream: "http://127.0.0.1:9001"},
		{Path: "/x", Upstream: "ftp://files", Auth: "jwt", StepUp: policy.StepUpConfig{MaxAge: -time.Second}},
	})
	fmt.Println(err)
	// Output:
	// routes[0].auth: is required (one of none, jwt, session, any)
	// routes[1].upstream: must be an absolute http or https URL
	// routes[1].step_up.max_age: must be >= 0, got "-1s"
}
