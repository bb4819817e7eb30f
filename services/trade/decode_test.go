package trade_test

import (
	"strings"
	"testing"

	"github.com/paytrade/paytrade/services/trade"
)

func TestDecodeRefundSuccessRefusesWhatCanNeverBeApplied(t *testing.T) {
	const valid = `{"refundId":"0193b2c4-1f2e-7a00-8000-000000000001","bizOrderNo":12,"payOrderId":3,"userId":7,"amount":2500,"refundedTotal":7500,"refundedAt":"2026-12-03T10:00:00Z"}`
	if c, err := trade.DecodeRefundSuccess([]byte(valid)); err != nil || c.BizOrderNo != 12 || c.PayOrderID != 3 || c.Amount != 2500 {
		t.Fatalf("valid body: %+v, %v", c, err)
	}
	tests := []struct{ name, body, want string }{
		{"not JSON", `refunded`, "invalid character"},
		{"JSON null", `null`, "not a JSON object"},
		{"missing fields", `{"bizOrderNo":12}`, "lacks [amount payOrderId refundId refundedAt refundedTotal userId]"},
		{"zero pay order", strings.Replace(valid, `"payOrderId":3`, `"payOrderId":0`, 1), "payOrderId 0 is not positive"},
		{"negative amount", strings.Replace(valid, `"amount":2500`, `"amount":-1`, 1), "amount -1 is not positive"},
		{"total below its amount", strings.Replace(valid, `"refundedTotal":7500`, `"refundedTotal":2000`, 1), "refundedTotal 2000 is below its amount 2500"},
		{"trailing data", valid + `{}`, "data after the JSON object"},
		{"oversized", valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", trade.MaxEventBytes) + `"}`, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := trade.DecodeRefundSuccess([]byte(tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
