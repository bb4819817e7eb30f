package pay

import (
	"fmt"
	"time"

	"github.com/paytrade/paytrade/internal/problem"
)

// Limits on what the API accepts.
const (
	maxPasswordBytes       = 72 // what bcrypt, which checks the oldest hashes, reads
	maxOrderInfoBytes      = 1024
	maxIdempotencyKeyBytes = 255
)

// Validate checks a request to open a wallet.
func (a NewAccount) Validate() error {
	switch {
	case a.UserID <= 0:
		return problem.Invalidf("userId must be a positive integer")
	case a.Password == "":
		return problem.Invalidf("password is required")
	case len(a.Password) > maxPasswordBytes:
		return problem.Invalidf(fmt.Sprintf("password must be at most %d bytes", maxPasswordBytes))
	case a.Balance < 0:
		return problem.Invalidf("balance must not be negative")
	}
	return nil
}

// Validate checks a deposit before anything is locked.
func (d Deposit) Validate() error {
	switch {
	case d.Amount <= 0:
		return problem.Invalidf("amount must be a positive number of cents")
	case d.IdempotencyKey == "":
		return problem.Invalidf("Idempotency-Key is required: a deposit retried without one could credit twice")
	case len(d.IdempotencyKey) > maxIdempotencyKeyBytes:
		return problem.Invalidf(fmt.Sprintf("Idempotency-Key must be at most %d bytes", maxIdempotencyKeyBytes))
	}
	return nil
}

// Validate checks a request for a pay order.
func (a Apply) Validate() error {
	switch {
	case a.BizOrderNo <= 0:
		return problem.Invalidf("bizOrderNo must be a positive integer")
	case a.BizUserID <= 0:
		return problem.Invalidf("bizUserId must be a positive integer")
	case a.Amount <= 0:
		return problem.Invalidf("amount must be a positive number of cents")
	case a.PayChannelCode != ChannelBalance:
		return problem.Invalidf(`payChannelCode must be "balance"`)
	case a.PayType != PayTypeBalance:
		return problem.Invalidf(fmt.Sprintf("payType must be %d (balance)", PayTypeBalance))
	case len(a.OrderInfo) > maxOrderInfoBytes:
		return problem.Invalidf(fmt.Sprintf("orderInfo must be at most %d bytes", maxOrderInfoBytes))
	}
	return nil
}

// Validate checks a payment request before anything is locked.
func (p Payment) Validate() error {
	switch {
	case p.PayOrderID <= 0:
		return problem.Invalidf("pay order id must be a positive integer")
	case p.Password == "":
		return problem.Invalidf("pw is required")
	case len(p.Password) > maxPasswordBytes:
		return ErrWrongPassword
	case len(p.IdempotencyKey) > maxIdempotencyKeyBytes:
		return problem.Invalidf(fmt.Sprintf("Idempotency-Key must be at most %d bytes", maxIdempotencyKeyBytes))
	}
	return nil
}

// SameRequest reports whether an apply for an existing pay order asks for
// the same thing: then the existing pay order is the answer.
func (o PayOrder) SameRequest(a Apply) bool {
	return o.BizUserID == a.BizUserID && o.Amount == a.Amount
}

// CheckPayable says why a pay order cannot be paid now, or nil.
func (o PayOrder) CheckPayable(now time.Time) error {
	switch o.Status {
	case Waiting:
		if now.After(o.PayOverTime) {
			return ErrPayOrderExpired
		}
		return nil
	case Paid, Refunded:
		return ErrAlreadyPaid
	default: // closed, or never submitted
		return ErrPayOrderClosed
	}
}

// CheckPayer says why userID cannot pay o now, or nil. Another user's pay
// order is, to this user, no pay order at all.
func (o PayOrder) CheckPayer(userID int64, now time.Time) error {
	if o.BizUserID != userID {
		return ErrPayOrderNotFound
	}
	return o.CheckPayable(now)
}

// CheckPayment says why userID cannot pay o now from a wallet holding
// balance, or nil: CheckPayer, then whether the balance covers the amount.
func (o PayOrder) CheckPayment(userID, balance int64, now time.Time) error {
	if err := o.CheckPayer(userID, now); err != nil {
		return err
	}
	if balance < o.Amount {
		return ErrInsufficientFunds
	}
	return nil
}

// PaidAt is o once paid at at.
func (o PayOrder) PaidAt(at time.Time) PayOrder {
	o.Status = Paid
	o.PaySuccessTime = &at
	return o
}

// The payment password lockout: after MaxPasswordFailures wrong passwords
// in a row a wallet cannot pay for FirstLock, and each further lock without
// a right password between lasts twice as long, up to MaxLock. A 6-digit
// PIN then takes years to guess, not minutes.
const (
	MaxPasswordFailures = 5
	FirstLock           = 15 * time.Minute
	MaxLock             = 24 * time.Hour
)

// LockLadder lists how long each lock of a wallet lasts: the first, the
// second after it, and so on; every lock past the end lasts as long as the
// last, MaxLock.
func LockLadder() []time.Duration {
	var ladder []time.Duration
	for d := FirstLock; d < MaxLock; d *= 2 {
		ladder = append(ladder, d)
	}
	return append(ladder, MaxLock)
}

// PasswordLocked is the refusal of a payment from a wallet that is locked
// for lockedFor more.
func PasswordLocked(lockedFor time.Duration) error {
	return ErrPasswordLocked.WithRetryAfter(max(lockedFor, time.Second))
}

// String names the status as docs/design.md does.
func (s PayOrderStatus) String() string {
	switch s {
	case NotCommitted:
		return "not committed"
	case Waiting:
		return "waiting"
	case Closed:
		return "closed"
	case Paid:
		return "paid"
	case Refunded:
		return "refunded"
	}
	return "unknown"
}
