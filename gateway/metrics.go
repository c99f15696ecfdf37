package gateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis/portcullis/internal/metrics"
)

// routeMetrics are one route's metric children, resolved once instead of
// hashing label values on every request. They outlive reloads (a route
// keeps its series), keyed by route name.
type routeMetrics struct {
	m        *metrics.Metrics
	name     string
	duration prometheus.Observer
	inflight prometheus.Gauge

	mu        sync.RWMutex
	codes     map[int]prometheus.Counter
	decisions map[decisionKey]prometheus.Counter
}

type decisionKey struct{ method, result string }

func newRouteMetrics(m *metrics.Metrics, name string) *routeMetrics {
	return &routeMetrics{
		m:         m,
		name:      name,
		duration:  m.RequestDuration.WithLabelValues(name),
		inflight:  m.UpstreamInflight.WithLabelValues(name),
		codes:     map[int]prometheus.Counter{},
		decisions: map[decisionKey]prometheus.Counter{},
	}
}

// requests is portcullis_requests_total{route, code}.
func (rm *routeMetrics) requests(code int) prometheus.Counter {
	rm.mu.RLock()
	c, ok := rm.codes[code]
	rm.mu.RUnlock()
	if ok {
		return c
	}
	c = rm.m.Requests.WithLabelValues(rm.name, statusText(code))
	rm.mu.Lock()
	rm.codes[code] = c
	rm.mu.Unlock()
	return c
}

// decision is portcullis_auth_decisions_total{route, method, result}.
func (rm *routeMetrics) decision(method, result string) prometheus.Counter {
	k := decisionKey{method, result}
	rm.mu.RLock()
	c, ok := rm.decisions[k]
	rm.mu.RUnlock()
	if ok {
		return c
	}
	c = rm.m.AuthDecisions.WithLabelValues(rm.name, method, result)
	rm.mu.Lock()
	rm.decisions[k] = c
	rm.mu.Unlock()
	return c
}

// routeMetricsSet hands out each route name's routeMetrics.
type routeMetricsSet struct {
	m  *metrics.Metrics
	mu sync.Mutex
	by map[string]*routeMetrics
}

func (s *routeMetricsSet) get(name string) *routeMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rm, ok := s.by[name]; ok {
		return rm
	}
	if s.by == nil {
		s.by = map[string]*routeMetrics{}
	}
	rm := newRouteMetrics(s.m, name)
	s.by[name] = rm
	return rm
}
