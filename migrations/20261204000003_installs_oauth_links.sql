-- Slack workspaces installed through OAuth v2. The bot token is sealed with AES-256-GCM under
-- the server's secret key, with the associated data 'slack-install:<team_id>', so a sealed
-- token copied to another row does not open. A reinstall replaces the row.
CREATE TABLE slack_installs (
    team_id       TEXT    PRIMARY KEY,
    team_name     TEXT,
    bot_user_id   TEXT,
    installer     TEXT    NOT NULL,            -- 'slack:U123'
    bot_token     BLOB    NOT NULL,            -- nonce || ciphertext || tag
    installed_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- OAuth `state` values in flight (Slack install, mailbox connect). Single use: the callback
-- deletes the row it finds, so a replayed state finds nothing. Rows expire after minutes.
CREATE TABLE oauth_states (
    state        TEXT    PRIMARY KEY,
    purpose      TEXT    NOT NULL,              -- 'slack-install', 'mail:google', 'mail:microsoft'
    desk_id      INTEGER REFERENCES desks (id),
    user_ref     TEXT,
    verifier     TEXT,                          -- PKCE code verifier, when the flow uses one
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);

-- One-time codes that join a second surface (a Discord guild, a Slack workspace) to a desk.
-- Stored as the SHA-256 of the code, so the table never holds a usable code.
CREATE TABLE desk_link_codes (
    code_hash    TEXT    PRIMARY KEY,
    desk_id      INTEGER NOT NULL REFERENCES desks (id),
    created_by   TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
