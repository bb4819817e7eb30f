DROP INDEX refunds_rejected_unsettled;
ALTER TABLE refunds
    DROP CONSTRAINT refunds_settled_has_time,
    DROP CONSTRAINT refunds_settled_only_when_rejected,
    DROP COLUMN settled_at,
    DROP COLUMN settlement;
DROP INDEX refunds_order_id;
DROP INDEX refunds_order_request_key;
ALTER TABLE refunds DROP COLUMN request_key;
ALTER TABLE refunds ADD CONSTRAINT refunds_order_id_key UNIQUE (order_id);
ALTER TABLE orders
    DROP CONSTRAINT orders_refunded_in_full,
    DROP CONSTRAINT orders_refunds_within_total,
    DROP COLUMN refunded_amount,
    DROP COLUMN refund_claimed;
