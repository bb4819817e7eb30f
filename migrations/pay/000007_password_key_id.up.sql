-- A payment password is stored as HMAC-SHA256 under a pepper that the
-- database does not hold; password_key_id names the pepper, so that pay
-- can check hashes under an older one while the pepper rotates. NULL is a
-- bcrypt hash of a wallet opened before the pepper: still checked, and
-- rehashed under the current pepper on the next right password.
ALTER TABLE accounts ADD COLUMN password_key_id text;
