-- Partial refunds. A pay order keeps what has been credited back of it
-- (refunded_amount); it stays 3 (paid) while something remains and becomes
-- 4 (refunded) when its credits reach what was paid. Each refund id is
-- credited at most once, and the credits never add up to more than the
-- amount, whatever the code above does.
ALTER TABLE pay_orders ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0;
UPDATE pay_orders SET refunded_amount = amount WHERE status = 4;
ALTER TABLE pay_orders
    ADD CONSTRAINT pay_orders_refunds_within_paid CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    -- 4 (refunded) exactly when credited in full; credits only of 3 (paid) or 4.
    ADD CONSTRAINT pay_orders_refunded_in_full CHECK ((status = 4) = (refunded_amount = amount)),
    ADD CONSTRAINT pay_orders_credits_only_when_paid CHECK (refunded_amount = 0 OR status IN (3, 4)),
    DROP CONSTRAINT pay_orders_refunded_has_time,
    -- refund_time: when the latest credit was made.
    ADD CONSTRAINT pay_orders_credited_has_time CHECK ((refunded_amount > 0) = (refund_time IS NOT NULL));

-- A credit's ledger row names its refund: one per refund id, many per pay order.
ALTER TABLE ledger_entries ADD COLUMN refund_id uuid;
UPDATE ledger_entries l SET refund_id = r.refund_id
FROM refunds r WHERE l.kind = 'refund' AND r.pay_order_id = l.pay_order_id AND r.outcome = 'refunded';
DROP INDEX ledger_entries_one_refund_per_pay_order;
CREATE UNIQUE INDEX ledger_entries_one_credit_per_refund ON ledger_entries (refund_id) WHERE kind = 'refund';
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_credit_names_refund CHECK ((kind = 'refund') = (refund_id IS NOT NULL));

-- Many refunds per pay order; each remembers the pay order's credits after it.
DROP INDEX refunds_one_per_pay_order;
ALTER TABLE refunds ADD COLUMN refunded_total bigint;
UPDATE refunds SET refunded_total = amount WHERE outcome = 'refunded';
ALTER TABLE refunds ADD CONSTRAINT refunds_credit_has_total CHECK ((outcome = 'refunded') = (refunded_total IS NOT NULL));
