package attack

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/mint"
	h "github.com/portcullis/portcullis/test/internal/harness"
)

// logLine reports whether one line of logs holds every part.
func logLine(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// sentinel follows every smuggling attempt on the same connection. The
// gateway handles a connection's requests in order, so once the sentinel
// is answered (or the connection is closed) everything the attack could
// have caused upstream has happened: no waiting on timers.
const sentinel = "GET /upload/sentinel HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"

// smuggled is the request an attacker hides in a body.
const smuggled = "GET /upload/smuggled HTTP/1.1\r\nHost: gw.test\r\nX-Auth-Subject: root\r\n\r\n"

type smuggleCase struct {
	name   string
	raw    string // the attack; the sentinel is appended
	status int    // the attack's answer
	by     string // which layer answers the attack
	code   string // JSON error of a gateway refusal
	// bodies are the bodies of the requests the upstream must receive for
	// the attack, in order (the sentinel aside); nil: none.
	bodies []string
	// open: the connection survives the attack and the sentinel is
	// answered 200 and forwarded; otherwise the server closes it after the
	// attack's answer.
	open bool
}

// TestSmuggling: request shapes that desynchronise front and back ends
// (both Content-Length and Transfer-Encoding, two Content-Lengths, bad
// chunk sizes, bodies of refused requests) never reach the upstream as two
// requests: the request hidden in a body is never recorded as a request.
func TestSmuggling(t *testing.T) {
	t.Parallel()
	e := start(t, options{})
	tok := e.token(t, mint.Dev{})
	chunk := func(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }
	post := func(target string, headers ...string) string {
		return "POST " + target + " HTTP/1.1\r\nHost: gw.test\r\n" + strings.Join(headers, "\r\n") + "\r\n\r\n"
	}
	cl := func(body string) string { return fmt.Sprintf("Content-Length: %d", len(body)) }
	teBody := "0\r\n\r\n" + smuggled             // chunked: empty body, then the hidden request
	chunkedBody := chunk(smuggled) + "0\r\n\r\n" // chunked: the hidden request as data

	cases := []smuggleCase{
		// Both framings. net/http reads the body by Transfer-Encoding and
		// drops the Content-Length (RFC 9112 §6.3); the gateway closes the
		// connection after answering, so the bytes a Content-Length front end
		// counted into the body are never read as a next request.
		{name: "CL.TE: Content-Length covers a hidden request after the last chunk",
			raw: post("/upload/first", cl(teBody), "Transfer-Encoding: chunked") + teBody, status: 200, bodies: []string{""}},
		{name: "TE.CL: chunked data holds the hidden request, Content-Length is short",
			raw: post("/upload/first", "Content-Length: 4", "Transfer-Encoding: chunked") + chunkedBody, status: 200, bodies: []string{smuggled}},
		{name: "TE before CL",
			raw: post("/upload/first", "Transfer-Encoding: chunked", cl(teBody)) + teBody, status: 200, bodies: []string{""}},
		{name: "CL.TE with Content-Length 0",
			raw: post("/upload/first", "Content-Length: 0", "Transfer-Encoding: chunked") + teBody, status: 200, bodies: []string{""}},
		{name: "CL.TE on an authenticated route",
			raw: post("/upload-auth/first", bearer(tok), cl(teBody), "Transfer-Encoding: chunked") + teBody, status: 200, bodies: []string{""}},
		{name: "CL.TE refused (401) without a credential",
			raw: post("/upload-auth/first", cl(teBody), "Transfer-Encoding: chunked") + teBody, status: 401},
		// net/http unfolds the obs-fold (RFC 9112 §5.2), then as CL.TE.
		{name: "Transfer-Encoding folded onto a second line",
			raw: post("/upload/first", "Transfer-Encoding:", " chunked", cl(teBody)) + teBody, status: 200, bodies: []string{""}},
		// net/http ignores Transfer-Encoding in HTTP/1.0 (Go issue 12785): the
		// Content-Length body is one body, and HTTP/1.0 closes anyway.
		{name: "Transfer-Encoding in HTTP/1.0",
			raw: "POST /upload/first HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n" + cl(teBody) + "\r\n\r\n" + teBody, status: 200, bodies: []string{teBody}},
		// Two Content-Lengths.
		{name: "two different Content-Lengths",
			raw: post("/upload/first", "Content-Length: 0", cl(smuggled)) + smuggled, status: 400, by: byNetHTTP},
		{name: "two different Content-Lengths in one line",
			raw: post("/upload/first", "Content-Length: 0, "+fmt.Sprint(len(smuggled))) + smuggled, status: 400, by: byNetHTTP},
		{name: "two equal Content-Lengths: the body is one body",
			raw: post("/upload/first", cl(smuggled), cl(smuggled)) + smuggled, status: 200, bodies: []string{smuggled}, open: true},
		{name: "Content-Length with a sign",
			raw: post("/upload/first", "Content-Length: +"+fmt.Sprint(len(smuggled))) + smuggled, status: 400, by: byNetHTTP},
		{name: "Content-Length in hex",
			raw: post("/upload/first", "Content-Length: 0x10") + smuggled, status: 400, by: byNetHTTP},
		{name: "negative Content-Length",
			raw: post("/upload/first", "Content-Length: -1") + smuggled, status: 400, by: byNetHTTP},
		{name: "space before the colon of Content-Length",
			raw: post("/upload/first", "Content-Length : 0") + smuggled, status: 400, by: byNetHTTP},
		// Transfer-Encoding spellings a back end might read differently:
		// net/http accepts exactly one "chunked" and nothing else.
		{name: "Transfer-Encoding xchunked",
			raw: post("/upload/first", "Transfer-Encoding: xchunked", cl(smuggled)) + smuggled, status: 501, by: byNetHTTP},
		{name: "Transfer-Encoding chunked, identity",
			raw: post("/upload/first", "Transfer-Encoding: chunked, identity") + teBody, status: 501, by: byNetHTTP},
		{name: "Transfer-Encoding identity, chunked",
			raw: post("/upload/first", "Transfer-Encoding: identity, chunked") + teBody, status: 501, by: byNetHTTP},
		{name: "two Transfer-Encoding headers",
			raw: post("/upload/first", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked") + teBody, status: 501, by: byNetHTTP},
		{name: "space before the colon of Transfer-Encoding",
			raw: post("/upload/first", "Transfer-Encoding : chunked", cl(teBody)) + teBody, status: 400, by: byNetHTTP},
		{name: "Transfer-Encoding with a vertical tab",
			raw: post("/upload/first", "Transfer-Encoding:\x0bchunked", cl(teBody)) + teBody, status: 400, by: byNetHTTP},
		// Bad chunk sizes: the body cannot be framed. The gateway has already
		// started streaming the request upstream; the upstream's body read
		// fails (no complete request), the client gets the gateway's error
		// and the connection is closed.
		{name: "chunk size not hex",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + "zz\r\n" + smuggled + "\r\n0\r\n\r\n", status: 400, code: "invalid_request"},
		{name: "chunk size overflowing 64 bits",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + "1ffffffffffffffff\r\n" + smuggled + "\r\n0\r\n\r\n", status: 400, code: "invalid_request"},
		{name: "negative chunk size",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + "-1\r\n" + smuggled + "\r\n0\r\n\r\n", status: 400, code: "invalid_request"},
		{name: "chunk longer than its size",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + "3\r\n" + smuggled + "\r\n0\r\n\r\n", status: 400, code: "invalid_request"},
		{name: "chunk size with a space inside",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + "1 0\r\n" + smuggled + "\r\n0\r\n\r\n", status: 400, code: "invalid_request"},
		// Well-framed bodies that contain a request stay a body.
		{name: "chunked body holding a request is one request",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + chunkedBody, status: 200, bodies: []string{smuggled}},
		{name: "chunk extensions are accepted",
			raw: post("/upload/first", "Transfer-Encoding: chunked") + fmt.Sprintf("%x;ext=\"x\"\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled), status: 200, bodies: []string{smuggled}},
		{name: "GET with a Content-Length body holding a request",
			raw: "GET /upload/first HTTP/1.1\r\nHost: gw.test\r\n" + cl(smuggled) + "\r\n\r\n" + smuggled, status: 200, bodies: []string{smuggled}, open: true},
		{name: "authenticated POST whose body holds a request",
			raw: post("/upload-auth/first", bearer(tok), cl(smuggled)) + smuggled, status: 200, bodies: []string{smuggled}, open: true},
		// The unread body of a refused request is discarded, never parsed as
		// the next request.
		{name: "refused (401) request with a Content-Length body",
			raw: post("/upload-auth/first", cl(smuggled)) + smuggled, status: 401, open: true},
		{name: "refused (401) request with a chunked body",
			raw: post("/upload-auth/first", "Transfer-Encoding: chunked") + chunkedBody, status: 401},
		{name: "refused (400 path) request with a body",
			raw: post("/upload/../upload-auth", cl(smuggled)) + smuggled, status: 400, open: true},
		{name: "refused (404) request with a body",
			raw: post("/nowhere", cl(smuggled)) + smuggled, status: 404, open: true},
		{name: "refused (405) request with a body",
			raw: post("/ro/x", cl(smuggled)) + smuggled, status: 405, open: true},
		// Control: two pipelined requests are two requests.
		{name: "control: pipelined requests",
			raw: post("/upload/first", "Content-Length: 1") + "a" + get("/upload/first"), status: 200, bodies: []string{"a", ""}, open: true},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.up.Reset()
			e.strict.Reset()
			as := exchange(t, e.gw.Addr, tc.raw+sentinel, 0)
			if len(as) == 0 {
				t.Fatal("no answer")
			}
			first := as[0]
			if first.status != tc.status {
				t.Fatalf("status %d, want %d; answer %s", first.status, tc.status, first)
			}
			if got := first.fromGateway(); got != (tc.by == byGateway) {
				t.Errorf("answered by the gateway's handler: %v, want layer %q; answer %s", got, tc.by, first)
			}
			if tc.by == byGateway && first.status >= 400 {
				checkErrorBody(t, first, tc.code)
			}
			var attack []string
			sentinelSeen := false
			for _, r := range e.strict.Complete() {
				switch {
				case strings.Contains(r.RequestURI, "smuggled"):
					t.Fatalf("the hidden request reached the upstream as a request: %s %s", r.Method, r.RequestURI)
				case r.RequestURI == "/upload/sentinel":
					sentinelSeen = true
				default:
					if r.RequestURI != "/upload/first" && r.RequestURI != "/upload-auth/first" {
						t.Errorf("unexpected upstream request %s %s", r.Method, r.RequestURI)
					}
					if r.Header.Get("X-Auth-Subject") == "root" {
						t.Error("a smuggled identity header reached the upstream")
					}
					attack = append(attack, string(r.Body))
				}
			}
			if n := e.up.Count(); n != 0 {
				t.Errorf("the other upstream received %d requests", n)
			}
			extra := len(as) - 1 // answers after the attack's
			if tc.open {
				if extra != max(len(tc.bodies), 1) || !sentinelSeen || as[len(as)-1].status != 200 {
					t.Errorf("the connection did not go on to the sentinel: %d answers, sentinel forwarded %v", len(as), sentinelSeen)
				}
			} else if extra != 0 || sentinelSeen {
				t.Errorf("the connection was kept after the attack: %d answers, sentinel forwarded %v", len(as), sentinelSeen)
			}
			if len(attack) != len(tc.bodies) {
				t.Fatalf("the upstream received %d complete requests for the attack, want %d (bodies %q)", len(attack), len(tc.bodies), attack)
			}
			for i := range attack {
				if attack[i] != tc.bodies[i] {
					t.Errorf("upstream body %d = %q, want %q", i, attack[i], tc.bodies[i])
				}
			}
		})
	}
	// A body cut short (the client stops sending and half-closes) is the
	// client's doing. Either the gateway reads the short body first and
	// answers 400, or net/http notices the closed side first and the
	// request ends as a 499 with the connection aborted. Never a 502 that
	// blames the upstream, never an empty 200, and the upstream never
	// receives the request complete.
	for i, tc := range []struct{ name, head, body string }{
		{"Content-Length longer than the body", "Content-Length: 1000", "only ten b"},
		{"chunked body without its last chunk", "Transfer-Encoding: chunked", chunk("only ten b")},
	} {
		t.Run("cut short: "+tc.name, func(t *testing.T) {
			e.strict.Reset()
			path := fmt.Sprintf("/upload/cut%d", i)
			c, err := net.DialTimeout("tcp", e.gw.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err := io.WriteString(c, post(path, tc.head)+tc.body); err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a := answer{status: resp.StatusCode, header: resp.Header, body: body}
				if a.status != 400 {
					t.Fatalf("answer %s, want 400 or none", a)
				}
				checkErrorBody(t, a, "invalid_request")
			}
			h.Eventually(t, 10*time.Second, "the access log line of the cut request", func() bool {
				logs := e.gw.Logs()
				return logLine(logs, `"path":"`+path+`"`, `"status":400`, `"reason":"bad-request-body"`) ||
					logLine(logs, `"path":"`+path+`"`, `"status":499`, `"reason":"client-closed"`)
			})
			if n := len(e.strict.Complete()); n != 0 {
				t.Errorf("the upstream received the cut request complete (%d)", n)
			}
		})
	}

	for _, uri := range e.strict.Aborted() {
		if strings.Contains(uri, "smuggled") {
			t.Errorf("the hidden request reached the upstream (aborted): %s", uri)
		}
	}
}
