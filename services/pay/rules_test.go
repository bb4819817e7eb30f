package pay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/pay"
)

func TestCheckPaymentAllowsOnlyTheOwnerAWaitingUnexpiredOrderTheBalanceCovers(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	waiting := pay.PayOrder{ID: 45, BizOrderNo: 12, BizUserID: 7, Amount: 10_000, Status: pay.Waiting, PayOverTime: now.Add(time.Minute)}
	with := func(mutate func(*pay.PayOrder)) pay.PayOrder {
		o := waiting
		mutate(&o)
		return o
	}
	for _, tc := range []struct {
		name    string
		order   pay.PayOrder
		user    int64
		balance int64
		want    error
	}{
		{"the owner, the whole balance", waiting, 7, 10_000, nil},
		{"another user, however rich", waiting, 8, 1_000_000, pay.ErrPayOrderNotFound},
		{"one cent short", waiting, 7, 9_999, pay.ErrInsufficientFunds},
		{"expired", with(func(o *pay.PayOrder) { o.PayOverTime = now.Add(-time.Nanosecond) }), 7, 10_000, pay.ErrPayOrderExpired},
		{"paid already", with(func(o *pay.PayOrder) { o.Status = pay.Paid }), 7, 10_000, pay.ErrAlreadyPaid},
		{"refunded", with(func(o *pay.PayOrder) { o.Status = pay.Refunded }), 7, 10_000, pay.ErrAlreadyPaid},
		{"closed", with(func(o *pay.PayOrder) { o.Status = pay.Closed }), 7, 10_000, pay.ErrPayOrderClosed},
		// Ownership comes before anything that would tell another user
		// about the order: its state or the amount it is for.
		{"another user's closed order", with(func(o *pay.PayOrder) { o.Status = pay.Closed }), 8, 0, pay.ErrPayOrderNotFound},
	} {
		if got := tc.order.CheckPayment(tc.user, tc.balance, now); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPaidAtIsTheOrderPaidAtThatTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	o := pay.PayOrder{ID: 45, Amount: 10_000, Status: pay.Waiting}.PaidAt(at)
	if o.Status != pay.Paid || o.PaySuccessTime == nil || !o.PaySuccessTime.Equal(at) || o.Amount != 10_000 {
		t.Errorf("paid: %+v", o)
	}
}
