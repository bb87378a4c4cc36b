package main

import (
	"net/http"

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

// withMetrics adds GET /metrics, the Prometheus text format of reg, to mux.
// A collector that fails leaves its series out and the rest is served.
func withMetrics(mux *http.ServeMux, reg *prometheus.Registry) *http.ServeMux {
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return mux
}
