package trade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/trade"
)

func TestCheckRefundCountsRefundsRequestedAndNotRejected(t *testing.T) {
	paid := trade.Order{ID: 12, UserID: 7, TotalFee: 10_000, Status: trade.Paid, RefundClaimed: 6_000}
	with := func(status trade.OrderStatus) trade.Order {
		o := paid
		o.Status = status
		return o
	}
	tests := []struct {
		name   string
		order  trade.Order
		amount int64
		want   error
	}{
		{"part of what remains", paid, 1_000, nil},
		{"exactly what remains", paid, 4_000, nil},
		{"more than remains", paid, 4_001, trade.ErrRefundExceeds},
		{"nothing", paid, 0, trade.ErrRefundExceeds},
		{"unpaid", with(trade.Unpaid), 1, trade.ErrNotRefundable},
		{"shipped", with(trade.Shipped), 1, trade.ErrNotRefundable},
		{"refunded in full", with(trade.Refunded), 1, trade.ErrNotRefundable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.order.CheckRefund(tt.amount); !errors.Is(err, tt.want) {
				t.Errorf("CheckRefund(%d) = %v, want %v", tt.amount, err, tt.want)
			}
		})
	}
}

func TestOrderMovesWithItsOwnRefundsOnly(t *testing.T) {
	o := trade.Order{ID: 12, UserID: 7, TotalFee: 10_000, Status: trade.Paid}
	part := trade.Refund{ID: uuid.New(), OrderID: 12, UserID: 7, Amount: 4_000, Reason: trade.ReasonUserRequest}
	rest := trade.Refund{ID: uuid.New(), OrderID: 12, UserID: 7, Amount: 6_000, Reason: trade.ReasonUserRequest}
	compensation := trade.Refund{ID: uuid.New(), OrderID: 12, UserID: 7, Amount: 10_000, Reason: trade.CompensationReason(trade.ReasonUserMismatch)}

	o = o.Claimed(part).Claimed(rest).Claimed(compensation)
	if o.RefundClaimed != 10_000 || o.RefundRemaining() != 0 {
		t.Fatalf("claimed %d, remaining %d; want 10000 and 0 (a compensation claims nothing)", o.RefundClaimed, o.RefundRemaining())
	}
	if r := o.Released(rest); r.RefundClaimed != 4_000 {
		t.Errorf("after rejecting 6000: claimed %d, want 4000", r.RefundClaimed)
	}
	o = o.Credited(part)
	if o.Status != trade.Paid || o.RefundedAmount != 4_000 {
		t.Fatalf("after a credit of 4000: %+v, want paid with 4000 refunded", o)
	}
	o = o.Credited(compensation)
	if o.RefundedAmount != 4_000 {
		t.Fatalf("a compensation's credit moved the order: %+v", o)
	}
	if o = o.Credited(rest); o.Status != trade.Refunded || o.RefundedAmount != 10_000 {
		t.Errorf("after credits of the whole total: %+v, want refunded (7)", o)
	}
}

func TestCheckCreditTakesOnlyTheRefundsOwnCredit(t *testing.T) {
	r := trade.Refund{ID: uuid.New(), OrderID: 12, UserID: 7, Amount: 4_000}
	good := trade.RefundCredit{RefundID: r.ID, BizOrderNo: 12, PayOrderID: 45, UserID: 7, Amount: 4_000, RefundedTotal: 4_000, RefundedAt: time.Now()}
	tests := []struct {
		name   string
		mutate func(*trade.RefundCredit)
		ok     bool
	}{
		{"its own", func(*trade.RefundCredit) {}, true},
		{"another refund", func(c *trade.RefundCredit) { c.RefundID = uuid.New() }, false},
		{"another order", func(c *trade.RefundCredit) { c.BizOrderNo = 13 }, false},
		{"another user", func(c *trade.RefundCredit) { c.UserID = 8 }, false},
		{"another amount", func(c *trade.RefundCredit) { c.Amount = 10_000 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			if err := r.CheckCredit(c); (err == nil) != tt.ok {
				t.Errorf("CheckCredit = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestPaymentRejectionSaysWhyAPaymentCannotPayItsOrder(t *testing.T) {
	paidAt := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	unpaid := trade.Order{ID: 12, UserID: 7, TotalFee: 10_000, Status: trade.Unpaid}
	p := trade.Payment{BizOrderNo: 12, PayOrderID: 45, UserID: 7, Amount: 10_000, PaidAt: paidAt}
	with := func(mutate func(*trade.Order)) trade.Order {
		o := unpaid
		mutate(&o)
		return o
	}
	tests := []struct {
		name      string
		order     trade.Order
		reason    string
		duplicate bool
	}{
		{"pays it", unpaid, "", false},
		{"another user's", with(func(o *trade.Order) { o.UserID = 8 }), trade.ReasonUserMismatch, false},
		{"another total", with(func(o *trade.Order) { o.TotalFee = 9_999 }), trade.ReasonAmountMismatch, false},
		{"cancelled", with(func(o *trade.Order) { o.Status = trade.Cancelled }), trade.ReasonOrderMovedOn, false},
		{"paid before", with(func(o *trade.Order) { o.Status, o.PayTime = trade.Paid, &paidAt }), "", true},
		{"refunded since", with(func(o *trade.Order) { o.Status, o.PayTime = trade.Refunded, &paidAt }), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, duplicate := tt.order.PaymentRejection(p)
			if reason != tt.reason || duplicate != tt.duplicate {
				t.Errorf("PaymentRejection = %q, %v; want %q, %v", reason, duplicate, tt.reason, tt.duplicate)
			}
		})
	}
}

func TestAnotherUsersOrderDoesNotExistForThem(t *testing.T) {
	o := trade.Order{ID: 12, UserID: 7}
	if err := o.CheckOwner(7); err != nil {
		t.Errorf("owner: %v", err)
	}
	if err := o.CheckOwner(8); !errors.Is(err, trade.ErrOrderNotFound) {
		t.Errorf("another user: %v, want %v", err, trade.ErrOrderNotFound)
	}
}
