DROP TABLE payment_discrepancies;
DROP TABLE processed_messages;
DROP TABLE orders;
