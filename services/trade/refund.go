package trade

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/internal/strictjson"
)

// RefundStatus is where a refund stands, as an order shows it.
type RefundStatus string

// The refund states. An order has as many refunds as its owner asks for,
// within its total; each is requested once and then either credited by pay
// (refunded) or refused by it (rejected). Both are final for pay; a
// rejected refund waits for an operator to settle it (retried under a new
// refund, or resolved with a note), and its amount can be asked for again.
const (
	RefundRequested RefundStatus = "requested" // written with its refund.requested event; pay has not answered yet
	RefundRefunded  RefundStatus = "refunded"  // pay credited it: refund.success, or pay's answer to the fallback
	RefundRejected  RefundStatus = "rejected"  // pay could not honour it and changed nothing; see Rejection
)

// ReasonUserRequest is the reason of a refund the order's owner asked for.
const ReasonUserRequest = "user_request"

// CompensationReason is the reason of the refund trade requests itself for
// a payment it could not apply to its order (a discrepancy).
func CompensationReason(discrepancy string) string {
	return "compensation:" + discrepancy
}

// Refund is money trade asked pay to give back for one order.
type Refund struct {
	ID      uuid.UUID `json:"refundId"`
	OrderID int64     `json:"orderId"`
	UserID  int64     `json:"-"`
	Amount  int64     `json:"amount"`
	Reason  string    `json:"reason"`
	// RequestKey is what makes asking again find this refund: the owner's
	// Idempotency-Key, CompensationKey, or "" for "what remains".
	RequestKey  string       `json:"-"`
	Status      RefundStatus `json:"status"`
	Rejection   string       `json:"rejectReason"`
	RequestedAt time.Time    `json:"requestedAt"`
	RefundedAt  *time.Time   `json:"refundedAt"`
	// Settlement is how an operator settled a rejected refund; "" until then.
	Settlement string     `json:"-"`
	SettledAt  *time.Time `json:"-"`
}

// RefundRequest is an order owner's request for a refund: of Amount, under
// IdempotencyKey; or, with neither, of what remains of the order.
type RefundRequest struct {
	Amount int64 `json:"amount"`
	// Reason is optional; the only reason an owner gives is user_request.
	Reason         string `json:"reason"`
	IdempotencyKey string `json:"-"`
}

// CompensationKey is the request key of the one compensating refund of an
// order whose payment could not be applied to it.
const CompensationKey = "compensation"

// maxRefundKeyBytes bounds an Idempotency-Key.
const maxRefundKeyBytes = 255

// Validate checks a partial refund request before anything is locked.
func (r RefundRequest) Validate() error {
	switch {
	case r.IdempotencyKey == "":
		return problem.Invalidf("Idempotency-Key is required: a refund retried without one could be requested twice")
	case len(r.IdempotencyKey) > maxRefundKeyBytes || r.IdempotencyKey == CompensationKey:
		return problem.Invalidf(fmt.Sprintf("Idempotency-Key must be at most %d bytes and not %q", maxRefundKeyBytes, CompensationKey))
	case r.Amount <= 0:
		return problem.Invalidf("amount must be a positive number of cents")
	case r.Reason != "" && r.Reason != ReasonUserRequest:
		return problem.Invalidf(`reason must be "user_request" or absent`)
	}
	return nil
}

// Remainder is the request for what remains of an order.
func (r RefundRequest) Remainder() bool {
	return r.IdempotencyKey == "" && r.Amount == 0
}

// CheckOwner says whether userID owns o: to anyone else it does not exist.
func (o Order) CheckOwner(userID int64) error {
	if o.UserID != userID {
		return ErrOrderNotFound
	}
	return nil
}

// RefundRemaining is what the owner of o can still ask to have refunded:
// its total less its refunds requested and not rejected.
func (o Order) RefundRemaining() int64 {
	if o.Status != Paid {
		return 0
	}
	return o.TotalFee - o.RefundClaimed
}

// CheckRefund says why amount cannot be refunded from o now, or nil: o
// must be paid and amount at most what remains. The caller holds o's row
// lock; the conditional UPDATE and the orders' CHECK hold the same rule.
func (o Order) CheckRefund(amount int64) error {
	switch {
	case o.Status != Paid:
		return ErrNotRefundable
	case amount <= 0 || amount > o.RefundRemaining():
		return ErrRefundExceeds
	}
	return nil
}

// SameRequest reports whether req, asked again under r's key, asks for r.
func (r Refund) SameRequest(req RefundRequest) bool {
	return r.Amount == req.Amount
}

// ClaimsOrder reports whether r counts against its order's total: a
// refund its owner asked for does; a compensation, for a payment the
// order never took, does not.
func (r Refund) ClaimsOrder() bool {
	return r.Reason == ReasonUserRequest
}

// CheckCredit says why pay's credit c cannot be r's, or nil: it must be
// for r's order, user and amount.
func (r Refund) CheckCredit(c RefundCredit) error {
	switch {
	case c.RefundID != r.ID:
		return fmt.Errorf("credit of refund %s is not refund %s", c.RefundID, r.ID)
	case c.BizOrderNo != r.OrderID:
		return fmt.Errorf("credit of refund %s is for order %d, not %d", r.ID, c.BizOrderNo, r.OrderID)
	case c.UserID != r.UserID:
		return fmt.Errorf("credit of refund %s is to user %d, not %d", r.ID, c.UserID, r.UserID)
	case c.Amount != r.Amount:
		return fmt.Errorf("credit of refund %s is of %d, not %d", r.ID, c.Amount, r.Amount)
	}
	return nil
}

// Claimed is o once r, a refund of it, is requested.
func (o Order) Claimed(r Refund) Order {
	if r.ClaimsOrder() {
		o.RefundClaimed += r.Amount
	}
	return o
}

// Released is o once r, a refund of it, is rejected: its amount can be
// asked for again.
func (o Order) Released(r Refund) Order {
	if r.ClaimsOrder() {
		o.RefundClaimed -= r.Amount
	}
	return o
}

// Credited is o once r, a refund of it, is credited: its refunded amount
// grows, and a paid order refunded in full becomes Refunded.
func (o Order) Credited(r Refund) Order {
	if !r.ClaimsOrder() {
		return o
	}
	o.RefundedAmount += r.Amount
	if o.Status == Paid && o.RefundedAmount == o.TotalFee {
		o.Status = Refunded
	}
	return o
}

// CompensationAmount is what a compensating refund gives back of a payment
// of paid that the order could not take, when its refunds requested and
// not rejected already add up to claimed: what remains of the payment.
func CompensationAmount(paid, claimed int64) int64 {
	return max(paid-claimed, 0)
}

// RefundRequestedType is the message type of a refund.requested event.
const RefundRequestedType = "refund.requested"

// RefundRequestedEvent is the body of a refund.requested event.
type RefundRequestedEvent struct {
	RefundID    uuid.UUID `json:"refundId"`
	BizOrderNo  int64     `json:"bizOrderNo"`
	UserID      int64     `json:"userId"`
	Amount      int64     `json:"amount"`
	Reason      string    `json:"reason"`
	RequestedAt time.Time `json:"requestedAt"`
}

// Requested is the refund.requested event that asks pay for r.
func (r Refund) Requested() RefundRequestedEvent {
	return RefundRequestedEvent{RefundID: r.ID, BizOrderNo: r.OrderID, UserID: r.UserID, Amount: r.Amount, Reason: r.Reason, RequestedAt: r.RequestedAt}
}

// RefundSuccessType is the message type of a refund.success event.
const RefundSuccessType = "refund.success"

// RefundCredit is a refund pay credited, as it reports it by a
// refund.success event or by answering the fallback's question.
type RefundCredit struct {
	RefundID   uuid.UUID `json:"refundId"`
	BizOrderNo int64     `json:"bizOrderNo"`
	PayOrderID int64     `json:"payOrderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"`
	// RefundedTotal is the pay order's credits, this one included.
	RefundedTotal int64     `json:"refundedTotal"`
	RefundedAt    time.Time `json:"refundedAt"`
}

// RefundVerdict is pay's answer about a refund: credited, rejected, or not
// decided yet (its refund.requested has not reached pay).
type RefundVerdict struct {
	Decided   bool
	Credit    *RefundCredit // set when pay credited it
	Rejection string        // set when pay rejected it
}

// DecodeRefundSuccess reads a refund.success body strictly, like
// DecodePaySuccess: any error means the message can never be processed.
func DecodeRefundSuccess(body []byte) (RefundCredit, error) {
	var raw struct {
		RefundID   *uuid.UUID `json:"refundId"`
		BizOrderNo *int64     `json:"bizOrderNo"`
		PayOrderID *int64     `json:"payOrderId"`
		UserID     *int64     `json:"userId"`
		Amount     *int64     `json:"amount"`
		Total      *int64     `json:"refundedTotal"`
		RefundedAt *time.Time `json:"refundedAt"`
	}
	if err := strictjson.Decode(body, MaxEventBytes, &raw); err != nil {
		return RefundCredit{}, fmt.Errorf("decode refund.success: %w", err)
	}
	if err := strictjson.Require(map[string]bool{
		"refundId": raw.RefundID != nil, "bizOrderNo": raw.BizOrderNo != nil, "payOrderId": raw.PayOrderID != nil,
		"userId": raw.UserID != nil, "amount": raw.Amount != nil, "refundedTotal": raw.Total != nil, "refundedAt": raw.RefundedAt != nil,
	}); err != nil {
		return RefundCredit{}, fmt.Errorf("refund.success %w", err)
	}
	c := RefundCredit{RefundID: *raw.RefundID, BizOrderNo: *raw.BizOrderNo, PayOrderID: *raw.PayOrderID, UserID: *raw.UserID,
		Amount: *raw.Amount, RefundedTotal: *raw.Total, RefundedAt: *raw.RefundedAt}
	if err := c.Validate(); err != nil {
		return RefundCredit{}, err
	}
	return c, nil
}

// Validate checks that every field of a credit is in range.
func (c RefundCredit) Validate() error {
	switch {
	case c.RefundID == uuid.Nil:
		return errors.New("refund.success refundId is nil")
	case c.BizOrderNo <= 0:
		return fmt.Errorf("refund.success bizOrderNo %d is not positive", c.BizOrderNo)
	case c.PayOrderID <= 0:
		return fmt.Errorf("refund.success payOrderId %d is not positive", c.PayOrderID)
	case c.UserID <= 0:
		return fmt.Errorf("refund.success userId %d is not positive", c.UserID)
	case c.Amount <= 0:
		return fmt.Errorf("refund.success amount %d is not positive", c.Amount)
	case c.RefundedTotal < c.Amount:
		return fmt.Errorf("refund.success refundedTotal %d is below its amount %d", c.RefundedTotal, c.Amount)
	case c.RefundedAt.IsZero():
		return errors.New("refund.success refundedAt is zero")
	}
	return nil
}
