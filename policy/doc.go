// Package policy decides where a request goes and whether its caller may
// proceed. It is pure: no I/O, no HTTP server types and no logging, so it is
// cheap to call per request and easy to fuzz.
//
// The package has four parts:
//
//   - Compile validates the routes: section of the configuration, applies
//     its defaults and builds an immutable Table. Every problem is reported
//     at once, each as a *FieldError whose text is
//     "routes[<i>].<yaml.key.path>: <message>".
//   - Canonicalize turns the escaped request path into a Path or refuses it
//     with ErrBadPath (dot segments in any encoding, empty segments,
//     backslashes, NUL and control characters, bad or double percent-encoding).
//     Routing compares percent-decoded segments with any ";params" removed,
//     while the path forwarded upstream is the one the client sent.
//   - Table.Match picks the route for a host, method and Path: exact host,
//     then wildcard hosts (longest suffix first), then host-less routes; in
//     the first of those tiers with a path match, the longest path prefix;
//     among the routes sharing that path, the one listing the method, then
//     the one listing none. Matching costs a few map look-ups and does not
//     allocate for a plain ASCII path and a lower-case host.
//   - Route.Decide applies roles (any-of), scopes (all-of) and step-up
//     (RFC 9470 acr and max_age) to an authenticated Input.
//
// WantsHTML, ReturnTo and RedirectURL build the browser redirects to
// login_url and step_up.url without ever producing an open redirect.
package policy
