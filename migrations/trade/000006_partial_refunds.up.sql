-- Partial refunds: an order has as many refunds as its owner asks for,
-- within its total. refund_claimed is what its refunds requested and not
-- rejected add up to (what can no longer be asked for); refunded_amount is
-- what pay has credited of them. An order stays 2 (paid) while refunded in
-- part and becomes 7 (refunded) when credited in full. A compensating
-- refund, for a payment the order never took, counts in neither.
ALTER TABLE orders
    ADD COLUMN refund_claimed bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0;
UPDATE orders o SET refund_claimed = r.amount,
    refunded_amount = CASE WHEN r.status = 'refunded' THEN r.amount ELSE 0 END
FROM refunds r
WHERE r.order_id = o.id AND r.reason = 'user_request' AND r.status <> 'rejected';
ALTER TABLE orders
    ADD CONSTRAINT orders_refunds_within_total
        CHECK (0 <= refunded_amount AND refunded_amount <= refund_claimed AND refund_claimed <= total_fee),
    ADD CONSTRAINT orders_refunded_in_full CHECK ((status = 7) = (refunded_amount = total_fee));

-- Many refunds per order. request_key is what makes asking again find the
-- same refund: the owner's Idempotency-Key, 'compensation' for trade's own,
-- NULL for "refund what remains" (one such refund pending at a time, which
-- the order's row lock keeps).
ALTER TABLE refunds DROP CONSTRAINT refunds_order_id_key;
ALTER TABLE refunds ADD COLUMN request_key text;
UPDATE refunds SET request_key = 'compensation' WHERE reason LIKE 'compensation:%';
CREATE UNIQUE INDEX refunds_order_request_key ON refunds (order_id, request_key);
CREATE INDEX refunds_order_id ON refunds (order_id, requested_at, id);

-- A rejected refund waits for an operator: retried under a new refund, or
-- resolved with a note. settlement says which; reconcile fails on a
-- rejected refund nobody settled.
ALTER TABLE refunds
    ADD COLUMN settlement text,
    ADD COLUMN settled_at timestamptz,
    ADD CONSTRAINT refunds_settled_only_when_rejected CHECK (settlement IS NULL OR status = 'rejected'),
    ADD CONSTRAINT refunds_settled_has_time CHECK ((settlement IS NULL) = (settled_at IS NULL));
CREATE INDEX refunds_rejected_unsettled ON refunds (requested_at, id) WHERE status = 'rejected' AND settlement IS NULL;
