package postgres_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// lockout is a store that counts the locks it reports, with user 1's
// wallet (password "123") and a pay order of theirs.
type lockout struct {
	store *postgres.Store
	locks *atomic.Int64
	pool  *pgxpool.Pool
	order pay.PayOrder
}

func newLockout(t *testing.T) lockout {
	t.Helper()
	l := lockout{locks: &atomic.Int64{}, pool: paytest.NewPool(t)}
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PasswordLocked = func(pay.PasswordLock) { l.locks.Add(1) }
	t.Cleanup(func() { paytest.CheckInvariants(t, l.pool) })
	l.store = postgres.New(l.pool, cfg)
	paytest.Funded(t, l.store, 1, 10_000)
	l.order = paytest.Applied(t, l.store, 1, 1, 1_000)
	return l
}

// pass lets d go by for user 1's lock, on the database's clock that the
// lockout reads: the lock ends d sooner. The stores forget the locks they
// saw, as they do once a second has passed.
func (l lockout) pass(t *testing.T, d time.Duration, stores ...*postgres.Store) {
	t.Helper()
	if _, err := l.pool.Exec(context.Background(), `
		UPDATE payment_password_attempts SET locked_until = locked_until - $1::interval WHERE user_id = 1`, d); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(stores, l.store) {
		s.ForgetSeenLocks()
	}
}

// retryAfter is how long a locked refusal asks the caller to wait.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || !errors.Is(err, pay.ErrPasswordLocked) {
		t.Fatalf("err = %v, want %v", err, pay.ErrPasswordLocked)
	}
	return p.RetryAfter
}

func guessWrong(t *testing.T, store *postgres.Store, order pay.PayOrder, n int) {
	t.Helper()
	for i := range n {
		if _, err := store.Pay(context.Background(), payment(order, "999999")); !errors.Is(err, pay.ErrWrongPassword) {
			t.Fatalf("wrong guess %d: %v, want %v", i+1, err, pay.ErrWrongPassword)
		}
	}
}

func TestFiveWrongPasswordsInARowLockTheWalletFifteenMinutesDoublingToADay(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	store, locks, order := l.store, l.locks, l.order
	ctx := context.Background()

	want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, lock := range want {
		guessWrong(t, store, order, pay.MaxPasswordFailures)
		// Locked: even the right password is refused, unchecked.
		_, err := store.Pay(ctx, payment(order, "123"))
		if got := retryAfter(t, err); got != lock {
			t.Fatalf("lock %d: Retry-After %v, want %v", i+1, got, lock)
		}
		if got := locks.Load(); got != int64(i+1) {
			t.Errorf("lock %d: %d locks reported, want %d", i+1, got, i+1)
		}
		l.pass(t, lock-time.Second)
		if _, err := store.Pay(ctx, payment(order, "123")); retryAfter(t, err) != time.Second {
			t.Errorf("lock %d, a second before its end: %v, want Retry-After 1s", i+1, err)
		}
		l.pass(t, time.Second)
	}
	// The lock is over: the right password pays, and resets the doubling.
	if _, err := store.Pay(ctx, payment(paytest.Applied(t, store, 1, 3, 1_000), "123")); err != nil {
		t.Fatalf("right password after the last lock: %v", err)
	}
	other := paytest.Applied(t, store, 1, 2, 1_000)
	guessWrong(t, store, other, pay.MaxPasswordFailures)
	if _, err := store.Pay(ctx, payment(other, "123")); retryAfter(t, err) != pay.FirstLock {
		t.Errorf("after a right password the next lock is %v, want the first, %v", err, pay.FirstLock)
	}
}

func TestRightPasswordResetsTheCountOfWrongOnes(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	store, locks, order := l.store, l.locks, l.order
	ctx := context.Background()
	guessWrong(t, store, order, pay.MaxPasswordFailures-1)
	// Right, though the payment is refused: the count starts again.
	if _, err := store.Pay(ctx, payment(paytest.Applied(t, store, 1, 2, 1_000_000), "123")); !errors.Is(err, pay.ErrInsufficientFunds) {
		t.Fatalf("right password, too little money: %v", err)
	}
	guessWrong(t, store, order, pay.MaxPasswordFailures-1)
	if _, err := store.Pay(ctx, payment(order, "123")); err != nil {
		t.Errorf("after 4 wrong, 1 right, 4 wrong: %v, want the payment", err)
	}
	if locks.Load() != 0 {
		t.Errorf("%d locks, want none", locks.Load())
	}
}

// Fifty guesses sent at once are checked no more than five sent one by
// one; the others are refused as locked, or as busy while the five are
// being checked.
func TestConcurrentWrongPasswordsAreBoundedLikeSequentialOnes(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	const guesses = 50
	var got answers
	got.send(t, l.store, payment(l.order, "999999"), guesses)
	got.wait.Wait()
	if got.by["wrong_password"] != pay.MaxPasswordFailures ||
		got.by["payment_password_locked"]+got.by["password_checks_busy"] != guesses-pay.MaxPasswordFailures {
		t.Errorf("answers %v, want %d wrong_password and %d locked or busy", got.by, pay.MaxPasswordFailures, guesses-pay.MaxPasswordFailures)
	}
}

func TestLockSurvivesARestartAndIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	first, pool, order := l.store, l.pool, l.order
	guessWrong(t, first, order, pay.MaxPasswordFailures)
	// Another store on the same database: a replica, or pay after a restart.
	replica := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	if _, err := replica.Pay(context.Background(), payment(order, "123")); !errors.Is(err, pay.ErrPasswordLocked) {
		t.Errorf("the other replica: %v, want %v", err, pay.ErrPasswordLocked)
	}
}

func TestOperatorLiftsALock(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	store, order := l.store, l.order
	ctx := context.Background()
	guessWrong(t, store, order, pay.MaxPasswordFailures)
	if was, err := store.LiftPasswordLock(ctx, 1); err != nil || !was {
		t.Fatalf("lift: was locked %v, %v; want true", was, err)
	}
	if _, err := store.Pay(ctx, payment(order, "123")); err != nil {
		t.Errorf("after the lock was lifted: %v", err)
	}
	if was, err := store.LiftPasswordLock(ctx, 1); err != nil || was {
		t.Errorf("lift again: was locked %v, %v; want false", was, err)
	}
	if _, err := store.LiftPasswordLock(ctx, 2); !errors.Is(err, pay.ErrAccountNotFound) {
		t.Errorf("lift a wallet nobody has: %v, want %v", err, pay.ErrAccountNotFound)
	}
}

// TestAFloodAgainstALockedWalletCostsTheDatabaseAStatementASecond floods a
// locked wallet with payments: the first finds the lock in the database,
// the others are refused as locked, with the lock's Retry-After, without a
// round trip, until a second has passed; a lock lifted here is forgotten
// at once.
func TestAFloodAgainstALockedWalletCostsTheDatabaseAStatementASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, proxy := paytest.NewCountingPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	paytest.Funded(t, store, 1, 10_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)
	guessWrong(t, store, order, pay.MaxPasswordFailures)

	const flood = 50
	trips := proxy.CountRoundTrips(func() {
		for range flood {
			_, err := store.Pay(ctx, payment(order, "123"))
			if got := retryAfter(t, err); got != pay.FirstLock {
				t.Fatalf("Retry-After %v, want the lock's %v", got, pay.FirstLock)
			}
		}
	})
	if trips > 1 {
		t.Errorf("%d payments against a locked wallet took %d round trips, want 1", flood, trips)
	}
	time.Sleep(time.Second)
	if trips := proxy.CountRoundTrips(func() { _, _ = store.Pay(ctx, payment(order, "123")) }); trips != 1 {
		t.Errorf("a second later, a payment took %d round trips, want 1: the lock asked again", trips)
	}
	if was, err := store.LiftPasswordLock(ctx, 1); err != nil || !was {
		t.Fatalf("lift: was locked %v, %v; want true", was, err)
	}
	if _, err := store.Pay(ctx, payment(order, "123")); err != nil {
		t.Errorf("right after the lock was lifted here: %v, want the payment", err)
	}
}

// The oracle: with a key the user once completed, a wrong guess
// answered 422 and the right one 200, without any password check.
func TestReplayedIdempotencyKeyIsNoPasswordOracle(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	store, order := l.store, l.order
	ctx := context.Background()
	paid := keyed(order, "k1", "POST /pay-orders/1")
	if _, err := store.Pay(ctx, paid); err != nil {
		t.Fatal(err)
	}
	guess := paid
	guess.Password = "999999"
	for i := range pay.MaxPasswordFailures {
		if _, err := store.Pay(ctx, guess); !errors.Is(err, pay.ErrWrongPassword) {
			t.Fatalf("replayed key, wrong password %d: %v, want %v", i+1, err, pay.ErrWrongPassword)
		}
	}
	// Each guess counted: the right password now meets the lock too.
	if _, err := store.Pay(ctx, paid); !errors.Is(err, pay.ErrPasswordLocked) {
		t.Errorf("replayed key, right password, after 5 wrong: %v, want %v", err, pay.ErrPasswordLocked)
	}
}

// A flood of wrong passwords at a bcrypt cost that takes a while holds no
// connection of a one-connection pool while bcrypt runs: another user's
// read is answered before any guess is. Were bcrypt run inside the
// payment's transaction, the read would queue behind the guess holding the
// only connection.
func TestWrongPasswordFloodLeavesOtherUsersTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.NewDatabase(t, migrations.FS, migrations.Pay)
	pool, err := database.Open(ctx, url+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	const flood = 3
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PasswordChecks = flood
	store := postgres.New(pool, cfg)
	paytest.Funded(t, store, 1, 10_000)
	paytest.Funded(t, store, 2, 10_000)
	withBcrypt(t, pool, 1, "123", 10)
	order := paytest.Applied(t, store, 1, 1, 1_000)
	// The connection warm, as a busy pool's are: its statements prepared.
	if _, err := store.Pay(ctx, payment(paytest.Applied(t, store, 2, 2, 1_000), "123")); err != nil {
		t.Fatal(err)
	}

	answered := make(chan time.Time, flood)
	for range flood {
		go func() {
			_, _ = store.Pay(ctx, payment(order, "999999"))
			answered <- time.Now()
		}()
	}
	waitForPending(t, pool, flood)
	if _, err := store.Account(ctx, 2); err != nil {
		t.Fatal(err)
	}
	read := time.Now()
	for range flood {
		if guess := <-answered; guess.Before(read) {
			t.Fatalf("a guess was answered %v before another user's read: the read waited for bcrypt", read.Sub(guess))
		}
	}
}

// waitForPending waits until n password checks are counted and running.
func waitForPending(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := checksInProgress(t, pool)
		if pending >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d password checks pending after 10s, want %d", pending, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checksInProgress counts the password checks the database holds as in
// progress, over every wallet.
func checksInProgress(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `
		SELECT count(*) FROM payment_password_attempts, jsonb_object_keys(checks)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// leaveChecksOfAKilledPay leaves n checks of user 1's wallet in progress,
// begun ago on the database's clock, as a pay process killed in the middle
// of a check does: nobody will ever record their outcome.
func leaveChecksOfAKilledPay(t *testing.T, pool *pgxpool.Pool, n int, ago time.Duration) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `
		INSERT INTO payment_password_attempts (user_id, checks)
		SELECT 1, jsonb_object_agg(gen_random_uuid()::text, now() - $2::interval) FROM generate_series(1, $1)
		ON CONFLICT (user_id) DO UPDATE SET checks = EXCLUDED.checks`, n, ago); err != nil {
		t.Fatal(err)
	}
}

// ageChecks makes every check of user 1's wallet in progress begin d
// earlier on the database's clock.
func ageChecks(t *testing.T, pool *pgxpool.Pool, d time.Duration) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `
		UPDATE payment_password_attempts SET checks = COALESCE((
			SELECT jsonb_object_agg(key, (value #>> '{}')::timestamptz - $1::interval) FROM jsonb_each(checks)), '{}')
		WHERE user_id = 1`, d); err != nil {
		t.Fatal(err)
	}
}

// A pay killed while checking five passwords of one wallet leaves all five
// of its attempts taken. Seconds later the owner's right password goes
// through: it is not refused as locked or busy.
func TestChecksLeftByAKilledPayLapseWithinSecondsAndTheOwnerPays(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	leaveChecksOfAKilledPay(t, l.pool, pay.MaxPasswordFailures, 11*time.Second)
	if _, err := l.store.Pay(context.Background(), payment(l.order, "123")); err != nil {
		t.Fatalf("right password 11s after a pay was killed mid-check: %v, want paid", err)
	}
	if n := checksInProgress(t, l.pool); n != 0 {
		t.Errorf("%d checks in progress after the payment, want 0", n)
	}
}

// Each check lapses on its own clock: a wallet that keeps paying through
// its one free attempt does not keep the four a killed pay left alive by
// refreshing one shared time, as a single pending counter did.
func TestChecksLeftByAKilledPayLapseWhileTheWalletKeepsPaying(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	ctx := context.Background()
	leaveChecksOfAKilledPay(t, l.pool, pay.MaxPasswordFailures-1, 5*time.Second)
	if _, err := l.store.Pay(ctx, payment(l.order, "123")); err != nil {
		t.Fatalf("payment through the one free attempt: %v", err)
	}
	ageChecks(t, l.pool, 6*time.Second)
	next := paytest.Applied(t, l.store, 1, 2, 1_000)
	if _, err := l.store.Pay(ctx, payment(next, "123")); err != nil {
		t.Fatalf("payment after the killed pay's checks lapsed: %v", err)
	}
	if n := checksInProgress(t, l.pool); n != 0 {
		t.Errorf("%d checks in progress after the dead ones lapsed and two payments ended, want 0", n)
	}
}

// withBcrypt gives userID's wallet a bcrypt hash of password at cost, as
// a wallet opened before the pepper has: a check that takes a while.
func withBcrypt(t *testing.T, pool *pgxpool.Pool, userID int64, password string, cost int) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `
		UPDATE accounts SET password_hash = $2, password_key_id = NULL WHERE user_id = $1`, userID, string(hash)); err != nil {
		t.Fatal(err)
	}
	return string(hash)
}

// answers counts the answers to payments by kind of refusal.
type answers struct {
	mu   sync.Mutex
	by   map[string]int
	wait sync.WaitGroup
}

// send pays p through store n times at once, counting the answers.
func (a *answers) send(t *testing.T, store *postgres.Store, p pay.Payment, n int) {
	t.Helper()
	for range n {
		a.wait.Go(func() {
			_, err := store.Pay(context.Background(), p)
			code := "paid"
			if err != nil {
				pe, ok := problem.As(err)
				if !ok {
					t.Errorf("payment: %v", err)
					return
				}
				if pe.RetryAfter <= 0 && (pe.Kind == problem.Locked || pe.Kind == problem.Busy) {
					t.Errorf("%v without a Retry-After", err)
				}
				code = pe.Code
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.by == nil {
				a.by = map[string]int{}
			}
			a.by[code]++
		})
	}
}

// Two pays on one database whose clocks are a minute apart each flood one
// wallet with wrong passwords while the other's checks are in flight: in
// each lock window five guesses are checked, no more, and every other
// guess is refused as locked or busy. Were a check's lapse read on a pay's
// own clock, the pay a minute ahead would take the other's checks for
// lapsed and check five guesses of its own.
func TestTwoPaysWhoseClocksDifferByAMinuteCheckFiveGuessesPerLockWindow(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	stores := make([]*postgres.Store, 2)
	for i, skew := range []time.Duration{0, time.Minute} {
		cfg := paytest.StoreConfig("pay.topic")
		cfg.Now = func() time.Time { return time.Now().Add(skew) }
		cfg.PasswordChecks = 4 * pay.MaxPasswordFailures // no bound of pay's own in the way
		cfg.PasswordLocked = func(pay.PasswordLock) { l.locks.Add(1) }
		stores[i] = postgres.New(l.pool, cfg)
	}
	// bcrypt at cost 6: each check is in flight long enough for the
	// other pay's flood, sent at the same moment, to meet it.
	withBcrypt(t, l.pool, 1, "123", 6)
	guess := payment(l.order, "999999")
	for window, lock := range pay.LockLadder()[:2] {
		var got answers
		got.send(t, stores[0], guess, 2*pay.MaxPasswordFailures)
		got.send(t, stores[1], guess, 2*pay.MaxPasswordFailures)
		got.wait.Wait()
		if got.by["wrong_password"] != pay.MaxPasswordFailures ||
			got.by["wrong_password"]+got.by["payment_password_locked"]+got.by["password_checks_busy"] != 4*pay.MaxPasswordFailures {
			t.Errorf("lock window %d: answers %v, want %d wrong_password and the rest locked or busy", window+1, got.by, pay.MaxPasswordFailures)
		}
		if n := l.locks.Load(); n != int64(window+1) {
			t.Errorf("lock window %d: %d locks reported, want %d", window+1, n, window+1)
		}
		_, err := stores[1].Pay(context.Background(), payment(l.order, "123"))
		if got := retryAfter(t, err); got != lock {
			t.Errorf("lock window %d: Retry-After %v, want %v", window+1, got, lock)
		}
		l.pass(t, lock, stores...)
	}
}

// A flood of payments from one wallet whose five checks are all in flight
// (on another pay) is refused at once, busy, with Retry-After — none waits
// for a check to end — and another user's payment goes through meanwhile.
func TestAFloodFromOneWalletIsRefusedAtOnceWhileOtherUsersPay(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	paytest.Funded(t, l.store, 2, 10_000)
	other := paytest.Applied(t, l.store, 2, 2, 1_000)
	leaveChecksOfAKilledPay(t, l.pool, pay.MaxPasswordFailures, 0)

	var flood answers
	flood.send(t, l.store, payment(l.order, "123"), 20)
	if _, err := l.store.Pay(context.Background(), payment(other, "123")); err != nil {
		t.Errorf("another user's payment during the flood: %v, want paid", err)
	}
	flood.wait.Wait()
	if flood.by["password_checks_busy"] != 20 {
		t.Errorf("the flood's answers: %v, want all 20 password_checks_busy", flood.by)
	}
	if n := checksInProgress(t, l.pool); n != pay.MaxPasswordFailures {
		t.Errorf("%d checks in progress after the flood, want the %d it found", n, pay.MaxPasswordFailures)
	}
}

// With pay at its bound of costly checks (one, here), a payment that needs
// another is refused at once, busy, and lets go of its wallet's attempt:
// of four wallets' bcrypt checks sent at once, one runs at a time.
func TestACostlyCheckPastPaysBoundIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	pool := paytest.NewPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PasswordChecks = 1
	store := postgres.New(pool, cfg)
	const wallets = 4
	var payments []pay.Payment
	for user := int64(1); user <= wallets; user++ {
		paytest.Funded(t, store, user, 10_000)
		// Cost 10, tens of milliseconds: the four checks overlap even
		// when a busy machine spreads their first round trips apart.
		withBcrypt(t, pool, user, "123", 10)
		payments = append(payments, payment(paytest.Applied(t, store, user, user, 1_000), "123"))
	}
	var got answers
	for _, p := range payments {
		got.send(t, store, p, 1)
	}
	got.wait.Wait()
	if got.by["paid"] < 1 || got.by["password_checks_busy"] < 1 || got.by["paid"]+got.by["password_checks_busy"] != wallets {
		t.Errorf("answers %v, want some paid and the others password_checks_busy", got.by)
	}
	if n := checksInProgress(t, pool); n != 0 {
		t.Errorf("%d checks in progress after every answer, want 0", n)
	}
}

// A check that outlasts its lease gives its attempt up, and another guess
// may take it; so a check is answered only if it still holds its attempt
// when its outcome is recorded. Here every check in flight is made to
// outlast its lease while twenty guesses are checked at once: however the
// checks and the lapses interleave, no more than five guesses are
// answered wrong, and each other one is refused as busy or locked.
func TestChecksThatOutlastTheirLeaseAreNotAnsweredSoNoSixthGuessIsChecked(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PasswordChecks = 20 // no bound of pay's own in the way
	store := postgres.New(l.pool, cfg)
	withBcrypt(t, l.pool, 1, "123", 8)
	var got answers
	for range 20 {
		// Every check in flight began 11 s ago, by the database's clock.
		ageChecks(t, l.pool, 11*time.Second)
		got.send(t, store, payment(l.order, "999999"), 1)
	}
	flooded := make(chan struct{})
	go func() { got.wait.Wait(); close(flooded) }()
	for done := false; !done; {
		select {
		case <-flooded:
			done = true
		default:
			ageChecks(t, l.pool, 11*time.Second)
		}
	}
	t.Logf("answers %v", got.by)
	if got.by["wrong_password"] > pay.MaxPasswordFailures ||
		got.by["wrong_password"]+got.by["password_checks_busy"]+got.by["payment_password_locked"] != 20 {
		t.Errorf("answers %v, want at most %d wrong_password and the rest busy or locked", got.by, pay.MaxPasswordFailures)
	}
}
