-- Orders, with the columns and status codes of the course:
-- 1 unpaid, 2 paid, 3 shipped, 4 received, 5 cancelled/closed, 6 finished.
-- An order's id is the bizOrderNo of its pay order.
CREATE TABLE orders (
    id           bigserial   PRIMARY KEY,
    user_id      bigint      NOT NULL CHECK (user_id > 0),
    total_fee    bigint      NOT NULL CHECK (total_fee > 0),
    payment_type smallint    NOT NULL,
    status       smallint    NOT NULL CHECK (status BETWEEN 1 AND 6),
    create_time  timestamptz NOT NULL DEFAULT now(),
    pay_time     timestamptz,
    close_time   timestamptz,
    update_time  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 2) <= (pay_time IS NOT NULL)),
    CHECK ((status = 5) = (close_time IS NOT NULL))
);
-- The fallback and the timeout walk unpaid orders oldest first; listing a
-- user's orders goes newest first.
CREATE INDEX orders_status_create_time ON orders (status, create_time, id);
CREATE INDEX orders_user_id ON orders (user_id, id DESC);

-- The inbox: every message id trade has processed, written in the same
-- transaction as the change it caused, so a redelivered or re-published
-- message is recognised and changes nothing.
CREATE TABLE processed_messages (
    message_id   text        PRIMARY KEY,
    biz_order_no bigint      NOT NULL,
    outcome      text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Payments that could not be applied to their order: paid by another
-- user, of another amount, for an order that has moved on or does not
-- exist. A human settles them (usually with a refund); they are never
-- dropped. One row per payment and reason, however often it is reported.
CREATE TABLE payment_discrepancies (
    id           bigserial   PRIMARY KEY,
    biz_order_no bigint      NOT NULL,
    pay_order_id bigint      NOT NULL,
    user_id      bigint      NOT NULL,
    amount       bigint      NOT NULL,
    paid_at      timestamptz NOT NULL,
    reason       text        NOT NULL,
    order_status smallint,
    source       text        NOT NULL,
    message_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pay_order_id, reason)
);
