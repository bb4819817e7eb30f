package pay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/strictjson"
)

// RefundRequest is trade's request to give a payment back: the body of a
// refund.requested event.
type RefundRequest struct {
	RefundID    uuid.UUID `json:"refundId"`
	BizOrderNo  int64     `json:"bizOrderNo"`
	UserID      int64     `json:"userId"`
	Amount      int64     `json:"amount"`
	Reason      string    `json:"reason"`
	RequestedAt time.Time `json:"requestedAt"`
}

// RefundRequestedType is the message type of a refund.requested event.
const RefundRequestedType = "refund.requested"

// RefundOutcome is what pay decided about a refund request, by refund id.
// Both are final: a rejected refund is settled at trade, by an operator.
type RefundOutcome string

// The outcomes of a refund request.
const (
	RefundCredited RefundOutcome = "refunded" // wallet credited, pay order's RefundedAmount raised, refund.success announced
	RefundRejected RefundOutcome = "rejected" // could not be honoured: nothing changed but this record
)

// The reasons a refund request is rejected. A rejection changes no money.
const (
	RejectNoPayOrder       = "pay_order_not_found"      // the business order has no pay order
	RejectNotPaid          = "not_paid"                 // its pay order was never paid
	RejectAlreadyRefunded  = "already_refunded"         // its pay order was refunded in full by other refunds
	RejectUserMismatch     = "user_mismatch"            // the refund is for another user than the payer
	RejectExceedsRemaining = "refund_exceeds_remaining" // the refund is for more than was paid and not yet credited
)

// RefundRejection says why req cannot be credited from o, or "" if it can:
// o is paid, by req's user, and req's amount is at most what was paid and
// not yet credited. The caller holds o's row lock, so the answer stands
// until it commits; the credit's conditional UPDATE and the pay order's
// CHECK hold the same rule if it does not.
func (o PayOrder) RefundRejection(req RefundRequest) string {
	switch {
	case o.Status == Refunded:
		return RejectAlreadyRefunded
	case o.Status != Paid:
		return RejectNotPaid
	case o.BizUserID != req.UserID:
		return RejectUserMismatch
	case req.Amount <= 0 || req.Amount > o.RefundRemaining():
		return RejectExceedsRemaining
	}
	return ""
}

// RefundRemaining is what can still be credited back from o.
func (o PayOrder) RefundRemaining() int64 {
	if o.Status != Paid {
		return 0
	}
	return o.Amount - o.RefundedAmount
}

// The kinds of refund, for the metrics.
const (
	RefundWhole = "whole" // all that was paid, at once
	RefundPart  = "part"  // less than was paid: one of a payment's partial refunds
)

// RefundKind is the kind of a refund of amount from o.
func (o PayOrder) RefundKind(amount int64) string {
	if amount == o.Amount {
		return RefundWhole
	}
	return RefundPart
}

// Credited is o after amount more was credited back at at: still Paid
// while something remains, Refunded when the credits reach what was paid.
func (o PayOrder) Credited(amount int64, at time.Time) PayOrder {
	o.RefundedAmount += amount
	o.RefundTime = &at
	if o.RefundedAmount == o.Amount {
		o.Status = Refunded
	}
	return o
}

// RefundDecision is a refund request as pay decided it, by trade's refund id.
type RefundDecision struct {
	RefundID   uuid.UUID     `json:"refundId"`
	BizOrderNo int64         `json:"bizOrderNo"`
	PayOrderID *int64        `json:"payOrderId"`
	UserID     int64         `json:"userId"`
	Amount     int64         `json:"amount"`
	Reason     string        `json:"reason"`
	Outcome    RefundOutcome `json:"outcome"`
	Rejection  string        `json:"rejection,omitempty"`
	// RefundedTotal is the pay order's credits, this one included, when it
	// was credited; 0 unless it was.
	RefundedTotal int64 `json:"refundedTotal"`
	// RefundedAt is when the wallet was credited; nil unless it was.
	RefundedAt  *time.Time `json:"refundedAt"`
	RequestedAt time.Time  `json:"requestedAt"`
	DecidedAt   time.Time  `json:"decidedAt"`
}

// RefundSuccess is the body of the refund.success event.
type RefundSuccess struct {
	RefundID   uuid.UUID `json:"refundId"`
	BizOrderNo int64     `json:"bizOrderNo"`
	PayOrderID int64     `json:"payOrderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"` // this refund's credit
	// RefundedTotal is the pay order's credits, this one included.
	RefundedTotal int64     `json:"refundedTotal"`
	RefundedAt    time.Time `json:"refundedAt"`
}

// RefundSuccessType is the message type of a RefundSuccess event.
const RefundSuccessType = "refund.success"

// RefundResult is what handling one refund.requested message did.
type RefundResult int

// The results of handling a refund.requested message.
const (
	RefundApplied   RefundResult = iota + 1 // credited now
	RefundRefused                           // rejected now, and recorded
	RefundDuplicate                         // this message, or this refund id, was decided before
)

// String names the result, for logs and metrics.
func (r RefundResult) String() string {
	switch r {
	case RefundApplied:
		return "refunded"
	case RefundRefused:
		return "rejected"
	case RefundDuplicate:
		return "duplicate"
	}
	return "unknown"
}

// Refunder credits refunds: what pay's refund.requested consumer needs.
type Refunder interface {
	// Refund decides req once per message id and once per refund id: it
	// credits the payment back or records why it cannot.
	Refund(ctx context.Context, messageID string, req RefundRequest, correlationID string) (RefundResult, error)
}

// MaxEventBytes bounds a refund.requested body; real ones are ~200 bytes.
const MaxEventBytes = 64 << 10

// DecodeRefundRequested reads a refund.requested body strictly: one JSON
// object with every field present and in range. Any error means the message
// can never be processed, however often it is retried.
func DecodeRefundRequested(body []byte) (RefundRequest, error) {
	var raw struct {
		RefundID    *uuid.UUID `json:"refundId"`
		BizOrderNo  *int64     `json:"bizOrderNo"`
		UserID      *int64     `json:"userId"`
		Amount      *int64     `json:"amount"`
		Reason      *string    `json:"reason"`
		RequestedAt *time.Time `json:"requestedAt"`
	}
	if err := strictjson.Decode(body, MaxEventBytes, &raw); err != nil {
		return RefundRequest{}, fmt.Errorf("decode refund.requested: %w", err)
	}
	if err := strictjson.Require(map[string]bool{
		"refundId": raw.RefundID != nil, "bizOrderNo": raw.BizOrderNo != nil, "userId": raw.UserID != nil,
		"amount": raw.Amount != nil, "reason": raw.Reason != nil, "requestedAt": raw.RequestedAt != nil,
	}); err != nil {
		return RefundRequest{}, fmt.Errorf("refund.requested %w", err)
	}
	r := RefundRequest{RefundID: *raw.RefundID, BizOrderNo: *raw.BizOrderNo, UserID: *raw.UserID, Amount: *raw.Amount, Reason: *raw.Reason, RequestedAt: *raw.RequestedAt}
	if err := r.Validate(); err != nil {
		return RefundRequest{}, err
	}
	return r, nil
}

// Validate checks that every field of a refund request is in range.
func (r RefundRequest) Validate() error {
	switch {
	case r.RefundID == uuid.Nil:
		return errors.New("refund.requested refundId is nil")
	case r.BizOrderNo <= 0:
		return fmt.Errorf("refund.requested bizOrderNo %d is not positive", r.BizOrderNo)
	case r.UserID <= 0:
		return fmt.Errorf("refund.requested userId %d is not positive", r.UserID)
	case r.Amount <= 0:
		return fmt.Errorf("refund.requested amount %d is not positive", r.Amount)
	case r.Reason == "" || len(r.Reason) > 200:
		return errors.New("refund.requested reason is empty or longer than 200 bytes")
	case r.RequestedAt.IsZero():
		return errors.New("refund.requested requestedAt is zero")
	}
	return nil
}
