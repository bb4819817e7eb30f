package bench

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paytrade/paytrade/services/pay/paytest"
)

// keyedVerify returns the median time of checking a password against its
// keyed hash under the tests' pepper: what a payment's check costs at the
// default configuration.
func keyedVerify(tb testing.TB, times int) time.Duration {
	tb.Helper()
	peppers := paytest.Peppers()
	stored, err := peppers.Hash(1, "123")
	if err != nil {
		tb.Fatal(err)
	}
	return medianCheck(tb, times, func() error {
		_, err := peppers.Check(1, stored, "123")
		return err
	})
}

// passwordResult is pay's rate at its default configuration on wallets as
// they were before the pepper (bcrypt at the default cost) and on the same
// wallets once their right password upgraded them to the keyed hash.
type passwordResult struct {
	conc              int
	bcrypt, keyed     run
	upgraded, wallets int
}

// defaultPasswordRates pays n orders of n different buyers with conc
// clients, twice, on a system as shipped: first with each of those
// buyers' wallets holding a bcrypt hash of cost bcrypt.DefaultCost, which
// is what every check cost before the pepper (pay bounds such checks to
// PAY_PASSWORD_CHECKS, its cores, at once, and refuses the rest with 503,
// so conc is that bound); then, the same buyers again, each wallet
// upgraded to the keyed hash by its right password in the first run.
func defaultPasswordRates(t *testing.T, cfg config, n, conc int) passwordResult {
	t.Helper()
	n = min(n, buyers)
	s := startSystem(t, systemConfig{name: "paytrade-password", payEnv: cfg.payEnv, tradeEnv: cfg.tradeEnv})
	defer s.stop(t)
	s.sweepStep(t, cfg.count(warmupCount), conc)

	hash, err := bcrypt.GenerateFromPassword([]byte("123"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	from := s.nextBuyer.Load()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = s.buyers[(int(from)+i)%len(s.buyers)].id
	}
	db := openPool(t, s.payDBURL, 2)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `UPDATE accounts SET password_hash = $1, password_key_id = NULL WHERE user_id = ANY($2)`, string(hash), ids); err != nil {
		t.Fatalf("give the wallets bcrypt hashes: %v", err)
	}

	r := passwordResult{conc: conc, wallets: n}
	orders := s.prepare(t, n)
	r.bcrypt = s.settle(t, orders, s.closedLoop(orders, conc), time.Minute)
	r.bcrypt.conc = conc
	if err := db.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE user_id = ANY($1) AND password_key_id IS NOT NULL`, ids).Scan(&r.upgraded); err != nil {
		t.Fatalf("count upgraded wallets: %v", err)
	}

	s.nextBuyer.Store(from)
	orders = s.prepare(t, n)
	r.keyed = s.settle(t, orders, s.closedLoop(orders, conc), time.Minute)
	r.keyed.conc = conc
	return r
}
