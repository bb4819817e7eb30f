package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
)

// checkLease is how long a counted check holds one of the wallet's
// attempts, by the database's clock: a check whose process died lets go of
// it then. A check not recorded within it is not answered, so a slow check
// that lapsed never adds a sixth guess to the five a wallet may have checked.
const checkLease = 10 * time.Second

// liveChecks is the SQL for the checks of a row a that have not lapsed by
// the database's clock, given the lease as parameter $4.
const liveChecks = `(SELECT c.key, c.value FROM jsonb_each(a.checks) AS c WHERE (c.value #>> '{}')::timestamptz > now() - $4::interval)`

// liveCheck is the SQL condition that row a still holds check $2, unlapsed,
// given the lease as parameter $3: only then is the check's outcome recorded.
const liveCheck = `(a.checks ->> $2::text)::timestamptz > now() - $3::interval`

// walletChecks counts the password checks each wallet has in progress in
// this process, and remembers for a moment the wallets it found locked.
// The database's count is the bound (countAttemptSQL); this one spares it
// the statement when the wallet's checks are all in progress here
// already, or the wallet was found locked a moment ago, so that a flood
// from one wallet is refused without a round trip, the pooled connections
// left to other users.
type walletChecks struct {
	mu     sync.Mutex
	n      map[int64]int
	locked map[int64]lockSeen
}

// lockMemo is how long a process refuses a wallet it found locked without
// asking the database again. A lock lifted elsewhere (paytradectl unlock,
// another replica) is seen within it; a flood against a locked wallet
// costs the database one statement per lockMemo, not one per request.
const lockMemo = time.Second

// maxLocksSeen bounds how many locked wallets a process remembers; past
// it, those it no longer refuses are forgotten.
const maxLocksSeen = 10_000

// lockSeen is a wallet found locked: until when, and until when this
// process refuses it without asking, both on this process's monotonic
// clock, measured from the database's word of how long the lock lasts.
type lockSeen struct {
	until, recheck time.Time
}

// enter takes one of userID's MaxPasswordFailures checks in this process;
// release gives it back. It refuses at once a wallet found locked a moment
// ago, and one whose checks are all taken here.
func (w *walletChecks) enter(userID int64) (release func(), refusal error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.locked[userID]; ok {
		now := time.Now()
		if now.Before(l.recheck) {
			// Whole seconds, rounded up, as the database's answer is.
			return nil, pay.PasswordLocked((l.until.Sub(now) + time.Second - 1).Truncate(time.Second))
		}
		delete(w.locked, userID)
	}
	if w.n[userID] >= pay.MaxPasswordFailures {
		return nil, pay.ErrPasswordChecksBusy.WithRetryAfter(pay.BusyRetry)
	}
	w.n[userID]++
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.n[userID]--; w.n[userID] == 0 {
			delete(w.n, userID)
		}
	}, nil
}

// seen notes what a check of userID's password answered: a lock is
// remembered for lockMemo, or for what is left of it if less.
func (w *walletChecks) seen(userID int64, answer error) {
	var refusal *problem.Error
	if !errors.Is(answer, pay.ErrPasswordLocked) || !errors.As(answer, &refusal) {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.locked) >= maxLocksSeen {
		for id, l := range w.locked {
			if !now.Before(l.recheck) {
				delete(w.locked, id)
			}
		}
	}
	if len(w.locked) < maxLocksSeen {
		w.locked[userID] = lockSeen{until: now.Add(refusal.RetryAfter), recheck: now.Add(min(refusal.RetryAfter, lockMemo))}
	}
}

// lifted forgets that userID was locked.
func (w *walletChecks) lifted(userID int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.locked, userID)
}

// A countedCheck is a password check of a wallet counted as in progress:
// the wallet's stored password and the check's id.
type countedCheck struct {
	userID int64
	stored pay.StoredPassword
	id     string
}

// Checking a payment password takes three steps, so that concurrent guesses
// are bounded exactly as sequential ones: the attempt is counted as a check
// in progress before the hash is compared (countAttemptSQL), and no more
// than MaxPasswordFailures wrong-or-in-progress attempts are let through;
// what cannot be checked now is refused at once. Then the hash is compared
// (compare) with no row locked and no connection held, and a costly one
// (bcrypt) only within the store's bound of concurrent checks. Last the
// outcome is recorded: a wrong one by compare, a right one by the
// statement the caller goes on with (recordRight, or a payment's own).
//
// countAttemptSQL counts check $2 of wallet $1 as in progress, given
// MaxPasswordFailures as $3 and the lease as $4, and selects the wallet's
// stored password, whether the check was counted and, when it was not, how
// long the lock that refused it lasts. ON CONFLICT's row is the latest
// version, locked: concurrent counts of one wallet see each other's checks,
// so the bound is exact. The last column reads the snapshot from before the
// upsert. Every time is the database's, so pays whose clocks disagree agree
// on what has lapsed.
const countAttemptSQL = `
	WITH account AS (
		SELECT password_hash, password_key_id FROM accounts WHERE user_id = $1
	), attempt AS (
		INSERT INTO payment_password_attempts AS a (user_id, checks)
		SELECT $1, jsonb_build_object($2::text, now()) FROM account
		ON CONFLICT (user_id) DO UPDATE SET
			checks = (SELECT COALESCE(jsonb_object_agg(live.key, live.value), '{}') FROM ` + liveChecks + ` AS live)
				|| jsonb_build_object($2::text, now())
		WHERE (a.locked_until IS NULL OR a.locked_until <= now())
			AND a.failures + (SELECT count(*) FROM ` + liveChecks + ` AS live) < $3
		RETURNING 1
	)
	SELECT password_hash, password_key_id, EXISTS (SELECT FROM attempt),
		COALESCE((SELECT extract(epoch FROM locked_until - now())::float8 FROM payment_password_attempts
			WHERE user_id = $1 AND locked_until > now()), 0)
	FROM account`

// queueCountAttempt adds to b the count of a new check of userID's payment
// password; scanCountedAttempt reads its result.
func queueCountAttempt(b *pgx.Batch, userID int64) countedCheck {
	c := countedCheck{userID: userID, id: uuid.NewString()}
	b.Queue(countAttemptSQL, userID, c.id, pay.MaxPasswordFailures, checkLease)
	return c
}

// scanCountedAttempt reads the result of countAttemptSQL for c: c with the
// stored password, or the refusal of a locked wallet or of one whose
// attempts are all in progress.
func scanCountedAttempt(row pgx.Row, c countedCheck) (countedCheck, error) {
	var (
		keyID     *string
		counted   bool
		lockedFor float64
	)
	err := row.Scan(&c.stored.Hash, &keyID, &counted, &lockedFor)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return c, pay.ErrAccountNotFound
	case err != nil:
		return c, fmt.Errorf("count payment password attempt of account %d: %w", c.userID, err)
	case !counted:
		return c, pay.CheckRefused(time.Duration(math.Ceil(lockedFor)) * time.Second)
	}
	if keyID != nil {
		c.stored.KeyID = *keyID
	}
	return c, nil
}

// compare compares password with c's stored hash. It returns nil only for
// the right password, with the hash the wallet should have instead, if any;
// a wrong password is recorded here, and a check that could not be made
// lets go of its attempt. The right one is the caller's to record.
func (s *Store) compare(ctx context.Context, c countedCheck, password string) (rehash *pay.StoredPassword, err error) {
	// The outcome is recorded even if the caller has gone: a check left in
	// progress would hold one of the wallet's five attempts until it lapses.
	recordCtx := context.WithoutCancel(ctx)
	if c.stored.Costly() {
		select {
		case s.checks <- struct{}{}:
			defer func() { <-s.checks }()
		default:
			return nil, errors.Join(pay.ErrPasswordChecksBusy.WithRetryAfter(pay.BusyRetry), s.dropCheck(recordCtx, c))
		}
	}
	rehash, checked := s.cfg.Peppers.Check(c.userID, c.stored, password)
	switch {
	case errors.Is(checked, pay.ErrWrongPassword):
		return nil, s.recordWrongPassword(recordCtx, c)
	case checked != nil:
		return nil, errors.Join(checked, s.dropCheck(recordCtx, c))
	}
	return rehash, nil
}

// rightPasswordCTE records a right password for check $2 of wallet $1,
// given the lease as $3: it resets the count, unless the check lapsed (the
// wallet may then have let another guess take its place), and returns a
// row only if it did.
const rightPasswordCTE = `right_password AS (
		UPDATE payment_password_attempts AS a SET failures = 0, locks = 0, locked_until = NULL, checks = a.checks - $2::text
		WHERE user_id = $1 AND ` + liveCheck + `
		RETURNING 1
	)`

// recordRight records the right password of check c and, where the hash
// is not under the current pepper, rehashes it, unless it changed
// meanwhile. A check that lapsed is not answered.
func (s *Store) recordRight(ctx context.Context, c countedCheck, rehash *pay.StoredPassword) error {
	var rehashed, rehashedKeyID *string // NULL: the hash stays
	if rehash != nil {
		rehashed, rehashedKeyID = &rehash.Hash, &rehash.KeyID
	}
	var recorded bool
	// A statement of its own: its commit is reported as a payment's is, so
	// a refusal read from a commit the standby may not have (its wait was
	// canceled) is answered only once this later commit reached it (WAL is
	// replicated in order), or 503.
	recordCtx := context.WithoutCancel(ctx)
	if err := database.Statement(recordCtx, s.pool, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(recordCtx, `
			WITH `+rightPasswordCTE+`, rehashed AS (
				UPDATE accounts SET password_hash = $4, password_key_id = $5
				WHERE user_id = $1 AND $4::text IS NOT NULL AND password_hash = $6 AND EXISTS (SELECT FROM right_password)
			)
			SELECT EXISTS (SELECT FROM right_password)`,
			c.userID, c.id, checkLease, rehashed, rehashedKeyID, c.stored.Hash).Scan(&recorded)
	}); err != nil {
		return fmt.Errorf("reset payment password attempts of account %d: %w", c.userID, err)
	}
	if !recorded {
		return pay.ErrPasswordChecksBusy.WithRetryAfter(pay.BusyRetry)
	}
	return nil
}

// dropCheck lets go of a check whose outcome is not known, counting it
// neither right nor wrong.
func (s *Store) dropCheck(ctx context.Context, c countedCheck) error {
	if _, err := s.pool.Exec(ctx, `UPDATE payment_password_attempts SET checks = checks - $2::text WHERE user_id = $1`, c.userID, c.id); err != nil {
		return fmt.Errorf("drop payment password check of account %d: %w", c.userID, err)
	}
	return nil
}

// recordWrongPassword books a wrong password; the fifth in a row locks the
// wallet, for as long as its count of locks in a row says. A check that
// lapsed before it is booked is not answered: the wallet may already have
// let another guess take its place.
func (s *Store) recordWrongPassword(ctx context.Context, c countedCheck) error {
	ladder := pay.LockLadder()
	seconds := make([]float64, len(ladder))
	for i, d := range ladder {
		seconds[i] = d.Seconds()
	}
	var (
		locked bool
		locks  int
		until  *time.Time
	)
	err := s.pool.QueryRow(ctx, `
		UPDATE payment_password_attempts AS a SET
			checks = a.checks - $2::text,
			failures = CASE WHEN a.failures + 1 >= $4 THEN 0 ELSE a.failures + 1 END,
			locks = CASE WHEN a.failures + 1 >= $4 THEN a.locks + 1 ELSE a.locks END,
			locked_until = CASE WHEN a.failures + 1 >= $4
				THEN now() + make_interval(secs => ($5::float8[])[LEAST(a.locks + 1, cardinality($5::float8[]))])
				ELSE a.locked_until END
		WHERE user_id = $1 AND `+liveCheck+`
		RETURNING a.failures = 0 AND a.locked_until > now(), a.locks, a.locked_until`,
		c.userID, c.id, checkLease, pay.MaxPasswordFailures, seconds).Scan(&locked, &locks, &until)
	if errors.Is(err, pgx.ErrNoRows) {
		return pay.ErrPasswordChecksBusy.WithRetryAfter(pay.BusyRetry)
	}
	if err != nil {
		return fmt.Errorf("record wrong payment password of account %d: %w", c.userID, err)
	}
	if locked && s.cfg.PasswordLocked != nil {
		s.cfg.PasswordLocked(pay.PasswordLock{UserID: c.userID, Locks: locks, Until: until.UTC()})
	}
	return pay.ErrWrongPassword
}

// LiftPasswordLock lets a wallet pay again at once and forgets its wrong
// passwords and earlier locks: what an operator does once the owner has
// proved who they are. It reports whether the wallet was locked.
func (s *Store) LiftPasswordLock(ctx context.Context, userID int64) (bool, error) {
	var wasLocked bool
	err := s.pool.QueryRow(ctx, `
		UPDATE payment_password_attempts AS a SET failures = 0, locks = 0, locked_until = NULL
		FROM (SELECT user_id, locked_until FROM payment_password_attempts WHERE user_id = $1 FOR UPDATE) AS old
		WHERE a.user_id = old.user_id
		RETURNING COALESCE(old.locked_until > now(), false)`, userID).Scan(&wasLocked)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("lift payment password lock of account %d: %w", userID, err)
	}
	s.wallets.lifted(userID)
	if !wasLocked {
		if _, err := s.account(ctx, s.pool, userID); err != nil {
			return false, err
		}
	}
	return wasLocked, nil
}
