// Package httpapi serves the pay service over HTTP: JSON in and out, JWT
// bearer auth, refusals as {"code","message"} with a fitting status.
package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/health"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/services/pay"
)

// Config is what the handler needs besides the service.
type Config struct {
	Auth *auth.Authenticator
	// IdempotencySecret keys the HMAC that fingerprints a payment request, so
	// the stored fingerprint does not reveal the password it covers.
	IdempotencySecret []byte
	// Ready reports, per dependency, whether it is reachable.
	Ready map[string]health.Check
	// Instrument, if set, wraps every routed request (metrics by route).
	Instrument func(http.Handler) http.Handler
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// Trade is asked before a pay order is applied for or closed, or a
	// refund credited, on a service's or operator's word: pay acts only for
	// orders trade issued and refunds trade requested. The binary always
	// sets it; nil takes the word as it is, for tests of pay alone.
	Trade  pay.Trade
	Logger *slog.Logger
}

// NewHandler returns the pay service's HTTP handler: every route is here.
func NewHandler(svc pay.Service, cfg Config) http.Handler {
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

		// Only an operator creates money; trade's service token cannot.
		operator := auth.Require(auth.RoleOperator)
		r.With(operator).Post("/accounts", handleCreateAccount(svc, log))
		r.With(operator).Post("/accounts/{userId}/deposits", handleDeposit(svc, log))
		r.With(auth.RequireUser).Get("/accounts/me", handleMyAccount(svc, log))

		// Trade applies for its orders' owners and totals; a user applying
		// could block or underpay anyone's next order.
		r.With(auth.Require(auth.RoleService, auth.RoleOperator)).Post("/pay-orders", handleApply(svc, cfg.Trade, log))
		r.With(auth.RequireUser).Post("/pay-orders/{id}", handlePay(svc, cfg.IdempotencySecret, log))
		r.Get("/pay-orders/{id}", handleGetPayOrder(svc, log))
		r.Get("/pay-orders/biz/{bizOrderNo}", handleGetPayOrderByBiz(svc, log))
		r.With(auth.Require(auth.RoleService, auth.RoleOperator)).Post("/pay-orders/biz/query", handleQueryPayOrdersByBiz(svc, log))
		r.With(auth.Require(auth.RoleService, auth.RoleOperator)).Post("/pay-orders/biz/{bizOrderNo}/close", handleClose(svc, cfg.Trade, log))
		r.With(auth.Require(auth.RoleService, auth.RoleOperator)).Post("/refunds", handleDecideRefund(svc, cfg.Trade, log))
		r.With(auth.Require(auth.RoleService, auth.RoleOperator)).Get("/refunds/{refundId}", handleGetRefund(svc, log))
	})
	return r
}
