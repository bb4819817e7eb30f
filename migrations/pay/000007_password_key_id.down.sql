-- The peppered hashes cannot be turned back into bcrypt ones: a wallet
-- holding one cannot pay after this until its password is set again.
ALTER TABLE accounts DROP COLUMN password_key_id;
