-- The inbox is purged of message ids older than the retention
-- (TRADE_INBOX_RETENTION): this index finds them without a scan.
CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at);
