package postgres_test

import (
	"context"
	"errors"
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

// TestAPaymentTakesTwoRoundTrips counts, on the wire, what a payment waits
// for: one round trip to count the password check and read the pay order,
// the balance and the Idempotency-Key; one to record the check's outcome
// and, with the right password, to pay — the debit, the pay order, the
// ledger, the outbox and the idempotency record in one statement. A
// refusal costs no more. The first payments warm the connection's
// statement cache up, as a busy pool's connections are.
func TestAPaymentTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, proxy := paytest.NewCountingPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	paytest.Funded(t, store, 1, 10_000)
	paytest.Funded(t, store, 2, 10_000)
	orders := make([]pay.PayOrder, 5)
	for i := range orders {
		orders[i] = paytest.Applied(t, store, 1, int64(100+i), 1_000)
	}
	others := paytest.Applied(t, store, 2, 200, 1_000)
	tooDear := paytest.Applied(t, store, 1, 300, 1_000_000)
	wrong := payment(orders[4], "999999")
	for _, warm := range []pay.Payment{keyed(orders[0], "warm", "fp"), wrong, payment(tooDear, "123")} {
		_, _ = store.Pay(ctx, warm)
	}

	for _, tc := range []struct {
		name string
		p    pay.Payment
		want error
	}{
		{"paid under an Idempotency-Key", keyed(orders[1], "k1", "fp"), nil},
		{"paid with no key", payment(orders[2], "123"), nil},
		{"wrong password", wrong, pay.ErrWrongPassword},
		{"more than the balance", payment(tooDear, "123"), pay.ErrInsufficientFunds},
		{"another user's pay order", payment(others, "123"), pay.ErrPayOrderNotFound},
		{"paid already", payment(orders[2], "123"), pay.ErrAlreadyPaid},
	} {
		if tc.name == "another user's pay order" {
			tc.p.UserID = 1
		}
		var err error
		n := proxy.CountRoundTrips(func() { _, err = store.Pay(ctx, tc.p) })
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) || n > 2 {
			t.Errorf("%s: %v in %d round trips, want %v in at most 2", tc.name, err, n, tc.want)
		}
	}
}

// A wallet whose five password checks are all in progress in this pay is
// refused 429 without a round trip: a flood from one wallet leaves the
// pooled connections, and the database, to other users. The five are
// bcrypt checks, slow enough to be caught in progress.
func TestAWalletsSixthCheckInProgressIsRefusedWithoutARoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, proxy := paytest.NewCountingPool(t)
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PasswordChecks = pay.MaxPasswordFailures
	store := postgres.New(pool, cfg)
	paytest.Funded(t, store, 1, 10_000)
	withBcrypt(t, pool, 1, "123", 11)
	order := paytest.Applied(t, store, 1, 1, 1_000)

	done := make(chan error, pay.MaxPasswordFailures)
	for range pay.MaxPasswordFailures {
		go func() {
			_, err := store.Pay(ctx, payment(order, "999999"))
			done <- err
		}()
	}
	waitForPending(t, pool, pay.MaxPasswordFailures)
	var err error
	if n := proxy.CountRoundTrips(func() { _, err = store.Pay(ctx, payment(order, "999999")) }); !errors.Is(err, pay.ErrPasswordChecksBusy) || n != 0 {
		t.Errorf("a sixth check while five are in progress: %v in %d round trips, want %v in none", err, n, pay.ErrPasswordChecksBusy)
	}
	for range pay.MaxPasswordFailures {
		if err := <-done; !errors.Is(err, pay.ErrWrongPassword) && !errors.Is(err, pay.ErrPasswordLocked) {
			t.Errorf("one of the five: %v, want %v", err, pay.ErrWrongPassword)
		}
	}
}
