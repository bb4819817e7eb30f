DROP TABLE deposits;
DROP TABLE payment_password_attempts;
