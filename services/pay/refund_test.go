package pay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/pay"
)

func TestDecodeRefundRequestedRefusesWhatCanNeverBeCredited(t *testing.T) {
	const valid = `{"refundId":"0193b2c4-1f2e-7a00-8000-000000000001","bizOrderNo":12,"userId":7,"amount":2500,"reason":"user_request","requestedAt":"2026-12-03T10:00:00Z"}`
	if r, err := pay.DecodeRefundRequested([]byte(valid)); err != nil || r.BizOrderNo != 12 || r.Amount != 2500 || r.Reason != "user_request" {
		t.Fatalf("valid body: %+v, %v", r, err)
	}
	tests := []struct{ name, body, want string }{
		{"not JSON", `refund`, "invalid character"},
		{"JSON null", `null`, "not a JSON object"},
		{"missing fields", `{"bizOrderNo":12}`, "lacks [amount reason refundId requestedAt userId]"},
		{"nil refund id", strings.Replace(valid, "0193b2c4-1f2e-7a00-8000-000000000001", "00000000-0000-0000-0000-000000000000", 1), "refundId is nil"},
		{"negative amount", strings.Replace(valid, `"amount":2500`, `"amount":-1`, 1), "amount -1 is not positive"},
		{"no reason", strings.Replace(valid, `"user_request"`, `""`, 1), "reason is empty"},
		{"trailing data", valid + `{}`, "data after the JSON object"},
		{"oversized", valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", pay.MaxEventBytes) + `"}`, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pay.DecodeRefundRequested([]byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRefundRejectionAllowsAtMostWhatWasPaidAndNotCredited(t *testing.T) {
	paid := pay.PayOrder{ID: 45, BizOrderNo: 12, BizUserID: 7, Amount: 10_000, Status: pay.Paid, RefundedAmount: 6_000}
	req := func(user, amount int64) pay.RefundRequest {
		return pay.RefundRequest{BizOrderNo: 12, UserID: user, Amount: amount}
	}
	with := func(mutate func(*pay.PayOrder)) pay.PayOrder {
		o := paid
		mutate(&o)
		return o
	}
	tests := []struct {
		name  string
		order pay.PayOrder
		req   pay.RefundRequest
		want  string
	}{
		{"part of what remains", paid, req(7, 1_000), ""},
		{"exactly what remains", paid, req(7, 4_000), ""},
		{"more than remains", paid, req(7, 4_001), pay.RejectExceedsRemaining},
		{"another user", paid, req(8, 1_000), pay.RejectUserMismatch},
		{"refunded in full", with(func(o *pay.PayOrder) { o.Status, o.RefundedAmount = pay.Refunded, o.Amount }), req(7, 1), pay.RejectAlreadyRefunded},
		{"waiting", with(func(o *pay.PayOrder) { o.Status, o.RefundedAmount = pay.Waiting, 0 }), req(7, 1), pay.RejectNotPaid},
		{"closed", with(func(o *pay.PayOrder) { o.Status, o.RefundedAmount = pay.Closed, 0 }), req(7, 1), pay.RejectNotPaid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.order.RefundRejection(tt.req); got != tt.want {
				t.Errorf("RefundRejection = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCreditedPayOrderIsRefundedOnlyWhenItsCreditsReachWhatWasPaid(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	o := pay.PayOrder{Amount: 10_000, Status: pay.Paid}
	for _, step := range []struct {
		amount, total int64
		status        pay.PayOrderStatus
	}{{2_500, 2_500, pay.Paid}, {7_000, 9_500, pay.Paid}, {500, 10_000, pay.Refunded}} {
		o = o.Credited(step.amount, at)
		if o.RefundedAmount != step.total || o.Status != step.status || o.RefundTime == nil || !o.RefundTime.Equal(at) {
			t.Fatalf("after a credit of %d: %+v, want %d refunded, status %d", step.amount, o, step.total, step.status)
		}
	}
}

func TestRefundKindIsWholeOnlyForAllThatWasPaid(t *testing.T) {
	o := pay.PayOrder{Amount: 10_000, Status: pay.Paid}
	for _, tt := range []struct {
		amount int64
		want   string
	}{{10_000, pay.RefundWhole}, {9_999, pay.RefundPart}, {1, pay.RefundPart}} {
		if got := o.RefundKind(tt.amount); got != tt.want {
			t.Errorf("RefundKind(%d) = %q, want %q", tt.amount, got, tt.want)
		}
	}
}
