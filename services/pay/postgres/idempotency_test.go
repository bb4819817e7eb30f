package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

func keyed(o pay.PayOrder, key, fingerprint string) pay.Payment {
	return pay.Payment{PayOrderID: o.ID, UserID: o.BizUserID, Password: "123", IdempotencyKey: key, Fingerprint: []byte(fingerprint)}
}

func TestIdempotencyKeyReplaysTheFirstResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)

	first, err := store.Pay(ctx, keyed(order, "k1", "fp"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := store.Pay(ctx, keyed(order, "k1", "fp"))
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if !again.Replayed {
		t.Error("second request with the same key was not marked as a replay")
	}
	if again.PayOrder.ID != first.PayOrder.ID || !again.PayOrder.PaySuccessTime.Equal(*first.PayOrder.PaySuccessTime) {
		t.Errorf("replayed %+v, want %+v", again.PayOrder, first.PayOrder)
	}
	if snap := paytest.Snap(t, pool); snap.Debits != 1 || snap.OutboxEvents != 1 {
		t.Errorf("debits %d, events %d after a replay; want 1 and 1", snap.Debits, snap.OutboxEvents)
	}
}

func TestIdempotencyKeyWithADifferentRequestIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)
	if _, err := store.Pay(ctx, keyed(order, "k1", "fp")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pay(ctx, keyed(order, "k1", "other request")); !errors.Is(err, pay.ErrIdempotencyKeyReused) {
		t.Errorf("same key, different request: %v, want %v", err, pay.ErrIdempotencyKeyReused)
	}
}

func TestIdempotencyKeysAreScopedPerUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	paytest.Funded(t, store, 2, 5_000)
	if _, err := store.Pay(ctx, keyed(paytest.Applied(t, store, 1, 1, 1_000), "shared", "a")); err != nil {
		t.Fatal(err)
	}
	res, err := store.Pay(ctx, keyed(paytest.Applied(t, store, 2, 2, 1_000), "shared", "b"))
	if err != nil || res.Replayed {
		t.Errorf("another user's payment under the same key: replayed=%v err=%v, want a fresh payment", res.Replayed, err)
	}
}

func TestIdempotencyKeyInFlightIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)

	// Hold the pay order's row lock, so the first request takes the key and
	// then waits inside its transaction.
	blocker, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM pay_orders WHERE id = $1 FOR UPDATE`, order.ID); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := store.Pay(ctx, keyed(order, "k1", "fp"))
		first <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "the first request to hold the key", func() bool {
		var n int
		// Only this test's database: tests of other packages run at the
		// same time on the same server and take advisory locks of their own.
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`).Scan(&n)
		return n == 1
	})

	// Bounded: were the key not held, this request would wait on the
	// blocker's row lock, and the test must fail rather than hang.
	secondCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := store.Pay(secondCtx, keyed(order, "k1", "fp")); !errors.Is(err, pay.ErrIdempotencyInFlight) {
		t.Errorf("same key while the first is in flight: %v, want %v", err, pay.ErrIdempotencyInFlight)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Errorf("first request: %v", err)
	}
	if res, err := store.Pay(ctx, keyed(order, "k1", "fp")); err != nil || !res.Replayed {
		t.Errorf("after the first finished: replayed=%v err=%v, want the replay", res.Replayed, err)
	}
}

func TestFailedPaymentLeavesItsIdempotencyKeyFree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)
	p := keyed(order, "k1", "fp")
	p.Password = "wrong"
	if _, err := store.Pay(ctx, p); !errors.Is(err, pay.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if res, err := store.Pay(ctx, keyed(order, "k1", "fp")); err != nil || res.Replayed {
		t.Errorf("retry after a refusal: replayed=%v err=%v, want a fresh successful payment", res.Replayed, err)
	}
}

func TestExpiredIdempotencyKeysArePurged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	if _, err := store.Pay(ctx, keyed(paytest.Applied(t, store, 1, 1, 1_000), "old", "fp")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pay(ctx, keyed(paytest.Applied(t, store, 1, 2, 1_000), "new", "fp")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	n, err := store.PurgeIdempotencyKeys(ctx)
	if err != nil || n != 1 {
		t.Errorf("purged %d keys (err %v), want exactly the one older than 24h", n, err)
	}
}
