package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/jsonhttp"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
)

func handleCreateAccount(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req pay.NewAccount
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		account, err := svc.CreateAccount(r.Context(), req)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusCreated, account)
	}
}

func handleDeposit(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		userID, err := jsonhttp.PathID(r, "userId")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		var req struct {
			Amount int64 `json:"amount"`
		}
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		result, err := svc.Deposit(r.Context(), pay.Deposit{
			UserID: userID, Amount: req.Amount, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		})
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if result.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		jsonhttp.Encode(w, http.StatusOK, result.Account)
	}
}

func handleMyAccount(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		caller, _ := auth.FromContext(r.Context())
		account, err := svc.Account(r.Context(), caller.UserID)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, account)
	}
}

func handleApply(svc pay.Service, trade pay.Trade, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req pay.Apply
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if trade != nil {
			if err := req.VerifyIssued(r.Context(), trade); err != nil {
				tradeError(w, r, log, err)
				return
			}
		}
		order, created, err := svc.ApplyPayOrder(r.Context(), req)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		jsonhttp.Encode(w, status, order)
	}
}

// payRequest is the body of a payment: the payment password.
type payRequest struct {
	Password string `json:"pw"`
}

func handlePay(svc pay.Service, idempotencySecret []byte, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		var req payRequest
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		caller, _ := auth.FromContext(r.Context())
		p := pay.Payment{
			PayOrderID:     id,
			UserID:         caller.UserID,
			Password:       req.Password,
			IdempotencyKey: r.Header.Get("Idempotency-Key"),
			CorrelationID:  correlation.ID(r.Context()),
		}
		if p.IdempotencyKey != "" {
			p.Fingerprint = fingerprint(idempotencySecret, "POST /pay-orders/"+strconv.FormatInt(id, 10))
		}
		result, err := svc.Pay(r.Context(), p)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if result.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		} else {
			log.InfoContext(r.Context(), "payment committed", "pay_order_id", result.PayOrder.ID,
				"biz_order_no", result.PayOrder.BizOrderNo, "user_id", p.UserID, "amount", result.PayOrder.Amount)
		}
		jsonhttp.Encode(w, http.StatusOK, result.PayOrder)
	}
}

// fingerprint identifies a request for its idempotency key. It leaves the
// payment password out: the password is checked before any key is looked
// at, so a key cannot tell a right password from a wrong one.
func fingerprint(secret []byte, request string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(request))
	return mac.Sum(nil)
}

func handleGetPayOrder(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := jsonhttp.PathID(r, "id")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		order, err := svc.PayOrder(r.Context(), id)
		writeOwnPayOrder(w, r, log, order, err)
	}
}

func handleGetPayOrderByBiz(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bizOrderNo, err := jsonhttp.PathID(r, "bizOrderNo")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		order, err := svc.PayOrderByBizOrderNo(r.Context(), bizOrderNo)
		writeOwnPayOrder(w, r, log, order, err)
	}
}

// maxBizOrderNos bounds one batch read: trade's fallback asks a page of its
// unpaid orders at a time.
const maxBizOrderNos = 500

// handleQueryPayOrdersByBiz answers the pay orders of up to maxBizOrderNos
// business orders in one read, those that have one: trade's fallback asks
// about its unpaid orders a page at a time, not one call per order.
func handleQueryPayOrdersByBiz(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			BizOrderNos []int64 `json:"bizOrderNos"`
		}
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if n := len(req.BizOrderNos); n == 0 || n > maxBizOrderNos {
			jsonhttp.Error(w, r, log, problem.Invalidf("bizOrderNos must list 1 to "+strconv.Itoa(maxBizOrderNos)+" business orders"))
			return
		}
		for _, biz := range req.BizOrderNos {
			if biz <= 0 {
				jsonhttp.Error(w, r, log, problem.Invalidf("bizOrderNos must be positive integers"))
				return
			}
		}
		orders, err := svc.PayOrdersByBizOrderNos(r.Context(), req.BizOrderNos)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, struct {
			PayOrders []pay.PayOrder `json:"payOrders"`
		}{append([]pay.PayOrder{}, orders...)})
	}
}

// writeOwnPayOrder answers with the pay order if the caller may see it: its
// owner, a service or an operator. To another user it does not exist.
func writeOwnPayOrder(w http.ResponseWriter, r *http.Request, log *slog.Logger, order pay.PayOrder, err error) {
	if err != nil {
		jsonhttp.Error(w, r, log, err)
		return
	}
	caller, _ := auth.FromContext(r.Context())
	if caller.IsUser() && caller.UserID != order.BizUserID {
		jsonhttp.Error(w, r, log, pay.ErrPayOrderNotFound)
		return
	}
	jsonhttp.Encode(w, http.StatusOK, order)
}

func handleClose(svc pay.Service, trade pay.Trade, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bizOrderNo, err := jsonhttp.PathID(r, "bizOrderNo")
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if trade != nil {
			if err := pay.VerifyIssued(r.Context(), trade, bizOrderNo); err != nil {
				tradeError(w, r, log, err)
				return
			}
		}
		closure, err := svc.ClosePayOrder(r.Context(), bizOrderNo)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if closure.PayOrder != nil {
			jsonhttp.Encode(w, http.StatusOK, closure.PayOrder)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, struct {
			BizOrderNo int64              `json:"bizOrderNo"`
			Status     pay.PayOrderStatus `json:"status"`
		}{closure.BizOrderNo, pay.Closed})
	}
}

// handleGetRefund answers what pay decided about a refund request: trade's
// fallback asks it about refunds whose refund.success has not come.
func handleGetRefund(svc pay.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(chi.URLParam(r, "refundId"))
		if err != nil {
			jsonhttp.Error(w, r, log, problem.Invalidf("refundId must be a UUID"))
			return
		}
		decision, err := svc.RefundDecision(r.Context(), id)
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, decision)
	}
}

// handleDecideRefund decides a refund request now: trade's fallback sends
// it for a refund whose refund.requested has not reached pay, so a refund
// arrives within a cron period even while the broker is away. A token
// proves who sent the request, not that trade recorded the refund: pay
// credits only what trade lists as requested, for that amount.
func handleDecideRefund(svc pay.Service, trade pay.Trade, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req pay.RefundRequest
		if err := jsonhttp.Decode(w, r, &req); err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		if trade != nil {
			if err := req.VerifyRequested(r.Context(), trade); err != nil {
				tradeError(w, r, log, err)
				return
			}
		}
		decision, err := svc.DecideRefund(r.Context(), req, correlation.ID(r.Context()))
		if err != nil {
			jsonhttp.Error(w, r, log, err)
			return
		}
		jsonhttp.Encode(w, http.StatusOK, decision)
	}
}

// tradeError answers a request pay could not verify with trade: a refusal
// as it is, trade unreachable as 503 with Retry-After (pay acts on nothing
// it is in doubt about), anything else as unexpected.
func tradeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, pay.ErrTradeUnavailable) {
		log.WarnContext(r.Context(), "trade unavailable: request refused", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	jsonhttp.Error(w, r, log, err)
}
