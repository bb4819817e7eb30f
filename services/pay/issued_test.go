package pay

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestApplyIsAllowedOnlyForAnOrderTradeIssuedToThatUserForThatTotal(t *testing.T) {
	a := Apply{BizOrderNo: 7, BizUserID: 1, Amount: 10_000}
	issued := IssuedOrder{ID: 7, UserID: 1, TotalFee: 10_000}
	for _, tc := range []struct {
		name  string
		order IssuedOrder
		found bool
		want  error
	}{
		{"issued as asked", issued, true, nil},
		{"not issued", IssuedOrder{}, false, ErrOrderNotIssued},
		{"trade answered about another order", IssuedOrder{ID: 8, UserID: 1, TotalFee: 10_000}, true, ErrOrderNotIssued},
		{"another owner", IssuedOrder{ID: 7, UserID: 2, TotalFee: 10_000}, true, ErrOrderMismatch},
		{"another total", IssuedOrder{ID: 7, UserID: 1, TotalFee: 1}, true, ErrOrderMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.CheckIssued(tc.order, tc.found); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("CheckIssued = %v, want %v", got, tc.want)
			}
			if tc.want == ErrOrderMismatch {
				return
			}
			if got := CheckIssued(7, tc.order, tc.found); (got == nil) != (tc.want == nil) {
				t.Errorf("closing: CheckIssued = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRefundIsCreditedOnlyAsTradeRequestedIt(t *testing.T) {
	id := uuid.New()
	req := RefundRequest{RefundID: id, BizOrderNo: 7, UserID: 1, Amount: 2_500, Reason: "user_request"}
	asked := RequestedRefund{ID: id, OrderID: 7, Amount: 2_500, Reason: "user_request", Requested: true}
	with := func(change func(r *RequestedRefund)) []RequestedRefund {
		r := asked
		change(&r)
		return []RequestedRefund{{ID: uuid.New(), OrderID: 7, Amount: 2_500, Reason: "user_request", Requested: true}, r}
	}
	for _, tc := range []struct {
		name   string
		listed []RequestedRefund
		found  bool
		want   error
	}{
		{"requested as asked", with(func(*RequestedRefund) {}), true, nil},
		{"order not issued", nil, false, ErrOrderNotIssued},
		{"no refunds", nil, true, ErrRefundNotRequested},
		{"only another refund id", with(func(r *RequestedRefund) { r.ID = uuid.New() }), true, ErrRefundNotRequested},
		{"another amount", with(func(r *RequestedRefund) { r.Amount = 10_000 }), true, ErrRefundNotRequested},
		{"another order", with(func(r *RequestedRefund) { r.OrderID = 8 }), true, ErrRefundNotRequested},
		{"another reason", with(func(r *RequestedRefund) { r.Reason = "compensation:order_cancelled" }), true, ErrRefundNotRequested},
		{"already answered at trade", with(func(r *RequestedRefund) { r.Requested = false }), true, ErrRefundNotRequested},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := req.CheckRequested(tc.listed, tc.found); !errors.Is(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("CheckRequested = %v, want %v", got, tc.want)
			}
		})
	}
}
