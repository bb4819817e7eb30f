// Package trade is the order domain: orders, and keeping each order in step
// with its payment at pay. It holds the types, the rules and the refusals;
// package postgres stores them, httpapi serves them, amqp consumes
// pay.success events and cron runs the fallback and the order timeout.
package trade

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// OrderStatus is an order's state, with the course's codes.
type OrderStatus int

// The order states. Unpaid moves on a payment or a cancellation; Paid
// stays Paid while it is refunded in part and moves to Refunded when its
// credited refunds reach its total; the others change by fulfilment, which
// this project does not model.
const (
	Unpaid    OrderStatus = 1 // created, waiting for payment
	Paid      OrderStatus = 2 // paid, possibly refunded in part (RefundedAmount > 0)
	Shipped   OrderStatus = 3 // shipped
	Received  OrderStatus = 4 // received by the buyer
	Cancelled OrderStatus = 5 // cancelled or closed: can never be paid
	Finished  OrderStatus = 6 // finished
	Refunded  OrderStatus = 7 // paid, then refunded in full: can never be paid again
)

// Payment types, with the course's codes.
const (
	PaymentAlipay  = 1
	PaymentWechat  = 2
	PaymentBalance = 3
)

// Order is what a user buys. Amounts are integer cents.
type Order struct {
	ID          int64       `json:"id"`
	UserID      int64       `json:"userId"`
	TotalFee    int64       `json:"totalFee"`
	PaymentType int         `json:"paymentType"`
	Status      OrderStatus `json:"status"`
	CreateTime  time.Time   `json:"createTime"`
	PayTime     *time.Time  `json:"payTime"`
	CloseTime   *time.Time  `json:"closeTime"`
	// RefundedAmount is what pay has credited back of the order's refunds.
	RefundedAmount int64 `json:"refundedAmount"`
	// RefundClaimed is what its refunds requested and not rejected add up
	// to: what can no longer be asked for. Never above TotalFee.
	RefundClaimed int64 `json:"-"`
	// RefundStatus is the latest refund's; nil until one is requested.
	RefundStatus *RefundStatus `json:"refundStatus"`
	// RefundTime is when the latest credited refund was credited.
	RefundTime *time.Time `json:"refundTime"`
}

// NewOrder is a user's request to create an order.
type NewOrder struct {
	TotalFee    int64 `json:"totalFee"`
	PaymentType int   `json:"paymentType"`
}

// PayOrderRequest is an order owner's request for the order's pay order:
// how they will pay. What and for whom come from the order, never from them.
type PayOrderRequest struct {
	PayChannelCode string `json:"payChannelCode"`
	PayType        int    `json:"payType"`
}

// PayApplication is what trade asks pay for: the pay order of one of its
// unpaid orders, for the order's owner and exact total.
type PayApplication struct {
	BizOrderNo     int64
	BizUserID      int64
	Amount         int64
	PayChannelCode string
	PayType        int
	OrderInfo      string
}

// PayOrder is pay's pay order of an order, as trade passes it on.
type PayOrder struct {
	ID             int64      `json:"id"`
	BizOrderNo     int64      `json:"bizOrderNo"`
	BizUserID      int64      `json:"bizUserId"`
	Amount         int64      `json:"amount"`
	Status         int        `json:"status"`
	PayChannelCode string     `json:"payChannelCode"`
	PayType        int        `json:"payType"`
	PaySuccessTime *time.Time `json:"paySuccessTime"`
	RefundedAmount int64      `json:"refundedAmount"`
	RefundTime     *time.Time `json:"refundTime"`
	PayOverTime    time.Time  `json:"payOverTime"`
	CreateTime     time.Time  `json:"createTime"`
}

// OrderFilter selects a user's orders, newest first.
type OrderFilter struct {
	UserID int64
	Status OrderStatus // 0: any
	Limit  int
}

// Payment is a successful payment as pay reports it, by a pay.success event
// or by answering the fallback's question.
type Payment struct {
	BizOrderNo int64     `json:"bizOrderNo"`
	PayOrderID int64     `json:"payOrderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"`
	PaidAt     time.Time `json:"paidAt"`
}

// PaySuccessType is the message type of a pay.success event.
const PaySuccessType = "pay.success"

// Outcome is what applying a payment did.
type Outcome int

// The outcomes of applying a payment.
const (
	Applied     Outcome = iota + 1 // the order went from unpaid to paid
	Duplicate                      // seen before: this message, or this payment on an already paid order
	Discrepancy                    // the payment cannot pay the order; recorded for a human
)

// String returns the outcome's name, for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Discrepancy:
		return "discrepancy"
	}
	return "unknown"
}

// The reasons a payment is recorded as a discrepancy instead of paying its order.
const (
	ReasonOrderNotFound  = "order_not_found"  // no order with the payment's bizOrderNo
	ReasonUserMismatch   = "user_mismatch"    // paid by someone other than the order's owner
	ReasonAmountMismatch = "amount_mismatch"  // paid another amount than the order's total
	ReasonOrderMovedOn   = "order_not_unpaid" // cancelled, shipped…: no longer payable
)

// PaymentSource says how trade learned of a payment.
type PaymentSource string

// The sources of a payment.
const (
	FromEvent PaymentSource = "event" // a pay.success message
	FromPoll  PaymentSource = "poll"  // the fallback asked pay
)

// Orders is what the trade service stores, whatever stores it.
type Orders interface {
	CreateOrder(ctx context.Context, userID int64, req NewOrder) (Order, error)
	Order(ctx context.Context, id int64) (Order, error)
	Orders(ctx context.Context, f OrderFilter) ([]Order, error)
	// ApplyPayment marks the payment's order paid if it is unpaid and the
	// payment is by its owner for exactly its total, in one transaction
	// that first records messageID (if not empty) so a message is applied
	// at most once. A payment that cannot pay its order is recorded as a
	// discrepancy, never dropped.
	ApplyPayment(ctx context.Context, messageID string, p Payment, source PaymentSource) (Outcome, error)
	// CancelUnpaid moves the order from unpaid to cancelled and returns it
	// as it is afterwards, cancelled or not.
	CancelUnpaid(ctx context.Context, id int64) (Order, error)
	// UnpaidOrders returns up to limit orders unpaid for longer than
	// olderThan by the database's clock (the replicas' clocks may
	// disagree), oldest first, that come after the order after (the last
	// of the previous page; zero for the first page).
	UnpaidOrders(ctx context.Context, olderThan time.Duration, after Order, limit int) ([]Order, error)
	// RequestRefund refunds part of the user's paid order, or what remains
	// of it: the refund and its refund.requested event are written in one
	// transaction. The same request asked again returns the same refund.
	RequestRefund(ctx context.Context, userID, orderID int64, req RefundRequest, correlationID string) (Refund, error)
	// Refunds returns the order's refunds, oldest first.
	Refunds(ctx context.Context, orderID int64) ([]Refund, error)
	// ApplyRefundCredit marks the credited refund refunded and adds it to
	// its order's refunded amount, in one transaction that first records
	// messageID (if not empty) so a message is applied at most once. An
	// order moves only when its own refund row moves.
	ApplyRefundCredit(ctx context.Context, messageID string, c RefundCredit) (Outcome, error)
	// RejectRefund records that pay refused a requested refund, and why,
	// and gives its amount back to what the order's owner can ask for.
	RejectRefund(ctx context.Context, id uuid.UUID, rejection string) (bool, error)
	// RequestedRefunds returns up to limit refunds still waiting for pay,
	// requested longer than olderThan ago by the database's clock, oldest
	// first, after the refund after.
	RequestedRefunds(ctx context.Context, olderThan time.Duration, after Refund, limit int) ([]Refund, error)
}

// PayGateway is what trade asks of the pay service.
type PayGateway interface {
	// ApplyPayment returns the order's pay order at pay, created unless it
	// existed; it returns ErrOrderNotUnpaid if pay has closed the order's
	// payment.
	ApplyPayment(ctx context.Context, a PayApplication) (po PayOrder, created bool, err error)
	// PaymentFor returns the successful payment of bizOrderNo, or
	// found=false if it has not been paid (or has no pay order).
	PaymentFor(ctx context.Context, bizOrderNo int64) (p Payment, found bool, err error)
	// PaymentsFor returns the successful payments of the business orders
	// that have one, by business order number, in one call.
	PaymentsFor(ctx context.Context, bizOrderNos []int64) (map[int64]Payment, error)
	// ClosePayment makes bizOrderNo unpayable at pay from now on. It
	// returns ErrPaidAtPay if it has been paid already.
	ClosePayment(ctx context.Context, bizOrderNo int64) error
	// RefundVerdict says what pay decided about the refund id, if anything.
	RefundVerdict(ctx context.Context, id uuid.UUID) (RefundVerdict, error)
	// DecideRefund has pay decide the refund now, as its refund.requested
	// would (once per refund id), and returns the verdict.
	DecideRefund(ctx context.Context, r Refund) (RefundVerdict, error)
}
