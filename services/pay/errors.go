package pay

import "github.com/paytrade/paytrade/internal/problem"

// The pay service's refusals. A refusal changes nothing.
var (
	ErrWrongPassword        = problem.New(problem.Forbidden, "wrong_password", "the payment password is wrong")
	ErrInsufficientFunds    = problem.New(problem.Conflict, "insufficient_funds", "the balance is lower than the amount")
	ErrAlreadyPaid          = problem.New(problem.Conflict, "already_paid", "the pay order is already paid")
	ErrPayOrderClosed       = problem.New(problem.Conflict, "pay_order_closed", "the pay order is closed and can no longer be paid")
	ErrPayOrderExpired      = problem.New(problem.Conflict, "pay_order_expired", "the pay order's time to pay has passed")
	ErrPayOrderNotFound     = problem.New(problem.NotFound, "pay_order_not_found", "no such pay order")
	ErrBizOrderConflict     = problem.New(problem.Conflict, "biz_order_conflict", "this business order already has a pay order with another user or amount")
	ErrAccountExists        = problem.New(problem.Conflict, "account_exists", "the user already has a wallet")
	ErrAccountNotFound      = problem.New(problem.NotFound, "account_not_found", "the user has no wallet")
	ErrBalanceOverflow      = problem.New(problem.Conflict, "balance_overflow", "the deposit would overflow the balance")
	ErrIdempotencyKeyReused = problem.New(problem.Unprocessable, "idempotency_key_reused", "the Idempotency-Key was already used with a different request")
	ErrRefundNotFound       = problem.New(problem.NotFound, "refund_not_found", "pay has not received this refund request")
	ErrIdempotencyInFlight  = problem.New(problem.Conflict, "idempotency_key_in_flight", "a request with this Idempotency-Key is still being processed")
	ErrPasswordLocked       = problem.New(problem.Locked, "payment_password_locked", "too many wrong payment passwords in a row: this wallet cannot pay until Retry-After has passed")
	ErrPasswordChecksBusy   = problem.New(problem.Busy, "password_checks_busy", "every payment password check this wallet, or pay, may run at once is in progress: try again after Retry-After")
)
