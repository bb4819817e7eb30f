package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
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

func TestSampledGaugesReportNothingWhenTheSampleFails(t *testing.T) {
	t.Parallel()
	registry, reg := NewRegistry("test")
	fail := false
	Sampled(reg, time.Second, []prometheus.Opts{{Name: "backlog", Help: "b"}, {Name: "age_seconds", Help: "a"}},
		func(context.Context) ([]float64, error) {
			if fail {
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
	fail = true
	got = scrape(t, registry)
	if strings.Contains(got, "paytrade_backlog") || !strings.Contains(got, `paytrade_things_total{service="test"} 7`) {
		t.Errorf("with a failing sample, want no backlog gauge and the other metrics intact:\n%s", got)
	}
}
