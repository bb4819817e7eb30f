-- Payment password attempts per wallet. A check is counted as pending
-- before bcrypt runs, and at most five wrong-or-pending attempts are let
-- through, so a flood of concurrent guesses is bounded like a slow one; a
-- pending count older than a minute is a crashed check and is forgotten.
-- The fifth wrong password in a row locks the wallet's payments until
-- locked_until, for 15 minutes doubling with each further lock (locks) up
-- to 24 hours; a right password resets everything. Replicas and restarts
-- share this state.
CREATE TABLE payment_password_attempts (
    user_id       bigint      PRIMARY KEY REFERENCES accounts (user_id),
    failures      integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    pending       integer     NOT NULL DEFAULT 0 CHECK (pending >= 0),
    pending_since timestamptz,
    locks         integer     NOT NULL DEFAULT 0 CHECK (locks >= 0),
    locked_until  timestamptz
);

-- Deposits by Idempotency-Key: an operator's retry of a deposit returns the
-- first result instead of crediting again. Kept as long as the ledger.
CREATE TABLE deposits (
    idempotency_key text        PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES accounts (user_id),
    amount          bigint      NOT NULL CHECK (amount > 0),
    balance_after   bigint      NOT NULL CHECK (balance_after >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
