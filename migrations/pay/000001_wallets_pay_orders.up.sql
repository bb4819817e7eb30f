-- Wallets: a balance in integer cents that can never go below zero, and the
-- bcrypt hash of the payment password.
CREATE TABLE accounts (
    user_id       bigint      PRIMARY KEY CHECK (user_id > 0),
    balance       bigint      NOT NULL CHECK (balance >= 0),
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every change of a balance, so that a balance is always explained:
-- balance = sum(amount) over the account's rows.
CREATE TABLE ledger_entries (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES accounts (user_id),
    kind          text        NOT NULL CHECK (kind IN ('funding', 'debit', 'refund')),
    amount        bigint      NOT NULL CHECK (amount <> 0),
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    pay_order_id  bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'debit') = (amount < 0))
);
CREATE INDEX ledger_entries_user_id ON ledger_entries (user_id, id);
-- A pay order is debited at most once, whatever the code above does.
CREATE UNIQUE INDEX ledger_entries_one_debit_per_pay_order ON ledger_entries (pay_order_id) WHERE kind = 'debit';

-- Pay orders, with the status codes of the course:
-- 0 not committed, 1 waiting for payment, 2 closed/timed out, 3 paid.
CREATE TABLE pay_orders (
    id               bigserial   PRIMARY KEY,
    biz_order_no     bigint      NOT NULL UNIQUE CHECK (biz_order_no > 0),
    biz_user_id      bigint      NOT NULL CHECK (biz_user_id > 0),
    amount           bigint      NOT NULL CHECK (amount > 0),
    status           smallint    NOT NULL CHECK (status IN (0, 1, 2, 3)),
    pay_channel_code text        NOT NULL,
    pay_type         smallint    NOT NULL,
    order_info       text        NOT NULL DEFAULT '',
    pay_success_time timestamptz,
    pay_over_time    timestamptz NOT NULL,
    create_time      timestamptz NOT NULL DEFAULT now(),
    update_time      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 3) = (pay_success_time IS NOT NULL))
);

-- Business orders closed before any pay order existed for them: no pay order
-- may be applied for or paid afterwards.
CREATE TABLE closed_biz_orders (
    biz_order_no bigint      PRIMARY KEY,
    closed_at    timestamptz NOT NULL DEFAULT now()
);

-- Completed payments by Idempotency-Key, replayed to a retry with the same
-- key and the same request. request_hash is an HMAC of the request, so the
-- payment password it covers cannot be recovered from the table.
CREATE TABLE idempotency_keys (
    user_id      bigint      NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    pay_order    jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- Transactional outbox: events written in the same transaction as the change
-- they announce, published by the relay and deleted once the broker confirms.
CREATE TABLE outbox_events (
    id             uuid        PRIMARY KEY,
    exchange       text        NOT NULL,
    routing_key    text        NOT NULL,
    message_type   text        NOT NULL,
    payload        bytea       NOT NULL,
    correlation_id text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    available_at   timestamptz NOT NULL DEFAULT now(),
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text        NOT NULL DEFAULT ''
);
CREATE INDEX outbox_events_available_at ON outbox_events (available_at);
