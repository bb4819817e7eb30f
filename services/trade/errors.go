package trade

import (
	"errors"

	"github.com/paytrade/paytrade/internal/problem"
)

// The trade service's refusals. A refusal changes nothing.
var (
	ErrOrderNotFound       = problem.New(problem.NotFound, "order_not_found", "no such order")
	ErrAlreadyPaid         = problem.New(problem.Conflict, "already_paid", "the order is already paid")
	ErrOrderNotCancellable = problem.New(problem.Conflict, "order_not_cancellable", "the order has moved on and can no longer be cancelled")
	ErrNotRefundable       = problem.New(problem.Conflict, "not_refundable", "only a paid order can be refunded")
	ErrRefundExceeds       = problem.New(problem.Conflict, "refund_exceeds_remaining", "the refund would take the order's refunds requested and not rejected past its total")
	ErrRefundKeyReused     = problem.New(problem.Unprocessable, "idempotency_key_reused", "the Idempotency-Key was already used for another refund of this order")
	ErrRefundNotFound      = problem.New(problem.NotFound, "refund_not_found", "no such refund")
	ErrRefundNotRejected   = problem.New(problem.Conflict, "refund_not_rejected", "only a rejected refund that nobody settled can be settled")
	ErrOrderNotUnpaid      = problem.New(problem.Conflict, "order_not_unpaid", "only an unpaid order can be paid")
	ErrPayUnavailable      = problem.New(problem.Unavailable, "pay_unavailable", "the pay service did not answer; try again")
)

// ErrPaidAtPay is PayGateway.ClosePayment's answer when the order has been
// paid at pay: it must be marked paid, not cancelled.
var ErrPaidAtPay = errors.New("paid at pay")
