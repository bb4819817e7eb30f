package httpserver

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/health"
	"github.com/paytrade/paytrade/internal/openapi"
	"github.com/paytrade/paytrade/internal/tracing"
)

// Ops is what every service serves beside its own routes.
type Ops struct {
	// Ready reports, per dependency, whether it is reachable.
	Ready map[string]health.Check
	// Instrument, if set, wraps every routed request (metrics by route).
	Instrument func(http.Handler) http.Handler
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// OpenAPI is the service's OpenAPI document, served at /openapi.json.
	OpenAPI []byte
	Logger  *slog.Logger // [discard]
}

// NewRouter returns a router with the middleware every service runs
// (panic recovery, correlation id, tracing, instrumentation) and the operational
// routes, open to all: GET /healthz, /readyz, /metrics, /openapi.json and
// Swagger UI on that document at /docs; /readyz and /metrics through one
// gate that spaces them out (opsRate).
// The service adds its own routes to it.
func NewRouter(o Ops) chi.Router {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	// A refusal of the caller or of its timing (a token, a busy or locked
	// wallet, the ops gate) is answered at once, then its connection left
	// unread a while; outermost, so that the pause is not counted as the
	// request's time in its trace or its metrics.
	r.Use(PauseAfterRefusal, middleware.Recoverer, correlation.Middleware, tracing.Handler)
	if o.Instrument != nil {
		r.Use(o.Instrument)
	}
	metrics := o.Metrics
	if metrics == nil {
		metrics = http.NotFoundHandler()
	}
	r.Get("/healthz", health.Live())
	costly := r.With(newGate(opsRate, opsMaxWait).middleware(log))
	costly.Get("/readyz", health.Ready(o.Ready, log))
	costly.Method(http.MethodGet, "/metrics", metrics)
	r.Get("/openapi.json", openapi.Handler(o.OpenAPI))
	ui := openapi.UI(o.OpenAPI)
	r.Method(http.MethodGet, openapi.UIPath, ui)
	r.Method(http.MethodGet, openapi.UIPath+"/*", ui)
	return r
}
