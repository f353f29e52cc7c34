-- auth-core: users disabled before the credential epochs (20010) kept their API keys (the
-- old disable deleted sessions only, and not atomically with concurrent logins) and sat at
-- epoch 0 with them, so re-enabling such a user brought those keys (and any session that
-- raced the disable) back. Bump both epochs of every user disabled now: re-enabling never
-- revives a credential from before the disable. Harmless for users disabled after 20010
-- (their credentials ended already).
UPDATE auth_users SET session_epoch = session_epoch + 1, key_epoch = key_epoch + 1
    WHERE disabled <> 0;
