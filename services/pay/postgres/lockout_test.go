package postgres_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// clock is a store's time, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lockout is a store on its own clock that counts the locks it reports,
// with user 1's wallet (password "123") and a pay order of theirs.
type lockout struct {
	store *postgres.Store
	clock *clock
	locks *atomic.Int64
	pool  *pgxpool.Pool
	order pay.PayOrder
}

func newLockout(t *testing.T) lockout {
	t.Helper()
	l := lockout{clock: &clock{now: time.Now()}, locks: &atomic.Int64{}, pool: paytest.NewPool(t)}
	cfg := paytest.StoreConfig("pay.topic")
	cfg.Now = l.clock.Now
	cfg.PasswordLocked = func(pay.PasswordLock) { l.locks.Add(1) }
	t.Cleanup(func() { paytest.CheckInvariants(t, l.pool) })
	l.store = postgres.New(l.pool, cfg)
	paytest.Funded(t, l.store, 1, 10_000)
	l.order = paytest.Applied(t, l.store, 1, 1, 1_000)
	return l
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
	store, clock, locks, order := l.store, l.clock, l.locks, l.order
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
		clock.Add(lock - time.Second)
		if _, err := store.Pay(ctx, payment(order, "123")); retryAfter(t, err) != time.Second {
			t.Errorf("lock %d, a second before its end: %v, want Retry-After 1s", i+1, err)
		}
		clock.Add(time.Second)
	}
	// The lock is over: the right password pays (a pay order applied for
	// now, the first having expired meanwhile), and resets the doubling.
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

// Fifty guesses sent at once are checked no more than five sent one by one.
func TestConcurrentWrongPasswordsAreBoundedLikeSequentialOnes(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	store, order := l.store, l.order
	const guesses = 50
	var checked, locked atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range guesses {
		wg.Go(func() {
			<-start
			_, err := store.Pay(context.Background(), payment(order, "999999"))
			switch {
			case errors.Is(err, pay.ErrWrongPassword):
				checked.Add(1)
			case errors.Is(err, pay.ErrPasswordLocked):
				locked.Add(1)
			default:
				t.Errorf("guess: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if checked.Load() != pay.MaxPasswordFailures || locked.Load() != guesses-pay.MaxPasswordFailures {
		t.Errorf("%d guesses checked and %d refused as locked, want %d and %d",
			checked.Load(), locked.Load(), pay.MaxPasswordFailures, guesses-pay.MaxPasswordFailures)
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
	cfg := paytest.StoreConfig("pay.topic")
	cfg.BcryptCost = 10
	store := postgres.New(pool, cfg)
	paytest.Funded(t, store, 1, 10_000)
	paytest.Funded(t, store, 2, 10_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)

	const flood = 3
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
// begun now by the store's clock, as a pay process killed in the middle of
// bcrypt does: nobody will ever record their outcome.
func leaveChecksOfAKilledPay(t *testing.T, l lockout, n int) {
	t.Helper()
	checks := map[string]time.Time{}
	for range n {
		checks[uuid.NewString()] = l.clock.Now()
	}
	if _, err := l.pool.Exec(context.Background(), `
		INSERT INTO payment_password_attempts (user_id, checks) VALUES (1, $1)
		ON CONFLICT (user_id) DO UPDATE SET checks = EXCLUDED.checks`, checks); err != nil {
		t.Fatal(err)
	}
}

// A pay killed while checking five passwords of one wallet leaves all five
// of its attempts taken. Seconds later the owner's right password goes
// through at once: it is not refused as locked, nor kept out for a minute.
func TestChecksLeftByAKilledPayLapseWithinSecondsAndTheOwnerPays(t *testing.T) {
	t.Parallel()
	l := newLockout(t)
	leaveChecksOfAKilledPay(t, l, pay.MaxPasswordFailures)
	l.clock.Add(11 * time.Second)
	began := time.Now()
	if _, err := l.store.Pay(context.Background(), payment(l.order, "123")); err != nil {
		t.Fatalf("right password 11s after a pay was killed mid-check: %v, want paid", err)
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("the payment waited %v for checks that died with their process", waited)
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
	leaveChecksOfAKilledPay(t, l, pay.MaxPasswordFailures-1)
	l.clock.Add(5 * time.Second)
	if _, err := l.store.Pay(ctx, payment(l.order, "123")); err != nil {
		t.Fatalf("payment through the one free attempt: %v", err)
	}
	l.clock.Add(6 * time.Second)
	next := paytest.Applied(t, l.store, 1, 2, 1_000)
	if _, err := l.store.Pay(ctx, payment(next, "123")); err != nil {
		t.Fatalf("payment after the killed pay's checks lapsed: %v", err)
	}
	if n := checksInProgress(t, l.pool); n != 0 {
		t.Errorf("%d checks in progress after the dead ones lapsed and two payments ended, want 0", n)
	}
}
