-- Status 7: refunded. A refunded order keeps its pay_time: it was paid.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status BETWEEN 1 AND 7);

-- Refunds trade asked pay for: one per business order, whoever asked (the
-- owner of a paid order, or trade itself for a payment it could not apply),
-- so asking again finds the same refund. order_id is the bizOrderNo, with no
-- foreign key: a payment for an order that does not exist is refunded too.
-- status: requested until pay's refund.success (or its answer to the
-- fallback) says refunded, or pay says it could not honour it (rejected).
CREATE TABLE refunds (
    id           uuid        PRIMARY KEY,
    order_id     bigint      NOT NULL UNIQUE CHECK (order_id > 0),
    user_id      bigint      NOT NULL CHECK (user_id > 0),
    amount       bigint      NOT NULL CHECK (amount > 0),
    reason       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('requested', 'refunded', 'rejected')),
    requested_at timestamptz NOT NULL,
    refunded_at  timestamptz,
    rejection    text,
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL)),
    CHECK ((status = 'rejected') = (rejection IS NOT NULL))
);
-- The fallback walks the refunds still waiting, oldest first.
CREATE INDEX refunds_requested ON refunds (requested_at, id) WHERE status = 'requested';

-- Trade's own transactional outbox (refund.requested), the same table and
-- relay as pay's: events are written in the transaction of the change they
-- announce and deleted once the broker confirms them.
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
