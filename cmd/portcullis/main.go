// Command portcullis is a reverse-proxy authentication gateway: see
// `portcullis help` and README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/gateway"
	"github.com/portcullis/portcullis/internal/configwatch"
	demopkg "github.com/portcullis/portcullis/internal/demo"
	"github.com/portcullis/portcullis/internal/logging"
	"github.com/portcullis/portcullis/mint"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `portcullis: a reverse-proxy authentication gateway

Usage:
  portcullis serve   --config FILE [--watch]
                                       run the gateway (SIGHUP, or with --watch a changed file,
                                       reloads; SIGTERM drains and stops)
  portcullis check   --config FILE     validate a configuration and print its route table
  portcullis demo                      self-contained tour: echo upstream, generated key, curl commands
  portcullis token   --key PEM --sub S [flags]   mint a development JWT
  portcullis version                   version and build information

--config defaults to $PORTCULLIS_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	gateway.Version = version
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "demo":
		err = demo(args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		printVersion(stdout)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "portcullis: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		printErr(stderr, err)
		return 1
	}
	return 0
}

// printErr prints each joined error on its own line.
func printErr(w io.Writer, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			printErr(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("PORTCULLIS_CONFIG"), "configuration file (default $PORTCULLIS_CONFIG)")
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	watch := fs.Bool("watch", false, "reload when the configuration file's content changes, as SIGHUP does (polls; follows symlinks such as a Kubernetes ConfigMap's)")
	watchEvery := fs.Duration("watch-interval", 2*time.Second, "how often --watch reads the configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("serve: --config is required (or set PORTCULLIS_CONFIG)")
	}
	if *watchEvery <= 0 {
		return fmt.Errorf("serve: --watch-interval %s: must be > 0", *watchEvery)
	}
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		return err
	}
	log, access, stopAccess, err := logging.New(cfg.Log.Level)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	defer stopAccess()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if *watch {
		watchCtx, stopWatch := context.WithCancel(ctx)
		done := configwatch.Start(watchCtx, *path, *watchEvery, func() {
			log.Info("configuration file changed; reloading", zap.String("config", *path))
			select {
			case hup <- syscall.SIGHUP: // a reload like SIGHUP's
			default: // one is pending already: it will read the new file
			}
		})
		defer func() { stopWatch(); <-done }()
	}
	return gateway.Run(ctx, *path, gateway.RunOptions{Logger: log, AccessLogger: access, Reload: hup})
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "check: --config is required (or set PORTCULLIS_CONFIG)")
		return 2
	}
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNAME\tHOST\tPATH\tMETHODS\tAUTH\tROLES\tSCOPES\tSTEP-UP\tUPSTREAM")
	for _, r := range gateway.RouteTable(cfg) {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.Name, dash(r.Host), r.Path, dash(r.Methods),
			r.Auth, dash(r.Roles), dash(r.Scopes), dash(r.StepUp), r.Upstream)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%s: ok (%d routes, store %s)\n", *path, len(cfg.Routes), cfg.Store.Type)
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		key      = fs.String("key", "", "PEM private key file (RSA, P-256/384/521 or Ed25519; PKCS#8, PKCS#1 or SEC1)")
		sub      = fs.String("sub", "", "subject (required)")
		iss      = fs.String("iss", "https://idp.example.com/", "issuer")
		aud      = fs.String("aud", "", "audience; several separated by commas")
		roles    = fs.String("roles", "", "roles, comma-separated")
		scope    = fs.String("scope", "", "scopes, space-separated")
		acr      = fs.String("acr", "", "authentication context class (acr)")
		amr      = fs.String("amr", "", "authentication methods (amr), comma-separated")
		authTime = fs.Int64("auth-time", 0, "auth_time, unix seconds (0: omitted)")
		ttl      = fs.Duration("ttl", 10*time.Minute, "lifetime (exp - iat)")
		jti      = fs.String("jti", "", "token id (default: random)")
		kid      = fs.String("kid", "", "key id (default: the key's RFC 7638 thumbprint)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *sub == "" {
		return errors.New("token: --key and --sub are required")
	}
	s, err := mint.LoadSigner(*key, *kid)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	t, err := s.MintDev(mint.Dev{
		Issuer: *iss, Audience: split(*aud, ","), Subject: *sub, Roles: split(*roles, ","), Scope: *scope,
		ACR: *acr, AMR: split(*amr, ","), AuthTime: *authTime, TTL: *ttl, JTI: *jti, Now: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, t)
	return nil
}

func split(s, sep string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func printVersion(w io.Writer) {
	v, commit, when, dirty, goVersion := version, "unknown", "", false, "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if dirty {
		commit += "-dirty"
	}
	fmt.Fprintf(w, "portcullis %s\ncommit: %s\n", v, commit)
	if when != "" {
		fmt.Fprintf(w, "built from: %s\n", when)
	}
	fmt.Fprintf(w, "go: %s\n", goVersion)
}

func demo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway address")
	admin := fs.String("admin", "127.0.0.1:9090", "admin address")
	verbose := fs.Bool("v", false, "print the gateway's JSON logs on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := zap.NewNop()
	if *verbose {
		var (
			stopAccess func()
			err        error
		)
		if log, _, stopAccess, err = logging.New("info"); err != nil {
			return err
		}
		defer stopAccess()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demopkg.Run(ctx, demopkg.Options{Listen: *listen, Admin: *admin, Logger: log}, stdout)
}
