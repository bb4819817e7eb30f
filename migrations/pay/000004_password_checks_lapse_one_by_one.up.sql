-- 000002 was first released after 000003: a database created before it
-- was at version 3 already and never ran it. Its tables are made here, as
-- 000002 makes them, where they are missing.
CREATE TABLE IF NOT EXISTS payment_password_attempts (
    user_id       bigint      PRIMARY KEY REFERENCES accounts (user_id),
    failures      integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    pending       integer     NOT NULL DEFAULT 0 CHECK (pending >= 0),
    pending_since timestamptz,
    locks         integer     NOT NULL DEFAULT 0 CHECK (locks >= 0),
    locked_until  timestamptz
);
CREATE TABLE IF NOT EXISTS deposits (
    idempotency_key text        PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES accounts (user_id),
    amount          bigint      NOT NULL CHECK (amount > 0),
    balance_after   bigint      NOT NULL CHECK (balance_after >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- A password check in progress is held as its own entry (check id → when it
-- started) instead of one counter with one shared start time. A pay process
-- killed mid-check leaves its entries behind; each lapses on its own a few
-- seconds after it started, so a crash no longer takes the wallet's five
-- attempts away from its owner, and a steady flow of payments no longer
-- keeps a dead check alive by refreshing the shared time.
ALTER TABLE payment_password_attempts
    ADD COLUMN checks jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(checks) = 'object'),
    DROP COLUMN pending,
    DROP COLUMN pending_since;
