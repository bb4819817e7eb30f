-- The inbox is purged of message ids older than the retention
-- (TRADE_INBOX_RETENTION): this index finds them without a scan.
-- IF NOT EXISTS: this migration was first released as 000002, after
-- 000003 existed; a database created then has the index already and is
-- at version 3, so it runs this file again.
CREATE INDEX IF NOT EXISTS processed_messages_processed_at ON processed_messages (processed_at);
