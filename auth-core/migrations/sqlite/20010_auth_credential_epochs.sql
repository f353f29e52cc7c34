-- auth-core: credential epochs and proven emails.
-- A session (or API key) resolves only while its user_epoch equals the user's
-- session_epoch (key_epoch). A password change bumps session_epoch; disabling, an SSO link
-- and "sign out everywhere" bump both, in the same statement as the change itself.
ALTER TABLE auth_users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_users ADD COLUMN key_epoch BIGINT NOT NULL DEFAULT 0;
-- Whether the email is proven (operator-created, SSO-provisioned from a verified email, or
-- verified by the service). Only such accounts are adopted by an SSO sign-in. Existing
-- accounts that an operator created and that still must change their password are proven;
-- every other existing account starts unproven.
ALTER TABLE auth_users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE auth_users SET email_verified = TRUE WHERE must_change_password;
ALTER TABLE auth_sessions ADD COLUMN user_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_api_keys ADD COLUMN user_epoch BIGINT NOT NULL DEFAULT 0;
