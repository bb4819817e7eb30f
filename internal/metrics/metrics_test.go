package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/paytrade/paytrade/internal/testenv"
)

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(Handler(reg, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

func TestHTTPMetricsLabelRequestsByRoutePatternNotPath(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	r := chi.NewRouter()
	r.Use(NewHTTP(reg).Middleware)
	r.Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if chi.URLParam(r, "id") == "404" {
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, path := range []string{"/orders/1", "/orders/2", "/orders/404", "/nowhere"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	got := scrape(t, registry)
	for _, want := range []string{
		`paytrade_http_requests_total{method="GET",route="/orders/{id}",service="test",status="200"} 2`,
		`paytrade_http_requests_total{method="GET",route="/orders/{id}",service="test",status="404"} 1`,
		`paytrade_http_requests_total{method="GET",route="unmatched",service="test",status="404"} 1`,
		`paytrade_http_request_duration_seconds_count{method="GET",route="/orders/{id}",service="test"} 3`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(got, `route="/orders/1"`) {
		t.Error("a raw path became a label value")
	}
}

func TestTallyExportsEveryKindFromTheStartAndAddsToOne(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	add := Tally(reg, "credits_total", "c", "kind", "whole", "part")
	if got := scrape(t, registry); !strings.Contains(got, `paytrade_credits_total{kind="part",service="test"} 0`) ||
		!strings.Contains(got, `paytrade_credits_total{kind="whole",service="test"} 0`) {
		t.Errorf("before anything is told, the scrape lacks a series at 0:\n%s", got)
	}
	add("part", 250)
	add("part", 50)
	got := scrape(t, registry)
	for _, want := range []string{`paytrade_credits_total{kind="part",service="test"} 300`, `paytrade_credits_total{kind="whole",service="test"} 0`} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

func TestSampledGaugesReportNothingWhenTheSampleFails(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	var fail atomic.Bool
	Sampled(reg, time.Second, []prometheus.Opts{{Name: "backlog", Help: "b"}, {Name: "age_seconds", Help: "a"}},
		func(context.Context) ([]float64, error) {
			if fail.Load() {
				return nil, errors.New("database away")
			}
			return []float64{3, 1.5}, nil
		})
	Counter(reg, "things_total", "t", func() int64 { return 7 })
	got := scrape(t, registry)
	for _, want := range []string{`paytrade_backlog{service="test"} 3`, `paytrade_age_seconds{service="test"} 1.5`, `paytrade_things_total{service="test"} 7`} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	fail.Store(true)
	time.Sleep(SamplePeriod) // the last sample answers until then
	got = scrape(t, registry)
	if strings.Contains(got, "paytrade_backlog") || !strings.Contains(got, `paytrade_things_total{service="test"} 7`) {
		t.Errorf("with a failing sample, want no backlog gauge and the other metrics intact:\n%s", got)
	}
}

// A client without a token picks the method and the path of its requests;
// neither may become a series of its own, or every request grows the
// memory of the service and the size of each scrape.
func TestHTTPMetricsStaySmallWhateverMethodsClientsSend(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	r := chi.NewRouter()
	r.Use(NewHTTP(reg).Middleware)
	r.Get("/healthz", func(http.ResponseWriter, *http.Request) {})
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	get(http.MethodGet, "/healthz")
	before := len(scrape(t, registry))
	for i := range 200 {
		get(fmt.Sprintf("X%d%s", i, strings.Repeat("M", 20<<10)), "/healthz")
		get(http.MethodGet, fmt.Sprintf("/healthz/%d%s", i, strings.Repeat("p", 1<<10)))
	}
	got := scrape(t, registry)
	if grew := len(got) - before; grew > 8<<10 {
		t.Fatalf("/metrics grew by %d bytes (from %d) after 200 requests with 20 kB methods and 200 unknown paths; want a few series, not one per request", grew, before)
	}
	for _, want := range []string{
		`paytrade_http_requests_total{method="other",route="unmatched",service="test",status="405"} 200`,
		`paytrade_http_requests_total{method="GET",route="unmatched",service="test",status="404"} 200`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// /metrics is open to all and its sampled gauges count rows: a flood of
// scrapes must cost the database one query a SamplePeriod, not one a scrape.
func TestAScrapeFloodQueriesTheDatabaseOncePerSamplePeriod(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(t.Context(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	registry, reg := NewRegistry("test")
	var queries atomic.Int64
	// A generous timeout: on a loaded machine a sample that runs out of
	// it fails every scrape of its period, which is not what is tested.
	Sampled(reg, 30*time.Second, []prometheus.Opts{{Name: "relations", Help: "r"}}, func(ctx context.Context) ([]float64, error) {
		queries.Add(1)
		var n int64
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_class`).Scan(&n)
		return []float64{float64(n)}, err
	})
	srv := httptest.NewServer(Handler(registry, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 10 {
				res, err := srv.Client().Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if !strings.Contains(string(body), "paytrade_relations{") {
					t.Error("a scrape lacks the sampled gauge")
					return
				}
			}
		})
	}
	wg.Wait()
	periods := int64(time.Since(start)/SamplePeriod) + 1
	if got := queries.Load(); got > periods {
		t.Fatalf("100 scrapes in %d sample period(s) ran %d queries; want at most one a period", periods, got)
	}
	t.Logf("100 scrapes, %d queries", queries.Load())
}

// A traced request's latency carries its trace id as an exemplar, which
// only an OpenMetrics scrape shows: that is what links the dashboard's
// latency panel to the request's trace.
func TestHTTPLatencyOfATracedRequestLinksToItsTrace(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler { // as tracing.Handler puts the span there
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("traced") {
				sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
				r = r.WithContext(trace.ContextWithSpanContext(r.Context(), sc))
			}
			next.ServeHTTP(w, r)
		})
	}, NewHTTP(reg).Middleware)
	r.Get("/traced", func(http.ResponseWriter, *http.Request) {})
	r.Get("/untraced", func(http.ResponseWriter, *http.Request) {})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, path := range []string{"/traced?traced", "/untraced"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}

	metrics := httptest.NewServer(Handler(registry, slog.New(slog.DiscardHandler)))
	defer metrics.Close()
	req, _ := http.NewRequest(http.MethodGet, metrics.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var traced, untraced []string
	for line := range strings.Lines(string(body)) {
		switch {
		case !strings.HasPrefix(line, "paytrade_http_request_duration_seconds_bucket"):
		case strings.Contains(line, `route="/traced"`):
			traced = append(traced, line)
		case strings.Contains(line, `route="/untraced"`):
			untraced = append(untraced, line)
		}
	}
	want := `# {trace_id="` + traceID.String() + `"}`
	if !slices.ContainsFunc(traced, func(l string) bool { return strings.Contains(l, want) }) {
		t.Errorf("no bucket of the traced request has the exemplar %s:\n%s", want, strings.Join(traced, ""))
	}
	if slices.ContainsFunc(untraced, func(l string) bool { return strings.Contains(l, "trace_id") }) {
		t.Errorf("the untraced request has an exemplar:\n%s", strings.Join(untraced, ""))
	}
}
