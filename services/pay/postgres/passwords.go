package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/services/pay"
)

// How long a password check may stay unresolved, and how a payment waits
// for a wallet whose five attempts are all being checked.
const (
	// checkLease is how long a counted check holds one of the wallet's
	// attempts before it is taken for one whose process died. bcrypt
	// takes well under a second; a crash must not keep the owner out long.
	checkLease = 10 * time.Second
	// saturatedWait outlasts checkLease, so a payment behind checks that
	// died with their process waits for them to lapse and then goes
	// through, instead of being refused for a lock that is not there.
	saturatedWait = checkLease + time.Second
	// saturatedPoll is how often a waiting payment asks again, holding nothing.
	saturatedPoll = 10 * time.Millisecond
)

// liveChecks is the SQL for the checks of a row a that have not lapsed,
// given the lapse time as parameter $4.
const liveChecks = `(SELECT c.key, c.value FROM jsonb_each(a.checks) AS c WHERE (c.value #>> '{}')::timestamptz > $4)`

// checkPassword checks a payment password against the wallet's hash, the
// lockout first. The attempt is counted as a check in progress before
// bcrypt runs, and no more than MaxPasswordFailures wrong-or-in-progress
// attempts are let through, so concurrent guesses are bounded exactly as
// sequential ones. bcrypt runs with no row locked and no connection held:
// a flood of wrong passwords costs CPU, never another user's database access.
func (s *Store) checkPassword(ctx context.Context, userID int64, password string) error {
	hash, check, err := s.countAttempt(ctx, userID)
	if err != nil {
		return err
	}
	checked := pay.CheckPassword(hash, password)
	// The outcome is recorded even if the caller has gone: a check left in
	// progress would hold one of the wallet's five attempts until it lapses.
	ctx = context.WithoutCancel(ctx)
	switch {
	case errors.Is(checked, pay.ErrWrongPassword):
		return errors.Join(checked, s.recordWrongPassword(ctx, userID, check))
	case checked != nil:
		_, err := s.pool.Exec(ctx, `UPDATE payment_password_attempts SET checks = checks - $2::text WHERE user_id = $1`, userID, check)
		return errors.Join(checked, err)
	}
	if _, err := s.pool.Exec(ctx, `
		UPDATE payment_password_attempts SET failures = 0, locks = 0, locked_until = NULL, checks = checks - $2::text
		WHERE user_id = $1`, userID, check); err != nil {
		return fmt.Errorf("reset payment password attempts of account %d: %w", userID, err)
	}
	return nil
}

// countAttempt counts a password check of the wallet as in progress and
// returns its password hash and the check's id; it refuses while the
// wallet is locked.
func (s *Store) countAttempt(ctx context.Context, userID int64) (hash, check string, err error) {
	check = uuid.NewString()
	deadline := time.Now().Add(saturatedWait)
	for {
		now := s.now()
		var (
			stored      *string
			counted     bool
			lockedUntil *time.Time
		)
		// ON CONFLICT's row is the latest version, locked: concurrent
		// counts of one wallet see each other's checks, so the bound is
		// exact. The last column reads the snapshot from before the
		// upsert: when the attempt is not counted, the lock that refused it.
		err := s.pool.QueryRow(ctx, `
			WITH account AS (
				SELECT password_hash FROM accounts WHERE user_id = $1
			), attempt AS (
				INSERT INTO payment_password_attempts AS a (user_id, checks)
				SELECT $1, jsonb_build_object($5::text, $2::timestamptz) FROM account
				ON CONFLICT (user_id) DO UPDATE SET
					checks = (SELECT COALESCE(jsonb_object_agg(live.key, live.value), '{}') FROM `+liveChecks+` AS live)
						|| jsonb_build_object($5::text, $2::timestamptz)
				WHERE (a.locked_until IS NULL OR a.locked_until <= $2)
					AND a.failures + (SELECT count(*) FROM `+liveChecks+` AS live) < $3
				RETURNING 1
			)
			SELECT (SELECT password_hash FROM account), EXISTS (SELECT FROM attempt),
				(SELECT locked_until FROM payment_password_attempts WHERE user_id = $1)`,
			userID, now, pay.MaxPasswordFailures, now.Add(-checkLease), check).Scan(&stored, &counted, &lockedUntil)
		switch {
		case err != nil:
			return "", "", fmt.Errorf("count payment password attempt of account %d: %w", userID, err)
		case stored == nil:
			return "", "", pay.ErrAccountNotFound
		case counted:
			return *stored, check, nil
		case lockedUntil != nil && lockedUntil.After(now):
			return "", "", pay.PasswordLocked(*lockedUntil, now)
		case time.Now().After(deadline):
			return "", "", pay.PasswordLocked(now.Add(time.Second), now)
		}
		// Every attempt is being checked right now (or one just locked
		// the wallet): wait for an outcome, holding nothing.
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(saturatedPoll):
		}
	}
}

// recordWrongPassword books a wrong password; the fifth in a row locks the
// wallet, for as long as its count of locks in a row says.
func (s *Store) recordWrongPassword(ctx context.Context, userID int64, check string) error {
	now := s.now()
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
			checks = a.checks - $5::text,
			failures = CASE WHEN a.failures + 1 >= $3 THEN 0 ELSE a.failures + 1 END,
			locks = CASE WHEN a.failures + 1 >= $3 THEN a.locks + 1 ELSE a.locks END,
			locked_until = CASE WHEN a.failures + 1 >= $3
				THEN $2::timestamptz + make_interval(secs => ($4::float8[])[LEAST(a.locks + 1, cardinality($4::float8[]))])
				ELSE a.locked_until END
		WHERE user_id = $1
		RETURNING a.failures = 0 AND a.locked_until > $2, a.locks, a.locked_until`,
		userID, now, pay.MaxPasswordFailures, seconds, check).Scan(&locked, &locks, &until)
	if err != nil {
		return fmt.Errorf("record wrong payment password of account %d: %w", userID, err)
	}
	if locked && s.cfg.PasswordLocked != nil {
		s.cfg.PasswordLocked(pay.PasswordLock{UserID: userID, Locks: locks, Until: until.UTC()})
	}
	return nil
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
		RETURNING COALESCE(old.locked_until > $2, false)`, userID, s.now()).Scan(&wasLocked)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("lift payment password lock of account %d: %w", userID, err)
	}
	if !wasLocked {
		if _, err := s.account(ctx, s.pool, userID); err != nil {
			return false, err
		}
	}
	return wasLocked, nil
}
