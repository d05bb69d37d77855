-- Connected support mailboxes and the email that became part of tickets.

-- A mailbox connected by OAuth. `tokens` is the JSON of the access token, refresh token and
-- expiry, sealed with AES-256-GCM under the server's secret key with the associated data
-- 'mailbox:<id>'. `cursor` is where polling resumes: Gmail's history id, or Graph's deltaLink.
CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY,
    desk_id        INTEGER NOT NULL REFERENCES desks (id),
    provider       TEXT    NOT NULL CHECK (provider IN ('google', 'microsoft')),
    address        TEXT    NOT NULL,            -- lower-cased
    connected_by   TEXT    NOT NULL,
    tokens         BLOB    NOT NULL,
    cursor         TEXT,
    status         TEXT    NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'disconnected')),
    last_polled_at INTEGER,
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    UNIQUE (desk_id, provider, address)
);

-- Each email appended to a ticket, found again by its provider id (dedupe), its RFC 822
-- Message-ID (replies' In-Reply-To/References) and its thread.
CREATE TABLE mail_messages (
    desk_id      INTEGER NOT NULL REFERENCES desks (id),
    mailbox_id   INTEGER NOT NULL REFERENCES mailboxes (id),
    provider_id  TEXT    NOT NULL,
    ticket_id    INTEGER NOT NULL REFERENCES tickets (id),
    message_id   TEXT,
    thread_id    TEXT,
    from_email   TEXT,
    subject      TEXT,
    web_link     TEXT,
    sent_at      INTEGER,
    PRIMARY KEY (mailbox_id, provider_id)
) WITHOUT ROWID;
CREATE INDEX mail_messages_by_message_id ON mail_messages (desk_id, message_id);
CREATE INDEX mail_messages_by_ticket ON mail_messages (ticket_id);

-- Threads linked to tickets (by intake or by /ticket link): new mail in them joins the ticket.
CREATE TABLE ticket_threads (
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes (id),
    thread_id   TEXT    NOT NULL,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (mailbox_id, thread_id)
) WITHOUT ROWID;
