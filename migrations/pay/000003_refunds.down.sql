DROP TABLE processed_messages;
DROP TABLE refunds;
DROP INDEX ledger_entries_one_refund_per_pay_order;
-- A refunded pay order goes back to paid, without its refund time: the
-- constraint that ties status 4 to refund_time goes first, or it refuses
-- the move.
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_refunded_has_time;
ALTER TABLE pay_orders DROP COLUMN refund_time;
UPDATE pay_orders SET status = 3 WHERE status = 4;
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_paid_has_time;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_check CHECK ((status = 3) = (pay_success_time IS NOT NULL));
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_status_check;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_status_check CHECK (status IN (0, 1, 2, 3));
