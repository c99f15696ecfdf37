// Command load is portcullis's load harness (issue #10): it measures what
// the gateway costs next to a bare reverse proxy, per core.
//
//	go run ./test/load                     # full run: 10 interleaved rounds, ~8 minutes
//	go run ./test/load -profile /tmp/prof  # the same, then CPU and alloc profiles (+1 minute)
//	go run ./test/load -quick              # smoke run, ~15 seconds
//	go run ./test/load -h                  # flags
//
// It builds the portcullis binary from this checkout and starts, on
// 127.0.0.1 only:
//
//   - a minimal fast upstream (a separate process: a bare HTTP/1.1
//     responder answering 200 "ok", cheap so that the load CPU drives the
//     proxy rather than serving it);
//   - a bare reverse proxy: httputil.ReverseProxy with the same Transport
//     settings as gateway/proxy.go and the same server limits;
//   - a real redis-server holding 100,000 revoked tokens, written through
//     the store package before any gateway starts;
//   - portcullis on that Redis store with a public route (auth none), a
//     JWT route (RS256-2048) and a session route;
//   - a second portcullis, identical but with jwt.cache_size 1, for the
//     cold verification target: its one cache entry never holds the next
//     token, so every request pays what a token seen for the first time
//     pays (cache miss, RS256 verification, cache insert).
//
// and drives the same load at each target: the bare proxy; portcullis on
// the public route; the JWT route with one token reused (cached
// verification, not revoked); the JWT route with a different pre-minted
// token per request (cold verification); the session route (one Redis
// read per request expected). Load comes from wrk when it is on PATH (a
// Lua script rotates through a file of tokens), else from a closed-loop Go
// generator run as a separate process. On Linux with two or more CPUs the
// proxy under test (bare proxy or portcullis) is pinned to CPU 0 and the
// load generator, the upstream and Redis to the last CPU, so the figures
// are per core.
//
// Run-to-run noise is large, so targets are interleaved (bare, target,
// bare, target, ...) over -rounds short rounds, with one more bare run at
// the end, and medians are reported. Each target run is bracketed by the
// bare runs just before and just after it; its ratio is its throughput
// divided by the geometric mean of theirs (so a machine getting slower or
// faster during the pair does not count), and the target's ratio is the
// median of those over the rounds, printed with their quartiles. The CPU
// ratio is paired the same way. Throughput is measured with -conns
// connections (enough to saturate the proxy's core), latency with one
// connection in a closed loop (at saturation p99 is mostly queueing). Redis
// commands per request are INFO commandstats deltas over all the target's
// runs divided by its requests, without the harness's INFO, PING,
// connection set-up, pub/sub and the denylist's periodic rescan. The CPU
// time the process under test used per request (from /proc) is reported
// too: it is its per-core cost even when the load side, not the proxy,
// limited the throughput, which the CPU shares printed per target show.
//
// Then it holds -keepalive (10,000) concurrent keep-alive connections open
// on the JWT route with a trickle of requests (every connection answers
// twice) and reports errors and the gateway's resident memory per
// connection (from /proc; RLIMIT_NOFILE is raised to its hard limit and
// the run is scaled down, and says so, when that is too low). With
// -profile DIR it also saves CPU and allocation profiles of every target
// under load (portcullis's from its /debug/pprof on the admin listener, the
// bare proxy's from a pprof listener it then opens), to compare with
// go tool pprof -diff_base.
//
// It prints one table on stdout (progress goes to stderr), exits non-zero
// when any request failed, stops by itself (-timeout bounds the whole run)
// and stops every process it started on exit and on Ctrl-C (and, through
// Pdeathsig, when it is killed).
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/mint"
)

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "_") {
		os.Exit(runRole(os.Args[1], os.Args[2:]))
	}
	os.Exit(harnessMain(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the harness's flags.
type options struct {
	duration  time.Duration
	rounds    int
	conns     int
	gen       string
	revoked   int
	tokens    int
	keepalive int
	// keepaliveWanted is -keepalive before a low ulimit -n scaled it down.
	keepaliveWanted int
	trickle         time.Duration
	profileDir      string
	profileDur      time.Duration
	bin             string
	quick           bool
	timeout         time.Duration
	// accessLog false turns the gateways' access log off, to show its cost.
	accessLog bool
	// haltPoll >= 0 sets guest_halt_poll_ns for the run (idle.go).
	haltPoll int64
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./test/load [flags]\n\n"+
			"Load harness: bare reverse proxy vs portcullis (public, JWT cached, JWT cold, session on Redis),\n"+
			"interleaved rounds, medians, Redis commands per request, 10k keep-alive connections.\n"+
			"Targets 127.0.0.1 only and stops by itself. Flags:\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of each load run (wrk rounds it up to whole seconds)")
	fs.IntVar(&o.rounds, "rounds", 10, "interleaved rounds; medians are taken over them")
	fs.IntVar(&o.conns, "conns", 64, "connections of the throughput runs (latency runs use 1)")
	fs.StringVar(&o.gen, "gen", "auto", "load generator: auto (wrk when on PATH), wrk, or go")
	fs.IntVar(&o.revoked, "revoked", 100000, "revoked tokens loaded in Redis before the gateways start")
	fs.IntVar(&o.tokens, "tokens", 2048, "distinct RS256 tokens rotated through by the cold JWT target")
	fs.IntVar(&o.keepalive, "keepalive", 10000, "concurrent keep-alive connections held open (0: skip)")
	fs.DurationVar(&o.trickle, "trickle", 5*time.Second, "how long the trickle over the held connections lasts")
	fs.StringVar(&o.profileDir, "profile", "", "directory to save CPU and alloc profiles of every target under load, and a heap profile with the keep-alive connections held (empty: none)")
	fs.DurationVar(&o.profileDur, "profile-duration", 10*time.Second, "length of each profiled run")
	fs.StringVar(&o.bin, "bin", "", "portcullis binary to use instead of building ./cmd/portcullis")
	fs.BoolVar(&o.accessLog, "access-log", true, "gateways write their access log (false: log.access off, to measure its cost)")
	fs.Int64Var(&o.haltPoll, "halt-poll-ns", -1, "on a VM with the cpuidle-haltpoll driver, set guest_halt_poll_ns to this for the run and restore it afterwards (needs root; the kernel's default is 200000; -1: leave it)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1 round, short runs, 2,000 revocations, 64 tokens, 200 keep-alive connections")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "the whole run is stopped after this")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	defer func() { o.keepaliveWanted = o.keepalive }()
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("duration", func() { o.duration = 300 * time.Millisecond })
		def("rounds", func() { o.rounds = 1 })
		def("revoked", func() { o.revoked = 2000 })
		def("tokens", func() { o.tokens = 64 })
		def("keepalive", func() { o.keepalive = 200 })
		def("trickle", func() { o.trickle = 300 * time.Millisecond })
		def("profile-duration", func() { o.profileDur = time.Second })
		def("timeout", func() { o.timeout = 3 * time.Minute })
	}
	switch {
	case o.rounds < 1, o.conns < 1, o.duration <= 0, o.tokens < 2, o.revoked < 0, o.keepalive < 0, o.trickle <= 0:
		return nil, errors.New("-rounds, -conns, -duration and -trickle must be positive, -tokens at least 2")
	case o.gen != "auto" && o.gen != "wrk" && o.gen != "go":
		return nil, fmt.Errorf("-gen %q: want auto, wrk or go", o.gen)
	case o.haltPoll < -1:
		return nil, fmt.Errorf("-halt-poll-ns %d: want -1 (leave the machine's setting) or a number of nanoseconds", o.haltPoll)
	}
	return o, nil
}

func harnessMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	if o.haltPoll >= 0 {
		restore, err := setHaltPoll(o.haltPoll)
		if err != nil {
			fmt.Fprintln(stderr, "load: -halt-poll-ns:", err)
			return 2
		}
		defer func() {
			if err := restore(); err != nil {
				fmt.Fprintln(stderr, "load: restoring guest_halt_poll_ns:", err)
			}
		}()
	}

	dir, err := os.MkdirTemp("", "portcullis-load-")
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ps := newProcs(dir)
	defer ps.stopAll()

	h := &harness{o: o, ps: ps, dir: dir, log: stderr}
	rep, err := h.run(ctx)
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintf(stderr, "load: stopped after -timeout %s: %v\n", o.timeout, err)
		case ctx.Err() != nil:
			fmt.Fprintln(stderr, "load: interrupted; stopping every process")
		default:
			fmt.Fprintln(stderr, "load:", err)
		}
		return 1
	}
	rep.print(stdout)
	if rep.failed() {
		return 1
	}
	return 0
}

// target is one thing the load is driven at.
type target struct {
	key, label string
	addr, path string
	hdrFile    string // one "Name: value" line per request variant
	proc       *proc  // the process under test
	admin      string // admin URL of a portcullis target
	pprof      string // URL of its /debug/pprof (portcullis: on the admin listener, with the admin token)
}

// harness holds what a run sets up.
type harness struct {
	o        *options
	ps       *procs
	dir      string
	log      io.Writer
	self     string
	wrk      string
	proxyCPU int
	loadCPU  int
	nofile   uint64
	adminTok string
	redis    *redisServer
	gws      []*proc
	logs     logScan
	targets  []*target
	bare     *target
	// jwtCached holds the keep-alive connections.
	jwtCached *target
}

const (
	issuer     = "https://idp.load.test/"
	cookieName = "__Host-portcullis"
)

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "load: "+format+"\n", args...)
}

func (h *harness) run(ctx context.Context) (*report, error) {
	if err := h.setup(ctx); err != nil {
		return nil, err
	}
	rep := &report{o: h.o, h: h, targets: h.targets}
	if err := h.rounds(ctx, rep); err != nil {
		return nil, err
	}
	if h.o.keepalive > 0 {
		if err := h.keepAlive(ctx, rep); err != nil {
			return nil, err
		}
	}
	if h.o.profileDir != "" {
		if err := h.profile(ctx, rep); err != nil {
			return nil, err
		}
	}
	for _, g := range h.gws {
		h.logs.scan(g)
	}
	rep.logs = h.logs
	return rep, nil
}

func (h *harness) setup(ctx context.Context) error {
	var err error
	if h.self, err = os.Executable(); err != nil {
		return err
	}
	h.proxyCPU, h.loadCPU = -1, -1
	if cpus := allowedCPUs(); canPin && len(cpus) >= 2 {
		h.proxyCPU, h.loadCPU = cpus[0], cpus[len(cpus)-1]
	}
	if h.nofile, err = raiseNoFile(); err != nil {
		h.logf("cannot read or raise RLIMIT_NOFILE: %v", err)
	}
	// The harness holds one descriptor per keep-alive connection, and so
	// does the gateway (which inherits the limit); keep 1024 for the rest.
	if h.o.keepalive > 0 && h.nofile > 0 && h.nofile < uint64(h.o.keepalive)+1024 {
		n := max(0, int(h.nofile)-1024)
		h.logf("ulimit -n (hard limit) is %d: the machine cannot hold %d keep-alive connections, holding %d", h.nofile, h.o.keepalive, n)
		h.o.keepalive = n
	}
	switch h.o.gen {
	case "auto", "wrk":
		if p, err := exec.LookPath("wrk"); err == nil {
			h.wrk = p
		} else if h.o.gen == "wrk" {
			return errors.New("-gen wrk: wrk is not on PATH")
		}
	}
	if h.wrk != "" && h.o.duration < time.Second {
		h.o.duration = time.Second // wrk's shortest run
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h.adminTok = hex.EncodeToString(b)

	bin := h.o.bin
	if bin == "" {
		h.logf("building ./cmd/portcullis")
		if bin, err = buildPortcullis(ctx, h.dir); err != nil {
			return err
		}
	}

	h.logf("starting redis-server, upstream and bare proxy (proxy CPU %d, load CPU %d)", h.proxyCPU, h.loadCPU)
	if h.redis, err = startRedis(ctx, h.ps, h.loadCPU, h.dir); err != nil {
		return err
	}
	up, err := h.ps.start("upstream", h.loadCPU, nil, h.self, roleUpstream)
	if err != nil {
		return err
	}
	upAddr, err := listening(ctx, up)
	if err != nil {
		return err
	}
	bpArgs := []string{h.self, roleBareProxy, "-upstream", "http://" + upAddr}
	if h.o.profileDir != "" {
		bpArgs = append(bpArgs, "-pprof", "127.0.0.1:0")
	}
	bp, err := h.ps.start("bareproxy", h.proxyCPU, nil, bpArgs...)
	if err != nil {
		return err
	}
	bareAddr, err := listening(ctx, bp)
	if err != nil {
		return err
	}
	barePprof := ""
	if h.o.profileDir != "" {
		line, err := bp.waitOutput(ctx, "pprof ", 20*time.Second)
		if err != nil {
			return err
		}
		_, a, _ := strings.Cut(line, "pprof ")
		barePprof = "http://" + strings.TrimSpace(a) + "/debug/pprof"
	}

	h.logf("generating an RS256-2048 key, minting %d tokens, writing %d revocations to Redis", h.o.tokens+2, h.o.revoked)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPath, err := writePublicKey(h.dir, key)
	if err != nil {
		return err
	}
	signer, err := mint.NewSigner(key, "")
	if err != nil {
		return err
	}
	exp := time.Now().Add(2 * time.Hour)
	if err := writeRevocations(ctx, h.redis.addr, issuer, h.o.revoked, exp); err != nil {
		return fmt.Errorf("writing revocations: %w", err)
	}
	mintOne := func(jti string) (string, error) {
		return signer.MintDev(mint.Dev{Issuer: issuer, Audience: []string{"api"}, Subject: "load-user-" + jti,
			Roles: []string{"user", "orders:read"}, Scope: "read write", ACR: "pwd", AMR: []string{"pwd", "otp"},
			AuthTime: time.Now().Unix(), TTL: 2 * time.Hour, JTI: jti})
	}
	cached, err := mintOne("load-cached")
	if err != nil {
		return err
	}
	cold, err := mintMany(h.o.tokens, mintOne)
	if err != nil {
		return err
	}
	var revoked string
	if h.o.revoked > 0 {
		if revoked, err = mintOne(revokedJTI(h.o.revoked / 2)); err != nil {
			return err
		}
	}

	h.logf("starting portcullis (redis store) twice: default, and jwt.cache_size 1 for cold verification")
	gw, err := h.startGateway(ctx, bin, "portcullis", keyPath, "http://"+upAddr, 0)
	if err != nil {
		return err
	}
	coldGW, err := h.startGateway(ctx, bin, "portcullis-cold", keyPath, "http://"+upAddr, 1)
	if err != nil {
		return err
	}
	session, err := createSession(ctx, gw.admin, h.adminTok)
	if err != nil {
		return err
	}

	hdr := func(name string, lines ...string) (string, error) {
		p := filepath.Join(h.dir, name+".hdr")
		return p, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	}
	bearerCached := "Authorization: Bearer " + cached
	coldLines := make([]string, len(cold))
	for i, t := range cold {
		coldLines[i] = "Authorization: Bearer " + t
	}
	mk := func(key, label, addr, path string, p *proc, admin string, lines ...string) (*target, error) {
		f, err := hdr(key, lines...)
		t := &target{key: key, label: label, addr: addr, path: path, hdrFile: f, proc: p, admin: admin, pprof: barePprof}
		if admin != "" {
			t.pprof = admin + "/debug/pprof"
		}
		return t, err
	}
	var errs []error
	add := func(t *target, err error) *target { errs = append(errs, err); return t }
	// The bare proxy gets the JWT header too, so its requests are as large
	// as those of the JWT targets.
	h.bare = add(mk("bare", "bare proxy", bareAddr, "/api/orders/42", bp, "", bearerCached))
	public := add(mk("public", "portcullis public", gw.addr, "/public/orders/42", gw.proc, gw.admin, bearerCached))
	jwtCached := add(mk("jwt-cached", "portcullis jwt cached", gw.addr, "/api/orders/42", gw.proc, gw.admin, bearerCached))
	jwtCold := add(mk("jwt-cold", "portcullis jwt cold", coldGW.addr, "/api/orders/42", coldGW.proc, coldGW.admin, coldLines...))
	sess := add(mk("session", "portcullis session", gw.addr, "/app/orders/42", gw.proc, gw.admin, "Cookie: "+cookieName+"="+session))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.targets = []*target{h.bare, public, jwtCached, jwtCold, sess}
	h.jwtCached = jwtCached

	// What a user would check first: every target answers 200 "ok", a
	// revoked token and a missing credential are refused.
	for _, t := range h.targets {
		lines, _ := readLines(t.hdrFile)
		if code, body, err := get(ctx, t.addr, t.path, lines[0]); err != nil || code != 200 || body != "ok" {
			return fmt.Errorf("%s: GET %s: %d %q %v", t.label, t.path, code, body, err)
		}
	}
	if revoked != "" {
		if code, _, err := get(ctx, gw.addr, "/api/orders/42", "Authorization: Bearer "+revoked); err != nil || code != 401 {
			return fmt.Errorf("a token in the revocation list: status %d (%v), want 401", code, err)
		}
	}
	if code, _, err := get(ctx, gw.addr, "/api/orders/42", ""); err != nil || code != 401 {
		return fmt.Errorf("no credential on the JWT route: status %d (%v), want 401", code, err)
	}
	h.logf("warming up every target")
	for _, t := range h.targets {
		if err := warm(ctx, t); err != nil {
			return err
		}
	}
	for _, g := range h.gws {
		h.logs.scan(g)
	}
	return nil
}

// mintMany signs n tokens with distinct jti on every CPU.
func mintMany(n int, mintOne func(string) (string, error)) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, runtime.NumCPU())
	var wg sync.WaitGroup
	for w := range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += runtime.NumCPU() {
				if out[i], errs[w] = mintOne(fmt.Sprintf("load-cold-%06d", i)); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// buildPortcullis builds ./cmd/portcullis of the module the harness runs in.
func buildPortcullis(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the harness inside the portcullis module (go run ./test/load), or pass -bin")
	}
	bin := filepath.Join(dir, "portcullis")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portcullis")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/portcullis: %v\n%s", err, out)
	}
	return bin, nil
}

func writePublicKey(dir string, key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "idp.pub.pem")
	return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
}

// listening waits for a role's "listening ADDR" line.
func listening(ctx context.Context, p *proc) (string, error) {
	line, err := p.waitOutput(ctx, "listening ", 20*time.Second)
	if err != nil {
		return "", err
	}
	_, addr, _ := strings.Cut(line, "listening ")
	return strings.TrimSpace(addr), nil
}

const gatewayConfig = `# written by test/load
server:
  listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  token: "%s"
store:
  type: redis
  redis:
    addrs: ["%s"]
jwt:%s
  issuers:
    - issuer: "%s"
      audiences: [api]
      algorithms: [RS256]
      keys: ["%s"]
routes:
  - name: public
    path: /public
    upstream: "%s"
    auth: none
  - name: api
    path: /api
    upstream: "%s"
    auth: jwt
    roles: [user]
  - name: app
    path: /app
    upstream: "%s"
    auth: session
    roles: [user]
`

// gateway is a running portcullis.
type gateway struct {
	proc        *proc
	addr, admin string
}

// startGateway runs portcullis serve pinned to the proxy CPU and waits
// until it is ready with every revocation loaded. cacheSize 0 keeps the
// default verification cache.
func (h *harness) startGateway(ctx context.Context, bin, name, keyPath, upstream string, cacheSize int) (*gateway, error) {
	cache := ""
	if cacheSize != 0 {
		cache = fmt.Sprintf("\n  cache_size: %d", cacheSize)
	}
	cfg := fmt.Sprintf(gatewayConfig, h.adminTok, h.redis.addr, cache, issuer, keyPath, upstream, upstream, upstream)
	if !h.o.accessLog {
		cfg += "log:\n  access: false\n"
	}
	path := filepath.Join(h.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := h.ps.start(name, h.proxyCPU, nil, bin, "serve", "--config", path)
	if err != nil {
		return nil, err
	}
	h.gws = append(h.gws, p)
	line, err := p.waitOutput(ctx, `"portcullis serving"`, time.Minute)
	if err != nil {
		return nil, err
	}
	var m struct{ Listen, Admin string }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, fmt.Errorf("%s: startup line %q: %w", name, line, err)
	}
	g := &gateway{proc: p, addr: m.Listen, admin: "http://" + m.Admin}
	deadline := time.Now().Add(time.Minute)
	for {
		ready := httpStatus(ctx, g.admin+"/readyz") == 200
		if ready && filterEntries(ctx, g.admin) >= float64(h.o.revoked) {
			return g, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s not ready with %d revocations loaded (ready %v, entries %v):\n%s",
				name, h.o.revoked, ready, filterEntries(ctx, g.admin), p.tail(3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpStatus(ctx context.Context, url string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// filterEntries reads portcullis_revocation_filter_entries from /metrics.
func filterEntries(ctx context.Context, admin string) float64 {
	return metricValue(ctx, admin, "portcullis_revocation_filter_entries")
}

// metricValue reads one unlabelled sample from a gateway's /metrics; -1
// when it cannot.
func metricValue(ctx context.Context, admin, name string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// createSession creates a session through the admin API and returns its ID.
func createSession(ctx context.Context, admin, token string) (string, error) {
	body := `{"subject":"load-session-user","roles":["user"],"scopes":["read"],"acr":"pwd","amr":["pwd"],"ttl":"2h"}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/v1/sessions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		SessionID string `json:"session_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 || out.SessionID == "" {
		return "", fmt.Errorf("POST /v1/sessions: status %d, %v", resp.StatusCode, err)
	}
	return out.SessionID, nil
}

// get sends one request with the load generators' headers plus header.
func get(ctx context.Context, addr, path, header string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	for _, kv := range requestHeaders {
		req.Header.Set(kv[0], kv[1])
	}
	if name, value, ok := strings.Cut(header, ": "); ok {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), err
}

// warm sends a few hundred requests on 8 connections so that pools,
// caches and upstream connections are in their steady state.
func warm(ctx context.Context, t *target) error {
	lines, _ := readLines(t.hdrFile)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 400; i += 8 {
				code, _, err := get(ctx, t.addr, t.path, lines[i%len(lines)])
				if err == nil && code != 200 {
					err = fmt.Errorf("%s: warm-up status %d", t.label, code)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runRec is one load run.
type runRec struct {
	round int
	t     *target
	conns int
	res   genResult
	redis map[string]int64
	// bare and bareAfter bracket a portcullis throughput run: the bare
	// proxy's runs just before and just after it (nil for bare runs).
	bare, bareAfter *runRec
	// proxyCPU is the CPU time the process under test used per second of
	// the run (1.0: its core saturated); loadBusy the busy fraction of the
	// load generator's CPU.
	proxyCPU, loadBusy float64
	// cpuPerReq is the CPU time of the process under test per request, in
	// µs: its cost per core whether or not the load saturated it.
	cpuPerReq float64
}

// sequence is one round: the bare proxy before every portcullis target
// (-quick: once, first).
func (h *harness) sequence() []*target {
	var seq []*target
	for _, t := range h.targets[1:] {
		if !h.o.quick || len(seq) == 0 {
			seq = append(seq, h.bare)
		}
		seq = append(seq, t)
	}
	return seq
}

func (h *harness) rounds(ctx context.Context, rep *report) error {
	genName := "Go generator (separate process)"
	if h.wrk != "" {
		genName = "wrk (" + h.wrk + ")"
	}
	rep.generator = genName
	var lastBare *runRec
	var waiting []*runRec // target runs since lastBare, waiting for the next bare run
	throughput := func(rec *runRec) {
		if rec.t == h.bare {
			for _, w := range waiting {
				w.bareAfter = rec
			}
			lastBare, waiting = rec, waiting[:0]
			return
		}
		rec.bare = lastBare
		waiting = append(waiting, rec)
	}
	for r := 1; r <= h.o.rounds; r++ {
		for _, t := range h.sequence() {
			for _, conns := range []int{h.o.conns, 1} {
				rec, err := h.measure(ctx, t, conns, h.o.duration)
				if err != nil {
					return err
				}
				rec.round = r
				if conns > 1 {
					throughput(rec)
				}
				rep.runs = append(rep.runs, rec)
				h.logf("round %d/%d %-24s %2d conn: %8.0f req/s  p50 %-8s p99 %-8s proxy CPU %3.0f%%  load CPU %3.0f%%  errors %d",
					r, h.o.rounds, t.label, conns, rec.rps(), fmtUS(rec.res.P50us), fmtUS(rec.res.P99us),
					100*rec.proxyCPU, 100*rec.loadBusy, rec.res.Errors)
			}
		}
	}
	// One more bare run, so the last target run is bracketed too.
	rec, err := h.measure(ctx, h.bare, h.o.conns, h.o.duration)
	if err != nil {
		return err
	}
	rec.round = h.o.rounds + 1
	throughput(rec)
	rep.runs = append(rep.runs, rec)
	h.logf("closing %-24s %2d conn: %8.0f req/s", h.bare.label, h.o.conns, rec.rps())
	return nil
}

// measure runs the load generator once at t and reads the Redis commands
// issued meanwhile.
func (h *harness) measure(ctx context.Context, t *target, conns int, d time.Duration) (*runRec, error) {
	for _, g := range h.gws {
		if g.exited() {
			return nil, fmt.Errorf("%s exited (%v):\n%s", g.name, g.err, g.tail(3000))
		}
	}
	before, err := h.redis.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	pid := t.proc.cmd.Process.Pid
	cpu0, wall0 := procCPU(pid), time.Now()
	busy0, total0 := cpuBusy(h.loadCPU)
	res, err := h.drive(ctx, t, conns, d)
	if err != nil {
		return nil, err
	}
	cpu1, wall1 := procCPU(pid), time.Now()
	busy1, total1 := cpuBusy(h.loadCPU)
	after, err := h.redis.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range h.gws {
		h.logs.scan(g)
	}
	rec := &runRec{t: t, conns: conns, res: res, redis: commandDelta(before, after)}
	rec.proxyCPU = float64(cpu1-cpu0) / float64(wall1.Sub(wall0))
	if res.Requests > 0 {
		rec.cpuPerReq = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(res.Requests)
	}
	if total1 > total0 {
		rec.loadBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	return rec, nil
}

// drive runs wrk or the Go generator, pinned to the load CPU.
func (h *harness) drive(ctx context.Context, t *target, conns int, d time.Duration) (genResult, error) {
	var argv []string
	if h.wrk != "" {
		script, err := h.wrkScript(t)
		if err != nil {
			return genResult{}, err
		}
		secs := max(1, int(math.Ceil(d.Seconds())))
		argv = []string{h.wrk, "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), "--timeout", "10s",
			"-s", script, "http://" + t.addr + t.path}
	} else {
		argv = []string{h.self, roleGen, "-addr", t.addr, "-path", t.path, "-conns", fmt.Sprint(conns),
			"-duration", d.String(), "-headers", t.hdrFile}
	}
	out, err := h.ps.run(ctx, "load generator", h.loadCPU, argv...)
	if err != nil {
		return genResult{}, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "{") {
			var res genResult
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				return genResult{}, fmt.Errorf("load generator output %q: %w", line, err)
			}
			return res, nil
		}
	}
	return genResult{}, fmt.Errorf("%w:\n%s", errNoResult, out)
}

// wrkLua drives one target: the request headers of every target, then one
// request variant per line of the header file; a single variant is static
// (wrk formats it once), several are pre-formatted and rotated through.
// done prints the same JSON as the Go generator.
const wrkLua = `-- written by test/load
local lines = {}
for l in io.lines(%q) do
  local n, v = l:match("^([^:]+):%%s*(.*)$")
  if n then lines[#lines + 1] = {n, v} end
end
%s
if #lines == 1 then
  wrk.headers[lines[1][1]] = lines[1][2]
elseif #lines > 1 then
  local reqs, i = {}, 0
  function init(args)
    for k, l in ipairs(lines) do
      local h = {}
      for name, value in pairs(wrk.headers) do h[name] = value end
      h[l[1]] = l[2]
      reqs[k] = wrk.format(nil, nil, h)
    end
  end
  function request()
    i = i %% #reqs + 1
    return reqs[i]
  end
end
function done(s, lat, req)
  local e = s.errors
  io.write(string.format('{"requests":%%d,"seconds":%%.6f,"errors":%%d,"non2xx":%%d,"p50_us":%%d,"p99_us":%%d}\n',
    s.requests, s.duration / 1e6, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    lat:percentile(50), lat:percentile(99)))
end
`

func (h *harness) wrkScript(t *target) (string, error) {
	p := filepath.Join(h.dir, t.key+".lua")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	var base strings.Builder
	for _, kv := range requestHeaders {
		fmt.Fprintf(&base, "wrk.headers[%q] = %q\n", kv[0], kv[1])
	}
	return p, os.WriteFile(p, []byte(fmt.Sprintf(wrkLua, t.hdrFile, base.String())), 0o600)
}

func (h *harness) keepAlive(ctx context.Context, rep *report) error {
	t := h.jwtCached
	lines, _ := readLines(t.hdrFile)
	h.logf("holding %d keep-alive connections on %s (trickle over %s)", h.o.keepalive, t.label, h.o.trickle)
	res, err := keepAlive(ctx, t.addr, t.path, lines[0], h.o.keepalive, h.o.trickle, t.proc.cmd.Process.Pid, func() goMem {
		return goMem{
			heap:       metricValue(ctx, t.admin, "go_memstats_heap_inuse_bytes"),
			stack:      metricValue(ctx, t.admin, "go_memstats_stack_inuse_bytes"),
			goroutines: metricValue(ctx, t.admin, "go_goroutines"),
		}
	}, func() error {
		if h.o.profileDir == "" {
			return nil
		}
		if err := os.MkdirAll(h.o.profileDir, 0o755); err != nil {
			return err
		}
		return h.fetch(ctx, t, "/heap?gc=1", filepath.Join(h.o.profileDir, "keepalive.heap.pb.gz"))
	})
	if err != nil {
		return fmt.Errorf("keep-alive connections: %w", err)
	}
	rep.keep = &res
	for _, g := range h.gws {
		h.logs.scan(g)
	}
	return nil
}

// profile saves CPU and allocation profiles of the gateway under load.
func (h *harness) profile(ctx context.Context, rep *report) error {
	if err := os.MkdirAll(h.o.profileDir, 0o755); err != nil {
		return err
	}
	for _, t := range h.targets {
		h.logf("profiling %s for %s", t.label, h.o.profileDur)
		base := filepath.Join(h.o.profileDir, t.key)
		if err := h.fetch(ctx, t, "/allocs", base+".allocs.before.pb.gz"); err != nil {
			return err
		}
		var wg sync.WaitGroup
		var cpuErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			secs := max(1, int(h.o.profileDur.Seconds()))
			cpuErr = h.fetch(ctx, t, fmt.Sprintf("/profile?seconds=%d", secs), base+".cpu.pb.gz")
		}()
		rec, err := h.measure(ctx, t, h.o.conns, h.o.profileDur+time.Second)
		wg.Wait()
		if err != nil {
			return err
		}
		if cpuErr != nil {
			return cpuErr
		}
		if err := h.fetch(ctx, t, "/allocs", base+".allocs.after.pb.gz"); err != nil {
			return err
		}
		rep.profiles = append(rep.profiles, profiled{t: t, rec: rec, base: base})
	}
	return nil
}

// fetch saves what t's pprof URL + rel answers to path.
func (h *harness) fetch(ctx context.Context, t *target, rel, path string) error {
	url := t.pprof + rel
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if t.admin != "" {
		req.Header.Set("Authorization", "Bearer "+h.adminTok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
