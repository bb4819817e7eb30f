package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

func TestUnlockLetsALockedWalletPayAgain(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t, migrations.FS, migrations.Pay)
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	paytest.Funded(t, store, 7, 10_000)
	order := paytest.Applied(t, store, 7, 1, 1_000)
	for range pay.MaxPasswordFailures {
		_, _ = store.Pay(ctx, pay.Payment{PayOrderID: order.ID, UserID: 7, Password: "999999"})
	}
	right := pay.Payment{PayOrderID: order.ID, UserID: 7, Password: "123"}
	if _, err := store.Pay(ctx, right); !errors.Is(err, pay.ErrPasswordLocked) {
		t.Fatalf("after 5 wrong passwords: %v, want %v", err, pay.ErrPasswordLocked)
	}

	stdout, stderr, err := runCtl(t, env(map[string]string{"PAY_DATABASE_URL": dbURL}), "unlock", "-user", "7")
	if err != nil || !strings.Contains(stdout, "wallet of user 7 unlocked") {
		t.Fatalf("unlock = %q, %v (stderr %q); want the wallet unlocked", stdout, err, stderr)
	}
	// A pay that found the wallet locked refuses it without asking for a
	// second (a flood against a locked wallet costs the database little);
	// then it sees the unlock.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := store.Pay(ctx, right)
		if err == nil {
			break
		}
		if !errors.Is(err, pay.ErrPasswordLocked) || time.Now().After(deadline) {
			t.Fatalf("right password after unlock: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, err := runCtl(t, env(map[string]string{"PAY_DATABASE_URL": dbURL}), "unlock", "-user", "8"); !errors.Is(err, pay.ErrAccountNotFound) {
		t.Errorf("unlock a user without a wallet: %v, want %v", err, pay.ErrAccountNotFound)
	}
}
