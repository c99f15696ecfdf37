package gateway

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// responseWriter records the status and size for the access log and
// metrics. It exposes the wrapped writer through Unwrap, so
// http.ResponseController (which httputil uses for flushing and for
// WebSocket upgrades) reaches the connection's own Flush and Hijack.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

var responseWriters = sync.Pool{New: func() any { return new(responseWriter) }}

func newResponseWriter(w http.ResponseWriter) *responseWriter {
	rw := responseWriters.Get().(*responseWriter)
	*rw = responseWriter{ResponseWriter: w}
	return rw
}

func releaseResponseWriter(rw *responseWriter) {
	rw.ResponseWriter = nil
	responseWriters.Put(rw)
}

func (rw *responseWriter) WriteHeader(code int) {
	if rw.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Flush lets streaming responses through without buffering.
func (rw *responseWriter) Flush() {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Hijack hands the connection over (WebSocket upgrades).
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rw.ResponseWriter).Hijack()
}

// Unwrap is for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// finish writes the access log line and the request metrics.
func (g *Gateway) finish(rw *responseWriter, r *http.Request, rs *requestState) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	if rs.err != nil && rs.err.Status == statusClientClosed {
		status = statusClientClosed
	}
	dur := g.now().Sub(rs.start)
	rm, routeName := g.noRoute, "-"
	if rs.route != nil {
		rm, routeName = rs.route.metrics, rs.route.name
	}
	rm.requests(status).Inc()
	rm.duration.Observe(dur.Seconds())

	method, result := "-", "allow"
	if rs.identity != nil {
		method = rs.identity.Method
	}
	if rs.err != nil {
		result = rs.err.Reason
	}
	if rs.route != nil && rs.route.Config.Auth != "none" {
		rm.decision(method, result).Inc()
	}

	if !rs.st.cfg.Log.AccessEnabled() {
		return
	}
	level := zapcore.InfoLevel
	if status >= 500 && status != statusClientClosed {
		level = zapcore.WarnLevel
	}
	ce := g.accessLog.Check(level, "request")
	if ce == nil {
		return
	}
	subject := ""
	if rs.identity != nil {
		subject = rs.identity.Subject
	}
	fields := append(rs.fields[:0],
		zap.String("request_id", rs.requestID),
		zap.String("route", routeName),
		zap.String("method", r.Method),
		zap.String("host", r.Host),
		zap.String("path", rs.path),
		zap.Int("status", status),
		zap.Duration("duration", dur),
		zap.Int64("bytes", rw.bytes),
		zap.String("auth", method),
		zap.String("subject", subject),
		zap.String("client", rs.clientHost),
	)
	if rs.err != nil {
		fields = append(fields, zap.String("reason", rs.err.Reason))
		if rs.err.Err != nil && status >= 500 {
			fields = append(fields, zap.String("error", rs.err.Err.Error()))
		}
	}
	ce.Write(fields...)
}

var statusTexts = func() [600]string {
	var t [600]string
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

// requestIDs generates request ids: a random per-process prefix and a
// counter, unique without a random read per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (r *requestIDs) next() string {
	return r.prefix + strconv.FormatUint(r.n.Add(1), 36)
}

// zapErrorLog adapts zap for http.Server and httputil error logs.
func zapErrorLog(l *zap.Logger) *log.Logger {
	el, err := zap.NewStdLogAt(l, zapcore.WarnLevel)
	if err != nil {
		return log.New(discard{}, "", 0)
	}
	return el
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
