DROP TABLE outbox_events;
DROP TABLE idempotency_keys;
DROP TABLE closed_biz_orders;
DROP TABLE pay_orders;
DROP TABLE ledger_entries;
DROP TABLE accounts;
