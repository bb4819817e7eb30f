package pay

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/problem"
)

// A service token says who sends a request, not that trade means it: pay
// asks trade before it applies for, closes or credits an order's payment.
var (
	ErrOrderNotIssued     = problem.New(problem.Forbidden, "order_not_issued", "trade has issued no order of this number")
	ErrOrderMismatch      = problem.New(problem.Forbidden, "order_mismatch", "the order at trade has another owner or total")
	ErrRefundNotRequested = problem.New(problem.Forbidden, "refund_not_requested", "trade has not requested this refund of this amount")
	// ErrTradeUnavailable is pay in doubt: it acts on nothing it could not
	// verify, and asks the caller to come back.
	ErrTradeUnavailable = problem.New(problem.Unavailable, "trade_unavailable", "the trade service did not answer; try again").
				WithRetryAfter(TradeRetryAfter)
)

// TradeRetryAfter is how long a caller refused for want of trade's answer
// is asked to wait.
const TradeRetryAfter = 5 * time.Second

// IssuedOrder is an order as trade shows it to pay.
type IssuedOrder struct {
	ID       int64
	UserID   int64
	TotalFee int64
}

// RequestedRefund is a refund as trade lists it for an order.
type RequestedRefund struct {
	ID      uuid.UUID
	OrderID int64
	Amount  int64
	Reason  string
	// Requested is whether trade still waits for pay's decision: the only
	// state in which a credit can be what trade asked for.
	Requested bool
}

// Trade is what pay asks the trade service before acting on a service's
// word. found is false when trade has no such order; an error is doubt
// (trade unreachable or answering nonsense), never "no".
type Trade interface {
	Order(ctx context.Context, bizOrderNo int64) (order IssuedOrder, found bool, err error)
	Refunds(ctx context.Context, bizOrderNo int64) (refunds []RequestedRefund, found bool, err error)
}

// CheckIssued says why trade's answer does not allow a to be applied for,
// or nil: trade issued the order, for a's user and exact amount.
func (a Apply) CheckIssued(o IssuedOrder, found bool) error {
	switch {
	case !found || o.ID != a.BizOrderNo:
		return ErrOrderNotIssued
	case o.UserID != a.BizUserID || o.TotalFee != a.Amount:
		return ErrOrderMismatch
	}
	return nil
}

// CheckIssued says why bizOrderNo may not be closed given trade's answer,
// or nil: trade issued it. Closing an order number trade never issued
// would make that order unpayable once trade issues it.
func CheckIssued(bizOrderNo int64, o IssuedOrder, found bool) error {
	if !found || o.ID != bizOrderNo {
		return ErrOrderNotIssued
	}
	return nil
}

// CheckRequested says why req may not be credited given the refunds trade
// lists for its order, or nil: trade lists req's refund id, for req's order,
// amount and reason, and still waits for pay's decision about it.
func (req RefundRequest) CheckRequested(listed []RequestedRefund, found bool) error {
	if !found {
		return ErrOrderNotIssued
	}
	for _, r := range listed {
		if r.ID != req.RefundID {
			continue
		}
		if r.OrderID == req.BizOrderNo && r.Amount == req.Amount && r.Reason == req.Reason && r.Requested {
			return nil
		}
		return ErrRefundNotRequested
	}
	return ErrRefundNotRequested
}

// VerifyIssued asks t about a's order, then CheckIssued.
func (a Apply) VerifyIssued(ctx context.Context, t Trade) error {
	o, found, err := t.Order(ctx, a.BizOrderNo)
	if err != nil {
		return err
	}
	return a.CheckIssued(o, found)
}

// VerifyIssued asks t about bizOrderNo, then CheckIssued.
func VerifyIssued(ctx context.Context, t Trade, bizOrderNo int64) error {
	o, found, err := t.Order(ctx, bizOrderNo)
	if err != nil {
		return err
	}
	return CheckIssued(bizOrderNo, o, found)
}

// VerifyRequested asks t about the refunds of req's order, then CheckRequested.
func (req RefundRequest) VerifyRequested(ctx context.Context, t Trade) error {
	listed, found, err := t.Refunds(ctx, req.BizOrderNo)
	if err != nil {
		return err
	}
	return req.CheckRequested(listed, found)
}
