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
