package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/paytrade/paytrade/internal/systest"
)

// The attack: 20 wrong guesses in a row all answered wrong_password.
// Now the sixth is refused with 423 and Retry-After, pay logs the lock and
// counts it in /metrics.
func TestWrongPaymentPasswordsLockTheWalletLoggedAndCounted(t *testing.T) {
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 10_000)
	_, po := s.orderAndApply(t, trade, b, 1_000)

	codes := make([]string, 0, 20)
	var retryAfter string
	for range 20 {
		req, _ := http.NewRequest(http.MethodPost, systest.PayURL(s.pay.BaseURL, po.ID), strings.NewReader(`{"pw":"000000"}`))
		req.Header.Set("Authorization", "Bearer "+b.tok)
		res, err := client.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		codes = append(codes, res.Status+" "+string(body))
		if res.StatusCode == http.StatusLocked && retryAfter == "" {
			retryAfter = res.Header.Get("Retry-After")
		}
	}
	for i, c := range codes {
		want := "403 Forbidden"
		if i >= 5 {
			want = "423 Locked"
		}
		if !strings.HasPrefix(c, want) {
			t.Errorf("guess %d: %s, want %s", i+1, c, want)
		}
	}
	if retryAfter != "900" {
		t.Errorf("Retry-After %q, want 900 (15 minutes)", retryAfter)
	}
	if !strings.Contains(s.pay.Output(), `"msg":"payment password locked"`) {
		t.Errorf("pay did not log the lock:\n%s", s.pay.Output())
	}
	_, metrics, err := client.Send(t.Context(), http.MethodGet, s.pay.BaseURL+"/metrics", "", "", nil)
	if err != nil || !strings.Contains(string(metrics), "paytrade_payment_password_locks_total{service=\"pay\"} 1\n") {
		t.Errorf("/metrics (err %v) does not count one lock:\n%s", err, metrics)
	}
}
