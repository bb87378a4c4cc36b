package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetricsRegistry returns the registry /metrics serves, holding the Go
// runtime's and the process's collectors; the broker adds its own
// (broker.Config.Metrics).
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Bounds of /metrics: a scrape costs an etcd read and, on a group
// coordinator, a ListOffsets to each other leader, so concurrent scrapes
// are few (more get 503) and each is cut off after metricsScrapeTimeout.
const (
	metricsMaxInFlight   = 3
	metricsScrapeTimeout = 10 * time.Second
)

// withMetrics adds GET /metrics, the Prometheus text format of reg, to mux.
// A collector that fails leaves its series out and the rest is served.
func withMetrics(mux *http.ServeMux, reg *prometheus.Registry) *http.ServeMux {
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsMaxInFlight,
		Timeout:             metricsScrapeTimeout,
	}))
	return mux
}
