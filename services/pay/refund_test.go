package pay_test

import (
	"strings"
	"testing"

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
