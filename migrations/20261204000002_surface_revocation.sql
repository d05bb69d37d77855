-- A platform can revoke a surface's token (Slack app_uninstalled, tokens_revoked). While
-- `token_revoked_at` is set, nothing is posted to that surface; a reinstall clears it.
ALTER TABLE surfaces ADD COLUMN token_revoked_at INTEGER;
