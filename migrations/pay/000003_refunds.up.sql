-- Status 4: refunded. A refunded pay order keeps its pay_success_time.
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_status_check;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_status_check CHECK (status IN (0, 1, 2, 3, 4));
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_check;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_paid_has_time CHECK ((status IN (3, 4)) = (pay_success_time IS NOT NULL));
ALTER TABLE pay_orders ADD COLUMN refund_time timestamptz;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_refunded_has_time CHECK ((status = 4) = (refund_time IS NOT NULL));

-- A pay order is credited back at most once, whatever the code above does.
CREATE UNIQUE INDEX ledger_entries_one_refund_per_pay_order ON ledger_entries (pay_order_id) WHERE kind = 'refund';

-- Every refund request pay has decided, by trade's refund id: refunded
-- (the pay order moved 3→4 and the wallet was credited) or rejected (it
-- could not be honoured and changed nothing; rejection says why). A
-- rejected request is kept, never dropped: trade's fallback and
-- paytradectl reconcile read it.
CREATE TABLE refunds (
    refund_id    uuid        PRIMARY KEY,
    biz_order_no bigint      NOT NULL,
    pay_order_id bigint      REFERENCES pay_orders (id),
    user_id      bigint      NOT NULL,
    amount       bigint      NOT NULL,
    reason       text        NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('refunded', 'rejected')),
    rejection    text,
    requested_at timestamptz NOT NULL,
    decided_at   timestamptz NOT NULL,
    message_id   text,
    CHECK ((outcome = 'rejected') = (rejection IS NOT NULL)),
    CHECK (outcome = 'rejected' OR pay_order_id IS NOT NULL)
);
CREATE UNIQUE INDEX refunds_one_per_pay_order ON refunds (pay_order_id) WHERE outcome = 'refunded';
CREATE INDEX refunds_biz_order_no ON refunds (biz_order_no);

-- pay's inbox: every refund.requested message id it has processed, written
-- in the transaction of the change it caused, so a redelivered copy
-- changes nothing.
CREATE TABLE processed_messages (
    message_id   text        PRIMARY KEY,
    outcome      text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
