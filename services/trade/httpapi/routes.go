// Package httpapi serves the trade service over HTTP: JSON in and out, JWT
// bearer auth, refusals as {"code","message"} with a fitting status.
package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/health"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/services/trade"
)

// Config is what the handler needs besides the orders and the service.
type Config struct {
	Auth *auth.Authenticator
	// Ready reports, per dependency, whether it is reachable.
	Ready map[string]health.Check
	// Instrument, if set, wraps every routed request (metrics by route).
	Instrument func(http.Handler) http.Handler
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	Logger  *slog.Logger
}

// NewHandler returns the trade service's HTTP handler: every route is here.
func NewHandler(orders trade.Orders, svc *trade.Service, cfg Config) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// GET /healthz, /readyz, /metrics and /openapi.json, open to all.
	r := httpserver.NewRouter(httpserver.Ops{
		Ready: cfg.Ready, Instrument: cfg.Instrument, Metrics: cfg.Metrics, OpenAPI: openAPIDoc, Logger: log,
	})

	r.Group(func(r chi.Router) {
		r.Use(cfg.Auth.Middleware)

		r.With(auth.RequireUser).Post("/orders", handleCreateOrder(orders, log))
		r.With(auth.RequireUser).Get("/orders", handleListOrders(orders, log))
		r.Get("/orders/{id}", handleGetOrder(orders, log))
		r.With(auth.RequireUser).Post("/orders/{id}/pay-order", handlePayOrder(svc, log))
		r.With(auth.RequireUser).Post("/orders/{id}/cancel", handleCancel(svc, log))
		r.With(auth.RequireUser).Post("/orders/{id}/refunds", handleRequestRefund(orders, log))
		r.Get("/orders/{id}/refunds", handleListRefunds(orders, log))
		r.With(auth.RequireUser).Post("/orders/{id}/refund", handleRefund(orders, log))
	})
	return r
}
