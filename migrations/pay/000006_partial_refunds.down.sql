ALTER TABLE refunds DROP CONSTRAINT refunds_credit_has_total;
ALTER TABLE refunds DROP COLUMN refunded_total;
CREATE UNIQUE INDEX refunds_one_per_pay_order ON refunds (pay_order_id) WHERE outcome = 'refunded';
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_credit_names_refund;
DROP INDEX ledger_entries_one_credit_per_refund;
CREATE UNIQUE INDEX ledger_entries_one_refund_per_pay_order ON ledger_entries (pay_order_id) WHERE kind = 'refund';
ALTER TABLE ledger_entries DROP COLUMN refund_id;
ALTER TABLE pay_orders
    DROP CONSTRAINT pay_orders_credited_has_time,
    DROP CONSTRAINT pay_orders_credits_only_when_paid,
    DROP CONSTRAINT pay_orders_refunded_in_full,
    DROP CONSTRAINT pay_orders_refunds_within_paid;
UPDATE pay_orders SET refund_time = NULL WHERE status <> 4;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_refunded_has_time CHECK ((status = 4) = (refund_time IS NOT NULL));
ALTER TABLE pay_orders DROP COLUMN refunded_amount;
