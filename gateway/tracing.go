package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingConfig is the tracing: section: OpenTelemetry spans exported over
// OTLP/HTTP. Off by default (empty Endpoint).
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g.
	// "http://otel-collector:4318/v1/traces"; empty: tracing off.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the fraction of new traces sampled (parent-based: an
	// incoming sampled traceparent is always followed); defaults to 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name resource attribute; defaults to
	// "portcullis".
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export (e.g. an API key).
	Headers map[string]string `yaml:"headers"`
}

func (c *TracingConfig) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "portcullis"
	}
	if c.SampleRatio == nil {
		one := 1.0
		c.SampleRatio = &one
	}
}

func (c *TracingConfig) validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("tracing.endpoint: must be an http(s) URL such as http://collector:4318/v1/traces, got %q", c.Endpoint))
		}
	}
	if r := *c.SampleRatio; r < 0 || r > 1 {
		errs = append(errs, fmt.Errorf("tracing.sample_ratio: must be between 0 and 1, got %v", r))
	}
	return errors.Join(errs...)
}

// tracing holds the tracer of a running gateway; nil when tracing is off,
// so the request path pays one nil check.
type tracing struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	provider *sdktrace.TracerProvider
}

// newTracing starts the OTLP exporter; it returns nil when tracing is off.
func newTracing(cfg TracingConfig) (*tracing, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(cfg.Endpoint),
		otlptracehttp.WithHeaders(cfg.Headers),
		otlptracehttp.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(buildVersion()))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SampleRatio))),
	)
	return &tracing{
		tracer:   tp.Tracer("github.com/portcullis/portcullis/gateway"),
		prop:     propagation.TraceContext{},
		provider: tp,
	}, nil
}

// shutdown flushes the spans still buffered.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// startRequest extracts an incoming W3C traceparent and starts the server
// span of a request.
func (t *tracing) startRequest(r *http.Request) (*http.Request, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, "portcullis.request", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), attribute.String("server.address", r.Host)))
	return r.WithContext(ctx), span
}

// endRequest records the outcome on the server span.
func endRequest(span trace.Span, rs *requestState, status int) {
	attrs := []attribute.KeyValue{semconv.HTTPResponseStatusCode(status), attribute.String("url.path", rs.path)}
	if rs.route != nil {
		attrs = append(attrs, semconv.HTTPRoute(rs.route.Config.Path), attribute.String("portcullis.route", rs.route.name))
	}
	if rs.identity != nil {
		attrs = append(attrs, attribute.String("portcullis.auth.method", rs.identity.Method))
	}
	if rs.err != nil {
		attrs = append(attrs, attribute.String("portcullis.reason", rs.err.Reason))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// span starts a child span of the request's (a no-op span when tracing is
// off).
func (t *tracing) span(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind))
}

// inject writes the traceparent of ctx's span into the upstream request.
func (t *tracing) inject(ctx context.Context, h http.Header) {
	if t != nil {
		t.prop.Inject(ctx, propagation.HeaderCarrier(h))
	}
}
