// Package pay is the payment domain: wallets, pay orders and paying a pay
// order from a wallet's balance. It holds the types, the rules and the
// refusals; package postgres stores them and httpapi serves them.
package pay

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// PayOrderStatus is a pay order's state, with the course's codes.
type PayOrderStatus int

// The pay order states. Waiting moves to Closed or to Paid; Paid stays
// Paid while it is refunded in part and moves to Refunded when its credits
// reach what was paid.
const (
	NotCommitted PayOrderStatus = 0 // applied for but not submitted (unused by the balance channel)
	Waiting      PayOrderStatus = 1 // waiting for payment
	Closed       PayOrderStatus = 2 // closed or timed out: can never be paid
	Paid         PayOrderStatus = 3 // paid, possibly refunded in part (RefundedAmount > 0)
	Refunded     PayOrderStatus = 4 // paid, then credited back in full: final
)

// ChannelBalance is the one pay channel: the user's wallet.
const ChannelBalance = "balance"

// PayTypeBalance is the course's pay type code for paying by balance.
const PayTypeBalance = 5

// PayWindow is how long a pay order can be paid after it is applied for,
// as in the course (payOverTime = now + 120 minutes).
const PayWindow = 120 * time.Minute

// Account is a user's wallet. Amounts are integer cents.
type Account struct {
	UserID  int64 `json:"userId"`
	Balance int64 `json:"balance"`
}

// PayOrder is a request to pay for one business order (bizOrderNo) once.
type PayOrder struct {
	ID             int64          `json:"id"`
	BizOrderNo     int64          `json:"bizOrderNo"`
	BizUserID      int64          `json:"bizUserId"`
	Amount         int64          `json:"amount"`
	Status         PayOrderStatus `json:"status"`
	PayChannelCode string         `json:"payChannelCode"`
	PayType        int            `json:"payType"`
	OrderInfo      string         `json:"-"`
	PaySuccessTime *time.Time     `json:"paySuccessTime"`
	// RefundedAmount is what has been credited back so far; never above Amount.
	RefundedAmount int64 `json:"refundedAmount"`
	// RefundTime is when the latest credit was made; nil before the first.
	RefundTime  *time.Time `json:"refundTime"`
	PayOverTime time.Time  `json:"payOverTime"`
	CreateTime  time.Time  `json:"createTime"`
}

// PayOrderClosure is the answer to closing a business order's payment:
// the closed pay order, or, when none had been applied for, just the record
// that the business order can no longer be paid.
type PayOrderClosure struct {
	PayOrder   *PayOrder
	BizOrderNo int64
}

// NewAccount is a request to open a wallet with an opening balance.
type NewAccount struct {
	UserID   int64  `json:"userId"`
	Password string `json:"password"`
	Balance  int64  `json:"balance"`
}

// Apply is trade's request for the pay order of one of its orders: for
// that order's owner and exact total, which trade vouches for. A user
// cannot apply, so nobody can block or underpay another user's order.
type Apply struct {
	BizOrderNo     int64  `json:"bizOrderNo"`
	BizUserID      int64  `json:"bizUserId"`
	Amount         int64  `json:"amount"`
	PayChannelCode string `json:"payChannelCode"`
	PayType        int    `json:"payType"`
	OrderInfo      string `json:"orderInfo"`
}

// Deposit is an operator's request to add funds to a wallet, once per key.
type Deposit struct {
	UserID int64
	Amount int64
	// IdempotencyKey is required: a retry under the same key returns the
	// first result instead of crediting again.
	IdempotencyKey string
}

// DepositResult is the wallet after the deposit, and whether it is a
// replay of an earlier deposit with the same idempotency key.
type DepositResult struct {
	Account  Account
	Replayed bool
}

// PasswordLock is a wallet locked for wrong payment passwords.
type PasswordLock struct {
	UserID int64
	Locks  int       // how many times in a row the wallet has been locked, this one included
	Until  time.Time // when payments are taken again
}

// Payment is a user's request to pay a pay order from their wallet.
type Payment struct {
	PayOrderID int64
	UserID     int64
	Password   string
	// IdempotencyKey, when set, makes a retry of this payment return the
	// first result instead of trying again.
	IdempotencyKey string
	// Fingerprint identifies the request the key was first used with (not
	// its password, which is checked first, always); a reuse of the key
	// with another fingerprint is refused.
	Fingerprint []byte
	// CorrelationID travels with the pay.success event.
	CorrelationID string
}

// PaymentResult is the paid pay order, and whether it is a replay of an
// earlier request with the same idempotency key.
type PaymentResult struct {
	PayOrder PayOrder
	Replayed bool
}

// PaySuccess is the body of the pay.success event.
type PaySuccess struct {
	BizOrderNo int64     `json:"bizOrderNo"`
	PayOrderID int64     `json:"payOrderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"`
	PaidAt     time.Time `json:"paidAt"`
}

// PaySuccessType is the message type of a PaySuccess event.
const PaySuccessType = "pay.success"

// Service is what the pay service does, whatever stores it.
type Service interface {
	CreateAccount(ctx context.Context, req NewAccount) (Account, error)
	Deposit(ctx context.Context, d Deposit) (DepositResult, error)
	Account(ctx context.Context, userID int64) (Account, error)
	ApplyPayOrder(ctx context.Context, req Apply) (order PayOrder, created bool, err error)
	Pay(ctx context.Context, p Payment) (PaymentResult, error)
	PayOrder(ctx context.Context, id int64) (PayOrder, error)
	PayOrderByBizOrderNo(ctx context.Context, bizOrderNo int64) (PayOrder, error)
	// PayOrdersByBizOrderNos returns the pay orders of the business
	// orders that have one, in one read: trade's fallback asks in batches.
	PayOrdersByBizOrderNos(ctx context.Context, bizOrderNos []int64) ([]PayOrder, error)
	ClosePayOrder(ctx context.Context, bizOrderNo int64) (PayOrderClosure, error)
	// RefundDecision returns what pay decided about a refund request.
	RefundDecision(ctx context.Context, refundID uuid.UUID) (RefundDecision, error)
	// DecideRefund decides a refund request now, as its refund.requested
	// would — once per refund id — and returns the decision.
	DecideRefund(ctx context.Context, req RefundRequest, correlationID string) (RefundDecision, error)
}

// IdempotencyKeyRetention is how long a completed payment's idempotency key
// is remembered; Stripe keeps keys for 24 hours too.
const IdempotencyKeyRetention = 24 * time.Hour
