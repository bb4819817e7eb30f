DROP TABLE outbox_events;
DROP TABLE refunds;
UPDATE orders SET status = 2 WHERE status = 7;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status BETWEEN 1 AND 6);
