package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

// The attack: an operator's retry after a timeout credited twice.
func TestDepositIsCreditedOncePerIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 100)
	paytest.Funded(t, store, 2, 100)
	deposit := pay.Deposit{UserID: 1, Amount: 5_000, IdempotencyKey: "topup-1"}

	first, err := store.Deposit(ctx, deposit)
	if err != nil || first.Replayed || first.Account.Balance != 5_100 {
		t.Fatalf("first deposit: %+v, %v; want balance 5100, not replayed", first, err)
	}
	again, err := store.Deposit(ctx, deposit)
	if err != nil || !again.Replayed || again.Account != first.Account {
		t.Errorf("retry: %+v, %v; want the first result replayed", again, err)
	}
	for name, other := range map[string]pay.Deposit{
		"another amount": {UserID: 1, Amount: 5_001, IdempotencyKey: "topup-1"},
		"another wallet": {UserID: 2, Amount: 5_000, IdempotencyKey: "topup-1"},
	} {
		if _, err := store.Deposit(ctx, other); !errors.Is(err, pay.ErrIdempotencyKeyReused) {
			t.Errorf("same key, %s: %v, want %v", name, err, pay.ErrIdempotencyKeyReused)
		}
	}
	if _, err := store.Deposit(ctx, pay.Deposit{UserID: 1, Amount: 5_000}); !errors.Is(err, errInvalid()) {
		t.Errorf("no key: %v, want invalid_request", err)
	}
	if snap := paytest.Snap(t, pool); snap.Balances[1] != 5_100 || snap.Funding != 5_200 {
		t.Errorf("balance %d and funding %d, want 5100 and 5200: credited once", snap.Balances[1], snap.Funding)
	}
}

func TestConcurrentRetriesOfADepositCreditOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 0)
	const retries = 20
	errs := make([]error, retries)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range retries {
		wg.Go(func() {
			<-start
			_, errs[i] = store.Deposit(ctx, pay.Deposit{UserID: 1, Amount: 700, IdempotencyKey: "k"})
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, pay.ErrIdempotencyInFlight) {
			t.Errorf("concurrent retry: %v, want success, a replay or %v", err, pay.ErrIdempotencyInFlight)
		}
	}
	if snap := paytest.Snap(t, pool); snap.Balances[1] != 700 {
		t.Errorf("balance %d after %d concurrent retries, want 700", snap.Balances[1], retries)
	}
}
