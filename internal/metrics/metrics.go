// Package metrics defines every Prometheus metric portcullis exports, in one
// place, so that names and label sets stay bounded and documented. The names
// in SPEC.md are a contract: alerts are written against them.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the collectors. Label values are bounded: route names from
// the configuration, issuers from the configuration, fixed result words.
type Metrics struct {
	// Registry gathers every collector below plus the Go runtime and process
	// collectors; serve it with promhttp.HandlerFor.
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, code
	RequestDuration *prometheus.HistogramVec // route
	AuthDecisions   *prometheus.CounterVec   // route, method, result
	BloomHits       *prometheus.CounterVec   // confirmed: true|false|unknown
	StoreErrors     prometheus.Counter
	JWKSRefresh     *prometheus.CounterVec // issuer, result: ok|error
	SyncLag         prometheus.Gauge
	TokensIssued    *prometheus.CounterVec // kind: access|refresh|assertion|session
	RefreshReuse    prometheus.Counter

	// Extensions beyond SPEC.
	FailOpen         prometheus.Counter     // Bloom hits let through because the store was down (fail_mode open)
	FilterEntries    prometheus.Gauge       // revocations loaded in the local filter
	Subscribed       prometheus.Gauge       // 1 while the revocation channel is subscribed
	LastResync       prometheus.Gauge       // unix time of the last successful full resync
	Reloads          *prometheus.CounterVec // result: ok|error
	UpstreamInflight *prometheus.GaugeVec   // route
	Rejected         *prometheus.CounterVec // reason: bad-path|no-route|... (refusals before auth)
}

// New creates the collectors and registers them, with the Go and process
// collectors, in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_requests_total",
			Help: "Requests answered, by route and HTTP status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_request_duration_seconds",
			Help:    "Time from request start to the end of the response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		AuthDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_auth_decisions_total",
			Help: "Authentication and authorisation decisions, by route, credential method and result (allow or a reason).",
		}, []string{"route", "method", "result"}),
		BloomHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_revocations_bloom_hits_total",
			Help: "Revocation Bloom filter hits, by whether the store confirmed the revocation (true), refuted it (false: a false positive) or could not answer (unknown).",
		}, []string{"confirmed"}),
		StoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portcullis_store_errors_total",
			Help: "Store calls that failed for a technical reason (unreachable, timeout).",
		}),
		JWKSRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_jwks_refresh_total",
			Help: "JWKS fetches, by issuer and result (ok or error).",
		}, []string{"issuer", "result"}),
		SyncLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_revocation_sync_lag_seconds",
			Help: "Delay between a revocation's publication by one node and its arrival at this node, for the last one received.",
		}),
		TokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_tokens_issued_total",
			Help: "Credentials issued by the gateway, by kind (access, refresh, assertion, session).",
		}, []string{"kind"}),
		RefreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portcullis_refresh_reuse_total",
			Help: "Refresh tokens presented again after their reuse grace; each one revoked its whole family.",
		}),
		FailOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "portcullis_revocation_fail_open_total",
			Help: "Bloom filter hits let through unconfirmed because the store was unreachable and fail_mode is open.",
		}),
		FilterEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_revocation_filter_entries",
			Help: "Revocations added to the local Bloom filter since its last rebuild, the rebuild's included.",
		}),
		Subscribed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_revocation_subscribed",
			Help: "1 while this node is subscribed to the revocation channel, else 0.",
		}),
		LastResync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_revocation_last_resync_timestamp_seconds",
			Help: "Unix time of the last successful full rebuild of the revocation filter from the store.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_config_reloads_total",
			Help: "Configuration reloads, by result (ok or error).",
		}, []string{"result"}),
		UpstreamInflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_upstream_inflight_requests",
			Help: "Requests in flight to the upstream, by route.",
		}, []string{"route"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_requests_rejected_total",
			Help: "Requests refused before routing or authentication, by reason.",
		}, []string{"reason"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.RequestDuration, m.AuthDecisions, m.BloomHits, m.StoreErrors,
		m.JWKSRefresh, m.SyncLag, m.TokensIssued, m.RefreshReuse,
		m.FailOpen, m.FilterEntries, m.Subscribed, m.LastResync, m.Reloads,
		m.UpstreamInflight, m.Rejected,
	)
	return m
}
