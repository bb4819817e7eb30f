package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/trade"
)

func handleCreateOrder(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req trade.NewOrder
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		caller, _ := auth.FromContext(r.Context())
		order, err := orders.CreateOrder(r.Context(), caller.UserID, req)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusCreated, order)
	}
}

func handleGetOrder(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		order, err := orders.Order(r.Context(), id)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		// To any user but its owner, the order does not exist.
		caller, _ := auth.FromContext(r.Context())
		if caller.IsUser() {
			if err := order.CheckOwner(caller.UserID); err != nil {
				jsonhttp.Error(w, r, log, err)
				return
			}
		}
		jsonhttp.Encode(w, http.StatusOK, order)
	}
}

func handleListOrders(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := orderFilter(r)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		list, err := orders.Orders(r.Context(), f)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, list)
	}
}

// orderFilter reads ?status=&limit= for the caller's own orders.
func orderFilter(r *http.Request) (trade.OrderFilter, error) {
	caller, _ := auth.FromContext(r.Context())
	f := trade.OrderFilter{UserID: caller.UserID, Limit: trade.DefaultOrdersPage}
	q := r.URL.Query()
	if s := q.Get("status"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || !trade.OrderStatus(n).Valid() {
			return f, problem.Invalidf("status must be an order status from 1 to 7")
		}
		f.Status = trade.OrderStatus(n)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > trade.MaxOrdersPage {
			return f, problem.Invalidf("limit must be from 1 to " + strconv.Itoa(trade.MaxOrdersPage))
		}
		f.Limit = n
	}
	return f, nil
}

// handlePayOrder gets the caller's unpaid order its pay order at pay: 201
// when created, 200 when it existed.
func handlePayOrder(svc *trade.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		var req trade.PayOrderRequest
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		caller, _ := auth.FromContext(r.Context())
		po, created, err := svc.PayOrder(r.Context(), caller.UserID, id, req)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		jsonhttp.Encode(w, status, po)
	}
}

func handleCancel(svc *trade.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		caller, _ := auth.FromContext(r.Context())
		order, err := svc.Cancel(r.Context(), caller.UserID, id)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, order)
	}
}

// handleRefund requests the refund of what remains of the caller's paid
// order: 202, for pay credits it asynchronously; asking again while it is
// pending answers with the same refund.
func handleRefund(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		requestRefund(w, r, orders, trade.RefundRequest{}, log)
	}
}

// handleRequestRefund requests a refund of part of the caller's paid
// order, once per Idempotency-Key: 202 with the refund.
func handleRequestRefund(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req trade.RefundRequest
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		req.IdempotencyKey = r.Header.Get("Idempotency-Key")
		if err := req.Validate(); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		requestRefund(w, r, orders, req, log)
	}
}

func requestRefund(w http.ResponseWriter, r *http.Request, orders trade.Orders, req trade.RefundRequest, log *slog.Logger) {
	id, err := jsonhttp.PathID(r, "id")
	if err != nil {
		jsonhttp.Error(w, r, log, err)
		return
	}
	caller, _ := auth.FromContext(r.Context())
	refund, err := orders.RequestRefund(r.Context(), caller.UserID, id, req, correlation.ID(r.Context()))
	if err != nil {
		jsonhttp.Error(w, r, log, err)
		return
	}
	jsonhttp.Encode(w, http.StatusAccepted, refund)
}

// handleListRefunds lists an order's refunds, oldest first, to its owner
// or a service (pay verifies with it before crediting).
func handleListRefunds(orders trade.Orders, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		order, err := orders.Order(r.Context(), id)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		caller, _ := auth.FromContext(r.Context())
		if caller.IsUser() {
			if err := order.CheckOwner(caller.UserID); err != nil {
				jsonhttp.Error(w, r, log, err)
				return
			}
		}
		refunds, err := orders.Refunds(r.Context(), id)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if refunds == nil {
			refunds = []trade.Refund{}
		}
		jsonhttp.Encode(w, http.StatusOK, refunds)
	}
}
