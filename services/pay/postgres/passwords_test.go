package postgres_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// storedPassword reads what the database holds of userID's password.
func storedPassword(t *testing.T, pool *pgxpool.Pool, userID int64) pay.StoredPassword {
	t.Helper()
	var p pay.StoredPassword
	var keyID *string
	if err := pool.QueryRow(context.Background(), `SELECT password_hash, password_key_id FROM accounts WHERE user_id = $1`, userID).
		Scan(&p.Hash, &keyID); err != nil {
		t.Fatal(err)
	}
	if keyID != nil {
		p.KeyID = *keyID
	}
	return p
}

// storeWith is a store on pool whose peppers are given as PAY_PASSWORD_PEPPERS reads them.
func storeWith(t *testing.T, pool *pgxpool.Pool, peppers string) *postgres.Store {
	t.Helper()
	cfg := paytest.StoreConfig("pay.topic")
	var err error
	if cfg.Peppers, err = pay.ParsePeppers(peppers); err != nil {
		t.Fatal(err)
	}
	return postgres.New(pool, cfg)
}

func TestANewWalletsPasswordIsStoredAsAHashUnderTheCurrentPepper(t *testing.T) {
	t.Parallel()
	pool := paytest.NewPool(t)
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	paytest.Funded(t, store, 1, 1_000)
	got := storedPassword(t, pool, 1)
	want, err := paytest.Peppers().Hash(1, "123")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("stored %+v, want %+v", got, want)
	}
}

// A wallet opened before the pepper holds a bcrypt hash: a wrong password
// leaves it as it is, the right one pays and rehashes it under the pepper,
// and the wallet pays with the peppered hash from then on.
func TestABcryptHashPaysAndIsRehashedUnderThePepperOnTheNextRightPassword(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	legacy := withBcrypt(t, l.pool, 1, "123", 4)
	guessWrong(t, l.store, l.order, 1)
	if got := storedPassword(t, l.pool, 1); got != (pay.StoredPassword{Hash: legacy}) {
		t.Fatalf("after a wrong password: %+v, want the bcrypt hash untouched", got)
	}
	if _, err := l.store.Pay(context.Background(), payment(l.order, "123")); err != nil {
		t.Fatalf("right password against the bcrypt hash: %v", err)
	}
	want, _ := paytest.Peppers().Hash(1, "123")
	if got := storedPassword(t, l.pool, 1); got != want {
		t.Fatalf("after the right password: %+v, want %+v", got, want)
	}
	if _, err := l.store.Pay(context.Background(), payment(paytest.Applied(t, l.store, 1, 2, 1_000), "123")); err != nil {
		t.Errorf("right password against the rehashed one: %v", err)
	}
}

// The pepper rotates: a pay given a new pepper, the old one after it,
// checks a hash under the old one and rekeys it on the next right
// password, so that a pay given only the new pepper takes it.
func TestAHashUnderAnOlderPepperPaysAndIsRekeyedOnTheNextRightPassword(t *testing.T) {
	t.Parallel()
	pool := paytest.NewPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	old := "old:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32)))
	current := "new:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 32)))
	before := storeWith(t, pool, old)
	paytest.Funded(t, before, 1, 10_000)
	underOld := storedPassword(t, pool, 1)

	rotated := storeWith(t, pool, current+","+old)
	order := paytest.Applied(t, rotated, 1, 1, 1_000)
	guessWrong(t, rotated, order, 1)
	if got := storedPassword(t, pool, 1); got != underOld {
		t.Fatalf("after a wrong password: %+v, want the hash under the old pepper untouched", got)
	}
	if _, err := rotated.Pay(context.Background(), payment(order, "123")); err != nil {
		t.Fatalf("right password, hash under the old pepper: %v", err)
	}
	if got := storedPassword(t, pool, 1); got.KeyID != "new" {
		t.Fatalf("after the right password: key id %q, want new", got.KeyID)
	}
	only := storeWith(t, pool, current)
	if _, err := only.Pay(context.Background(), payment(paytest.Applied(t, only, 1, 2, 1_000), "123")); err != nil {
		t.Errorf("a pay given only the new pepper: %v, want paid", err)
	}
	// A pay that lost the pepper a hash is under cannot check it: an
	// error, never a wrong password, and no attempt is held.
	if _, err := before.Pay(context.Background(), payment(paytest.Applied(t, before, 1, 3, 1_000), "123")); err == nil || errors.Is(err, pay.ErrWrongPassword) {
		t.Errorf("a pay without the hash's pepper: %v, want an error that is no wrong password", err)
	}
	if n := checksInProgress(t, pool); n != 0 {
		t.Errorf("%d checks in progress, want 0", n)
	}
}
