package trade

import (
	"errors"
	"fmt"
	"time"

	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/internal/strictjson"
)

// Limits on what trade accepts.
const (
	// MaxTotalFee keeps an order's total far from int64 overflow in sums.
	MaxTotalFee = 1_000_000_000_00 // one billion, in cents
	// MaxOrdersPage bounds one listing of orders.
	MaxOrdersPage = 100
	// DefaultOrdersPage is a listing's size when none is asked for.
	DefaultOrdersPage = 20
	// MaxEventBytes bounds a pay.success body; real ones are ~120 bytes.
	MaxEventBytes = 64 << 10
)

// Validate checks a request to create an order.
func (o NewOrder) Validate() error {
	switch {
	case o.TotalFee <= 0:
		return problem.Invalidf("totalFee must be a positive number of cents")
	case o.TotalFee > MaxTotalFee:
		return problem.Invalidf(fmt.Sprintf("totalFee must be at most %d cents", int64(MaxTotalFee)))
	case o.PaymentType < PaymentAlipay || o.PaymentType > PaymentBalance:
		return problem.Invalidf("paymentType must be 1 (alipay), 2 (wechat) or 3 (balance)")
	}
	return nil
}

// Valid reports whether s is one of the course's order states.
func (s OrderStatus) Valid() bool {
	return s >= Unpaid && s <= Refunded
}

// DecodePaySuccess reads a pay.success body strictly: one JSON object with
// every field present and in range. Unknown fields are allowed, so pay can
// add some without breaking trade. Any error means the message can never be
// processed, however often it is retried.
func DecodePaySuccess(body []byte) (Payment, error) {
	var raw struct {
		BizOrderNo *int64     `json:"bizOrderNo"`
		PayOrderID *int64     `json:"payOrderId"`
		UserID     *int64     `json:"userId"`
		Amount     *int64     `json:"amount"`
		PaidAt     *time.Time `json:"paidAt"`
	}
	if err := strictjson.Decode(body, MaxEventBytes, &raw); err != nil {
		return Payment{}, fmt.Errorf("decode pay.success: %w", err)
	}
	if err := strictjson.Require(map[string]bool{
		"bizOrderNo": raw.BizOrderNo != nil, "payOrderId": raw.PayOrderID != nil,
		"userId": raw.UserID != nil, "amount": raw.Amount != nil, "paidAt": raw.PaidAt != nil,
	}); err != nil {
		return Payment{}, fmt.Errorf("pay.success %w", err)
	}
	p := Payment{BizOrderNo: *raw.BizOrderNo, PayOrderID: *raw.PayOrderID, UserID: *raw.UserID, Amount: *raw.Amount, PaidAt: *raw.PaidAt}
	switch {
	case p.BizOrderNo <= 0:
		return Payment{}, fmt.Errorf("pay.success bizOrderNo %d is not positive", p.BizOrderNo)
	case p.PayOrderID <= 0:
		return Payment{}, fmt.Errorf("pay.success payOrderId %d is not positive", p.PayOrderID)
	case p.UserID <= 0:
		return Payment{}, fmt.Errorf("pay.success userId %d is not positive", p.UserID)
	case p.Amount <= 0:
		return Payment{}, fmt.Errorf("pay.success amount %d is not positive", p.Amount)
	case p.PaidAt.IsZero():
		return Payment{}, errors.New("pay.success paidAt is zero")
	}
	return p, nil
}

// PaymentRejection says why the successful payment p cannot pay o: a
// discrepancy reason, or duplicate when o was paid before (an order has one
// pay order, so by p) and p has had its effect already. Both empty: p pays
// o. The payment's conditional UPDATE holds the same rule; this says why
// it matched nothing.
func (o Order) PaymentRejection(p Payment) (reason string, duplicate bool) {
	switch {
	case o.UserID != p.UserID:
		return ReasonUserMismatch, false
	case o.TotalFee != p.Amount:
		return ReasonAmountMismatch, false
	case o.PayTime != nil:
		// Paid before, and maybe moved on since (shipped, refunded).
		return "", true
	case o.Status != Unpaid:
		return ReasonOrderMovedOn, false
	}
	return "", false
}

// String names the status as docs/design.md does.
func (s OrderStatus) String() string {
	switch s {
	case Unpaid:
		return "unpaid"
	case Paid:
		return "paid"
	case Shipped:
		return "shipped"
	case Received:
		return "received"
	case Cancelled:
		return "cancelled"
	case Finished:
		return "finished"
	case Refunded:
		return "refunded"
	}
	return "unknown"
}
