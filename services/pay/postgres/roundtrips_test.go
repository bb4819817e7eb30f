package postgres_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// TestARefundCreditTakesTwoRoundTrips counts, on the wire, what pay's
// refund consumer waits for before it acks a refund.requested: one round
// trip to record the message and read the pay order under its lock, one to
// carry the decision out and commit — a credit, a rejection or a copy.
// The first refund warms the connection's statement cache up, as a busy
// pool's connections are.
func TestARefundCreditTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	pool, proxy := paytest.NewCountingPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	po := paidOrder(t, store)
	warm := partOf(po, 100)
	warmID := uuid.NewString()
	refund(t, store, warmID, warm)
	refund(t, store, warmID, warm)
	refund(t, store, uuid.NewString(), partOf(po, po.Amount))

	part := partOf(po, 500)
	id := uuid.NewString()
	for _, tc := range []struct {
		name      string
		messageID string
		req       pay.RefundRequest
		want      pay.RefundResult
	}{
		{"credit", id, part, pay.RefundApplied},
		{"redelivered copy", id, part, pay.RefundDuplicate},
		{"same refund under another message", uuid.NewString(), part, pay.RefundDuplicate},
		{"more than remains", uuid.NewString(), partOf(po, po.Amount), pay.RefundRefused},
		{"asked by the fallback, no message", "", partOf(po, 200), pay.RefundApplied},
	} {
		var got pay.RefundResult
		n := proxy.CountRoundTrips(func() { got = refund(t, store, tc.messageID, tc.req) })
		if got != tc.want || n > 2 {
			t.Errorf("%s: %v in %d round trips, want %v in at most 2", tc.name, got, n, tc.want)
		}
	}
}
