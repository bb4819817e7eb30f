package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/pay"
)

// What pay decided about a refund is what trade's fallback reads: services
// and operators may ask, users may not; a refund not received is 404.
func TestRefundDecisionIsReadByServicesOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 7, 10_000)
	po := h.apply(t, 7, 42, 2_500)
	h.mustCall(t, http.StatusOK, "POST", fmt.Sprintf("/pay-orders/%d", po.ID), userToken(t, 7), map[string]any{"pw": "123"})
	req := pay.RefundRequest{RefundID: uuid.New(), BizOrderNo: 42, UserID: 7, Amount: 2_500, Reason: "user_request", RequestedAt: time.Now()}
	if got, err := h.store.Refund(context.Background(), uuid.NewString(), req, ""); err != nil || got != pay.RefundApplied {
		t.Fatalf("refund: %v, %v", got, err)
	}
	path := "/refunds/" + req.RefundID.String()

	var d pay.RefundDecision
	h.mustCall(t, http.StatusOK, "GET", path, serviceToken(t), nil).decode(t, &d)
	if d.RefundID != req.RefundID || d.Outcome != pay.RefundCredited || d.PayOrderID == nil || *d.PayOrderID != po.ID || d.RefundedAt == nil || d.Amount != 2_500 {
		t.Errorf("decision = %+v, want refund %s credited from pay order %d", d, req.RefundID, po.ID)
	}
	h.mustCall(t, http.StatusOK, "GET", path, operatorToken(t), nil)
	if r := h.call(t, "GET", path, userToken(t, 7), nil); r.status != http.StatusForbidden {
		t.Errorf("a user asks: %d %s, want 403", r.status, r.body)
	}
	if r := h.call(t, "GET", "/refunds/"+uuid.NewString(), serviceToken(t), nil); r.status != http.StatusNotFound || r.code() != "refund_not_found" {
		t.Errorf("a refund pay never received: %d %s, want 404 refund_not_found", r.status, r.body)
	}
	if r := h.call(t, "GET", "/refunds/42", serviceToken(t), nil); r.status != http.StatusBadRequest {
		t.Errorf("not a UUID: %d %s, want 400", r.status, r.body)
	}
	var refunded struct {
		Status     int        `json:"status"`
		RefundTime *time.Time `json:"refundTime"`
	}
	h.mustCall(t, http.StatusOK, "GET", fmt.Sprintf("/pay-orders/%d", po.ID), userToken(t, 7), nil).decode(t, &refunded)
	if refunded.Status != int(pay.Refunded) || refunded.RefundTime == nil {
		t.Errorf("pay order = %+v, want refunded (4) with its refundTime", refunded)
	}
}
