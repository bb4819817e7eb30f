ALTER TABLE payment_password_attempts
    DROP COLUMN checks,
    ADD COLUMN pending integer NOT NULL DEFAULT 0 CHECK (pending >= 0),
    ADD COLUMN pending_since timestamptz;
