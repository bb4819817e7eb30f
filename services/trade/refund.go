package trade

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/strictjson"
)

// RefundStatus is where a refund stands, as an order shows it.
type RefundStatus string

// The refund states. A refund is requested once per order and then either
// credited by pay (refunded) or refused by it (rejected); both are final.
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
	ID          uuid.UUID    `json:"refundId"`
	OrderID     int64        `json:"bizOrderNo"`
	UserID      int64        `json:"userId"`
	Amount      int64        `json:"amount"`
	Reason      string       `json:"reason"`
	Status      RefundStatus `json:"status"`
	RequestedAt time.Time    `json:"requestedAt"`
	RefundedAt  *time.Time   `json:"refundedAt"`
	Rejection   string       `json:"rejection,omitempty"`
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
	RefundedAt time.Time `json:"refundedAt"`
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
		RefundedAt *time.Time `json:"refundedAt"`
	}
	if err := strictjson.Decode(body, MaxEventBytes, &raw); err != nil {
		return RefundCredit{}, fmt.Errorf("decode refund.success: %w", err)
	}
	if err := strictjson.Require(map[string]bool{
		"refundId": raw.RefundID != nil, "bizOrderNo": raw.BizOrderNo != nil, "payOrderId": raw.PayOrderID != nil,
		"userId": raw.UserID != nil, "amount": raw.Amount != nil, "refundedAt": raw.RefundedAt != nil,
	}); err != nil {
		return RefundCredit{}, fmt.Errorf("refund.success %w", err)
	}
	c := RefundCredit{RefundID: *raw.RefundID, BizOrderNo: *raw.BizOrderNo, PayOrderID: *raw.PayOrderID, UserID: *raw.UserID, Amount: *raw.Amount, RefundedAt: *raw.RefundedAt}
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
	case c.RefundedAt.IsZero():
		return errors.New("refund.success refundedAt is zero")
	}
	return nil
}
