// Package metrics exposes both services' Prometheus metrics: HTTP requests
// by route, status and latency, and counters and gauges read at scrape time
// from the counters the components already keep.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/paytrade/paytrade/internal/httpstatus"
	"github.com/paytrade/paytrade/internal/memo"
)

// Namespace prefixes every metric of ours.
const Namespace = "paytrade"

// NewRegistry returns a registry with the Go runtime and process collectors
// and every metric labelled with service.
func NewRegistry(service string) (*prometheus.Registry, prometheus.Registerer) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, prometheus.WrapRegistererWith(prometheus.Labels{"service": service}, reg)
}

// Handler serves the registry's metrics in the Prometheus text format, or
// in OpenMetrics to a scraper that asks for it: only that format carries
// the exemplars that link a latency to the trace of a request.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// HTTP counts requests and times them by route pattern, method and status.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP metrics with reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Middleware records every request, a traced one with its trace id as the
// exemplar of its latency. Every label comes from a closed set,
// whatever a client sends, so no request can grow the series a scrape
// holds: the route is chi's pattern ("/orders/{id}"), never the raw path,
// and "unmatched" for what no route took; the method is one of HTTP's own
// or "other"; the status is the code the handler wrote.
func (m *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := httpstatus.NewWriter(w)
		next.ServeHTTP(sw, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(route, method, strconv.Itoa(sw.Status())).Inc()
		observe(r.Context(), m.duration.WithLabelValues(route, method), time.Since(start).Seconds())
	})
}

// observe adds v to o, with the trace of ctx's span as its exemplar when
// the span is sampled: the dashboard then links a latency to a trace.
func observe(ctx context.Context, o prometheus.Observer, v float64) {
	sc := trace.SpanContextFromContext(ctx)
	if e, ok := o.(prometheus.ExemplarObserver); ok && sc.IsSampled() {
		e.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
		return
	}
	o.Observe(v)
}

// methodLabel is method if HTTP defines it, and "other" for any other
// token a client may send (Go's server takes any).
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// Counter registers a counter whose value is read from count at scrape
// time: for components that keep their own atomic counters.
func Counter(reg prometheus.Registerer, name, help string, count func() int64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help},
		func() float64 { return float64(count()) }))
}

// Tally registers a counter with one label whose series are the given
// values, each exported from the start (at 0), and returns the function
// that adds n to the series of one of them: for what a component is told
// of as it happens, by kind.
func Tally(reg prometheus.Registerer, name, help, label string, values ...string) func(value string, n int64) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	reg.MustRegister(c)
	return func(value string, n int64) { c.WithLabelValues(value).Add(float64(n)) }
}

// Latency registers a latency histogram in seconds and returns the
// function that records one duration in it.
func Latency(reg prometheus.Registerer, name, help string) func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: name, Help: help,
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// SamplePeriod is how long one sample of a Sampled collector answers every
// scrape: /metrics is open to all, and a flood of it must cost the
// database one query a period, not one a scrape.
const SamplePeriod = time.Second

// Sampled registers gauges that one query reads together at scrape time,
// such as the outbox's backlog; sample gets at most timeout, runs at most
// once per SamplePeriod and at most once at a time, and scrapes in between
// get its last values. A failed sample reports nothing for those scrapes
// rather than a wrong value.
func Sampled(reg prometheus.Registerer, timeout time.Duration, gauges []prometheus.Opts, sample func(ctx context.Context) ([]float64, error)) {
	descs := make([]*prometheus.Desc, len(gauges))
	for i, g := range gauges {
		descs[i] = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", g.Name), g.Help, nil, nil)
	}
	reg.MustRegister(&sampled{descs: descs, sample: memo.New(SamplePeriod, func(ctx context.Context) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return sample(ctx)
	})})
}

type sampled struct {
	descs  []*prometheus.Desc
	sample *memo.Func[[]float64]
}

func (s *sampled) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *sampled) Collect(ch chan<- prometheus.Metric) {
	values, err := s.sample.Get(context.Background())
	if err != nil {
		for _, d := range s.descs {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	for i, d := range s.descs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, values[i])
	}
}
