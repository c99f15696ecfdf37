package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The harness binary plays three more parts, each in its own process (the
// harness re-executes itself with the role's name as first argument):
//
//	_upstream   a minimal fast HTTP server answering 200 "ok"
//	_bareproxy  httputil.ReverseProxy with portcullis's Transport settings
//	_gen        the closed-loop load generator used when wrk is not on PATH
//
// Each server prints "listening ADDR" once it accepts.
const (
	roleUpstream  = "_upstream"
	roleBareProxy = "_bareproxy"
	roleGen       = "_gen"
)

// runRole runs a role and returns the process's exit code.
func runRole(role string, args []string) int {
	var err error
	switch role {
	case roleUpstream:
		err = upstreamMain(args)
	case roleBareProxy:
		err = bareProxyMain(args)
	case roleGen:
		err = genMain(args, os.Stdout)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load %s: %v\n", role, err)
		return 1
	}
	return 0
}

// serveOn listens on addr, announces it and serves h until the process is
// killed.
func serveOn(addr string, s *http.Server) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	return s.Serve(ln)
}

// okResponse is the upstream's whole answer.
var okResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")

// upstreamMain is a minimal fast HTTP/1.1 server: it reads each request's
// header block (and discards a Content-Length body) and writes a fixed 200
// "ok", keeping the connection open (chunked request bodies are not
// supported: the harness sends GETs). It shares the load CPU with the load
// generator, so the less it costs the more of that CPU drives the proxy.
func upstreamMain(args []string) error {
	fs := flag.NewFlagSet(roleUpstream, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveUpstreamConn(c)
	}
}

func serveUpstreamConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	for {
		body := int64(0)
		for first := true; ; first = false {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 { // the blank line ending the header block
				if first {
					continue // tolerate a stray CRLF between requests
				}
				break
			}
			if len(line) > 16 && (line[0] == 'C' || line[0] == 'c') && strings.EqualFold(string(line[:15]), "Content-Length:") {
				body, _ = strconv.ParseInt(strings.TrimSpace(string(line[15:])), 10, 64)
			}
		}
		if body > 0 {
			if _, err := io.CopyN(io.Discard, br, body); err != nil {
				return
			}
		}
		if _, err := c.Write(okResponse); err != nil {
			return
		}
	}
}

func bareProxyMain(args []string) error {
	fs := flag.NewFlagSet(roleBareProxy, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	upstream := fs.String("upstream", "", "upstream URL")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof on this address (for -profile); empty: off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pprof %s\n", ln.Addr())
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() { _ = http.Serve(ln, mux) }()
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream %q: not a URL", *upstream)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport:  bareTransport(30 * time.Second),
		BufferPool: copyBuffers{},
	}
	// The server limits of portcullis's defaults (gateway/config.go).
	return serveOn(*listen, &http.Server{
		Handler:           proxy,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32768,
	})
}

// bareTransport is the *http.Transport portcullis builds for a route with
// timeout (gateway/proxy.go, transports.get, with the default
// server.upstream_max_idle_per_host of 256): keep the two in step.
func bareTransport(timeout time.Duration) *http.Transport {
	dial := min(10*time.Second, timeout)
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   dial,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 1 << 20,
	}
}

// copyBuffers lends 32 KiB copy buffers, as portcullis's proxy does
// (without a pool httputil allocates one per response, and the baseline
// would pay a cost portcullis does not).
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (copyBuffers) Get() []byte  { return *(copyBufferPool.Get().(*[]byte)) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// genResult is what one load run measured (the wrk Lua script prints the
// same JSON).
type genResult struct {
	Requests int64   `json:"requests"` // responses received
	Seconds  float64 `json:"seconds"`
	Errors   int64   `json:"errors"` // socket errors, timeouts and non-2xx/3xx answers
	Non2xx   int64   `json:"non2xx"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	FirstErr string  `json:"first_error,omitempty"`
}

// genMain is the Go load generator: -conns connections, each sending its
// next request as soon as the previous answer is read (closed loop), for
// -duration. Request i carries line i mod n of -headers (one "Name: value"
// per line), so that a file of n tokens rotates through them.
func genMain(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(roleGen, flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port")
	path := fs.String("path", "/", "request path")
	conns := fs.Int("conns", 1, "connections")
	duration := fs.Duration("duration", time.Second, "how long")
	headers := fs.String("headers", "", "file of header lines, one per request variant")
	timeout := fs.Duration("timeout", 10*time.Second, "per request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	variants, err := readLines(*headers)
	if err != nil {
		return err
	}
	reqs := buildRequests(*addr, *path, variants)

	var (
		next              atomic.Uint64
		requests, errs    atomic.Int64
		non2xx            atomic.Int64
		mu                sync.Mutex
		all               []time.Duration
		firstErr          atomic.Value
		wg                sync.WaitGroup
		start             = time.Now()
		deadline          = start.Add(*duration)
		perConnCapacity   = 1 << 14
		recordErr         = func(err error) { errs.Add(1); firstErr.CompareAndSwap(nil, err.Error()) }
		maxLatencySamples = 4 << 20
	)
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, perConnCapacity)
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
				mu.Lock()
				if len(all) < maxLatencySamples {
					all = append(all, lat...)
				}
				mu.Unlock()
			}()
			for time.Now().Before(deadline) {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", *addr, *timeout); err != nil {
						recordErr(err)
						c = nil
						time.Sleep(10 * time.Millisecond) // back off from a refusing server
						continue
					}
					br = bufio.NewReaderSize(c, 8192)
				}
				req := reqs[next.Add(1)%uint64(len(reqs))]
				t0 := time.Now()
				_ = c.SetDeadline(t0.Add(*timeout))
				status, keep, err := roundTrip(c, br, req)
				if err != nil {
					if time.Now().Before(deadline) {
						recordErr(err)
					}
					c.Close()
					c = nil
					continue
				}
				lat = append(lat, time.Since(t0))
				requests.Add(1)
				if status < 200 || status > 399 {
					non2xx.Add(1)
					recordErr(fmt.Errorf("status %d", status))
				}
				if !keep {
					c.Close()
					c = nil
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	res := genResult{
		Requests: requests.Load(), Seconds: elapsed.Seconds(), Errors: errs.Load(), Non2xx: non2xx.Load(),
		P50us: percentileUS(all, 50), P99us: percentileUS(all, 99),
	}
	if s, ok := firstErr.Load().(string); ok {
		res.FirstErr = s
	}
	return json.NewEncoder(stdout).Encode(res)
}

// roundTrip writes one request and reads its answer with a minimal
// HTTP/1.1 response parser (status line, headers, a Content-Length or
// chunked body), lighter than http.ReadResponse: the generator shares its
// CPU with the upstream.
func roundTrip(c net.Conn, br *bufio.Reader, req []byte) (status int, keepAlive bool, err error) {
	if _, err := c.Write(req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	keepAlive = line[7] == '1'
	length, chunked := int64(-1), false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keepAlive = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keepAlive = true
			}
		}
	}
	switch {
	case chunked:
		_, err = io.Copy(io.Discard, httputil.NewChunkedReader(br))
		if err == nil { // the trailer section ends with a blank line
			for {
				var l []byte
				if l, err = br.ReadSlice('\n'); err != nil || len(l) <= 2 {
					break
				}
			}
		}
	case length > 0:
		_, err = io.CopyN(io.Discard, br, length)
	case length < 0 && status != 204 && status != 304:
		_, err = io.Copy(io.Discard, br) // delimited by the connection's end
		keepAlive = false
	}
	if err != nil {
		return 0, false, err
	}
	return status, keepAlive, nil
}

// requestHeaders are sent with every request of every target (and by wrk).
var requestHeaders = [][2]string{
	{"User-Agent", "portcullis-load/1"},
	{"Accept", "application/json, text/plain, */*"},
	{"Accept-Encoding", "gzip, deflate, br"},
	{"Accept-Language", "en-GB,en;q=0.9"},
}

// buildRequests renders one raw HTTP/1.1 request per header variant.
func buildRequests(addr, path string, variants []string) [][]byte {
	if len(variants) == 0 {
		variants = []string{""}
	}
	out := make([][]byte, len(variants))
	for i, v := range variants {
		var b strings.Builder
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, addr)
		for _, h := range requestHeaders {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
		if v != "" {
			b.WriteString(v + "\r\n")
		}
		b.WriteString("\r\n")
		out[i] = []byte(b.String())
	}
	return out
}

// readLines reads the non-empty lines of a file ("" reads nothing).
func readLines(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// percentileUS is the p-th percentile of sorted durations, in µs.
func percentileUS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Microsecond)
}

var errNoResult = errors.New("load generator printed no result")
