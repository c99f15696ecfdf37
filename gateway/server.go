package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis/portcullis/denylist"
	"github.com/portcullis/portcullis/internal/metrics"
	"github.com/portcullis/portcullis/store"
)

// RunOptions configure Run.
type RunOptions struct {
	Logger *zap.Logger
	// AccessLogger writes the access log; defaults to Logger.
	AccessLogger *zap.Logger
	// Reload delivers a value for every reload request (SIGHUP).
	Reload <-chan os.Signal
	// Listening, if set, is called once both listeners accept, with their
	// actual addresses.
	Listening func(main, admin net.Addr)
}

// storeCloser is a Store that can be closed.
type storeCloser interface {
	Store
	denylist.Store
	Close() error
}

// openStore connects the configured store.
func openStore(cfg store.Config, log *zap.Logger, m *metrics.Metrics) (storeCloser, error) {
	if cfg.Type == "redis" {
		r, err := store.NewRedis(cfg.Redis, store.RedisOptions{Logger: log.Named("store"), Metrics: m})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return r, nil
	}
	return store.NewMemory(store.MemoryOptions{}), nil
}

// Run is `portcullis serve`: it loads the configuration at path, serves the
// main and admin listeners until ctx is done, reloads on opts.Reload (an
// invalid configuration is logged and the running one stays), and shuts
// down gracefully: /readyz turns 503, after server.shutdown_delay the
// listeners stop accepting, in-flight requests get server.shutdown_timeout
// to finish.
func Run(ctx context.Context, path string, opts RunOptions) error {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	m := metrics.New()
	st, err := openStore(cfg.Store, log, m)
	if err != nil {
		return err
	}
	defer st.Close()
	deny, err := denylist.New(cfg.Revocation, st, denylist.Options{Logger: log.Named("denylist"), Metrics: m})
	if err != nil {
		return fmt.Errorf("revocation: %w", err)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := deny.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("revocation sync stopped", zap.Error(err))
		}
	}()
	defer wg.Wait()
	defer stopBG()

	tr, err := newTracing(cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(ctx); err != nil {
			log.Warn("flushing traces", zap.Error(err))
		}
	}()
	g, err := New(bg, cfg, Options{Logger: log, AccessLogger: opts.AccessLogger, Store: st, Deny: deny, Metrics: m, tracing: tr})
	if err != nil {
		return err
	}
	defer g.Close()

	// The admin listener comes up first, so /healthz and /readyz answer
	// while the node waits for its revocation list.
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	admin := &http.Server{
		Handler:           g.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          zapErrorLog(log.Named("admin")),
	}
	errc := make(chan error, 2)
	go func() { errc <- serveOn(admin, adminLn) }()
	main := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          zapErrorLog(log.Named("http")),
	}
	if cfg.Server.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile)
		if err != nil {
			admin.Close()
			return fmt.Errorf("server.tls: %w", err)
		}
		main.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	waitForRevocations(ctx, deny, 10*time.Second, log)
	mainLn, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		admin.Close()
		return fmt.Errorf("server.listen: %w", err)
	}
	if main.TLSConfig != nil {
		mainLn = tls.NewListener(mainLn, main.TLSConfig)
	}
	go func() { errc <- serveOn(main, mainLn) }()
	log.Info("portcullis serving", zap.String("listen", mainLn.Addr().String()), zap.String("admin", adminLn.Addr().String()),
		zap.Bool("tls", cfg.Server.TLS.Enabled()), zap.String("store", cfg.Store.Type), zap.Int("routes", len(cfg.Routes)))
	if opts.Listening != nil {
		opts.Listening(mainLn.Addr(), adminLn.Addr())
	}

	for {
		select {
		case err := <-errc:
			return fmt.Errorf("server stopped: %w", err)
		case <-opts.Reload:
			reload(g, path, log)
		case <-ctx.Done():
			return shutdown(g, main, admin, log)
		}
	}
}

// waitForRevocations holds the main listener back until the revocation
// filter has loaded (or for at most max), so that a starting node does not
// answer 503 to every JWT while fail_mode is closed, nor accept revoked
// tokens while it is open.
func waitForRevocations(ctx context.Context, deny *denylist.Denylist, max time.Duration, log *zap.Logger) {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !deny.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			log.Warn("revocation list not loaded yet; serving anyway (see /readyz)", zap.Duration("waited", max))
			return
		case <-tick.C:
		}
	}
}

func serveOn(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// reload applies a new configuration file, or logs why it cannot.
func reload(g *Gateway, path string, log *zap.Logger) {
	old := g.Config()
	cfg, err := LoadConfig(path)
	if err == nil {
		err = g.Reload(cfg)
	} else {
		g.metrics.Reloads.WithLabelValues("error").Inc()
	}
	if err != nil {
		var msgs []string
		for _, e := range flatten(err) {
			msgs = append(msgs, e.Error())
		}
		log.Error("configuration reload failed; the running configuration stays", zap.Strings("errors", msgs))
		return
	}
	warnRestart(old, cfg, log)
	log.Info("configuration reloaded", zap.Int("routes", len(cfg.Routes)))
}

// warnRestart logs the changes a reload cannot apply.
func warnRestart(old, cur *Config, log *zap.Logger) {
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"server.listen", old.Server.Listen, cur.Server.Listen},
		{"server.tls", old.Server.TLS, cur.Server.TLS},
		{"server.read_header_timeout", old.Server.ReadHeaderTimeout, cur.Server.ReadHeaderTimeout},
		{"server.idle_timeout", old.Server.IdleTimeout, cur.Server.IdleTimeout},
		{"server.max_header_bytes", old.Server.MaxHeaderBytes, cur.Server.MaxHeaderBytes},
		{"server.upstream_max_idle_per_host", old.Server.UpstreamMaxIdlePerHost, cur.Server.UpstreamMaxIdlePerHost},
		{"log.level", old.Log.Level, cur.Log.Level},
		{"admin.listen", old.Admin.Listen, cur.Admin.Listen},
		{"store", old.Store, cur.Store},
		{"revocation", old.Revocation, cur.Revocation},
		{"tracing", old.Tracing, cur.Tracing},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			log.Warn("configuration change takes effect only after a restart", zap.String("key", f.name))
		}
	}
}

func shutdown(g *Gateway, main, admin *http.Server, log *zap.Logger) error {
	cfg := g.Config()
	g.draining.Store(true)
	// Clients on keep-alive connections reconnect for their next request,
	// so the load balancer can send them elsewhere.
	main.SetKeepAlivesEnabled(false)
	log.Info("shutting down: readiness off, draining", zap.Duration("delay", cfg.Server.ShutdownDelay), zap.Duration("timeout", cfg.Server.ShutdownTimeout))
	if d := cfg.Server.ShutdownDelay; d > 0 {
		t := time.NewTimer(d)
		<-t.C
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	err := main.Shutdown(ctx)
	if err != nil {
		log.Warn("in-flight requests did not finish within server.shutdown_timeout", zap.Error(err))
		main.Close()
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	_ = admin.Shutdown(actx)
	log.Info("shut down")
	return nil
}
