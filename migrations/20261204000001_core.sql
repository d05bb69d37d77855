-- The ticket desk core: desks and their surfaces, members and roles, contacts, tickets, the
-- timeline, idempotency keys and the durable outbox.
--
-- Conventions: every time is INTEGER milliseconds since the Unix epoch (UTC), so comparisons and
-- sorting are plain integer work; every row that belongs to a desk carries `desk_id`, and every
-- query filters on it (the outbox worker is the one reader across desks).

-- A desk is one team's ticket queue. `next_no` is the next ticket number; it is bumped in the
-- same transaction that inserts the ticket, so numbers have no gaps and no duplicates.
CREATE TABLE desks (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    next_no     INTEGER NOT NULL DEFAULT 1 CHECK (next_no >= 1),
    created_at  INTEGER NOT NULL
);

-- A surface is a Slack workspace (team id) or a Discord guild serving one desk. A surface seen
-- for the first time gets a desk of its own. `notify_channel` is where new ticket cards go.
CREATE TABLE surfaces (
    platform        TEXT    NOT NULL CHECK (platform IN ('slack', 'discord')),
    external_id     TEXT    NOT NULL,
    desk_id         INTEGER NOT NULL REFERENCES desks (id),
    name            TEXT,
    notify_channel  TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (platform, external_id)
) WITHOUT ROWID;
CREATE INDEX surfaces_by_desk ON surfaces (desk_id);

-- Everyone seen on a desk, with their role. The first member of a desk is its admin.
CREATE TABLE members (
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    user_ref    TEXT    NOT NULL,              -- 'slack:U123' or 'discord:8035…'
    name        TEXT,
    email       TEXT,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'agent', 'member')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (desk_id, user_ref)
) WITHOUT ROWID;
CREATE INDEX members_by_role ON members (desk_id, role);

-- Organizations, found by case-folded name within a desk.
CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY,
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    name        TEXT    NOT NULL,
    name_key    TEXT    NOT NULL,              -- lower(name), for lookups
    created_at  INTEGER NOT NULL,
    UNIQUE (desk_id, name_key)
);

-- An organization's email domains; a new individual at one of them joins the organization.
CREATE TABLE organization_domains (
    desk_id          INTEGER NOT NULL REFERENCES desks (id),
    domain           TEXT    NOT NULL,
    organization_id  INTEGER NOT NULL REFERENCES organizations (id),
    PRIMARY KEY (desk_id, domain)
) WITHOUT ROWID;

-- Individuals: customers with a name, a phone, email addresses and chat identities.
CREATE TABLE individuals (
    id               INTEGER PRIMARY KEY,
    desk_id          INTEGER NOT NULL REFERENCES desks (id),
    name             TEXT,
    phone            TEXT,
    organization_id  INTEGER REFERENCES organizations (id),
    created_at       INTEGER NOT NULL
);
CREATE INDEX individuals_by_org ON individuals (desk_id, organization_id);

CREATE TABLE individual_emails (
    desk_id        INTEGER NOT NULL REFERENCES desks (id),
    email          TEXT    NOT NULL,           -- lower-cased
    individual_id  INTEGER NOT NULL REFERENCES individuals (id),
    PRIMARY KEY (desk_id, email)
) WITHOUT ROWID;
CREATE INDEX individual_emails_by_individual ON individual_emails (individual_id);

CREATE TABLE individual_identities (
    desk_id        INTEGER NOT NULL REFERENCES desks (id),
    user_ref       TEXT    NOT NULL,
    individual_id  INTEGER NOT NULL REFERENCES individuals (id),
    PRIMARY KEY (desk_id, user_ref)
) WITHOUT ROWID;

-- Tickets. `no` is unique per desk. The allowed status moves are enforced by the core
-- (core/ticket.rs); the CHECKs keep the stored words valid.
CREATE TABLE tickets (
    id                 INTEGER PRIMARY KEY,
    desk_id            INTEGER NOT NULL REFERENCES desks (id),
    no                 INTEGER NOT NULL CHECK (no >= 1),
    description        TEXT    NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
    priority           TEXT    NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    status             TEXT    NOT NULL CHECK (status IN ('open', 'in_progress', 'waiting', 'completed', 'closed')),
    assignee           TEXT,
    reporter           TEXT    NOT NULL,
    individual_id      INTEGER REFERENCES individuals (id),
    organization_id    INTEGER REFERENCES organizations (id),
    source             TEXT    NOT NULL CHECK (source IN ('slack', 'discord', 'email', 'cli')),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    first_response_at  INTEGER,
    resolved_at        INTEGER,
    UNIQUE (desk_id, no)
);
-- Queue views: active tickets by status, and an assignee's queue.
CREATE INDEX tickets_by_status ON tickets (desk_id, status, no);
CREATE INDEX tickets_by_assignee ON tickets (desk_id, assignee, status);
-- Contact histories, newest first.
CREATE INDEX tickets_by_individual ON tickets (desk_id, individual_id, created_at DESC);
CREATE INDEX tickets_by_organization ON tickets (desk_id, organization_id, created_at DESC);

-- The timeline: one row per change, written in the change's transaction.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    actor       TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('created', 'assigned', 'status', 'priority', 'note', 'contact', 'email')),
    old_value   TEXT,
    new_value   TEXT,
    note        TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX events_by_ticket ON events (ticket_id, id);

-- Idempotency keys of requests that created something (a Slack trigger id, a Discord
-- interaction id, an event id): a retry finds the key and gets the same ticket back.
CREATE TABLE request_keys (
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    key         TEXT    NOT NULL,
    ticket_id   INTEGER REFERENCES tickets (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (desk_id, key)
) WITHOUT ROWID;

-- The durable outbox. Rows are written with the change that caused them and delivered by the
-- worker in id order per `destination`. `idempotency_key` is unique, so writing the same
-- message twice (a retried request) queues it once.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    desk_id          INTEGER NOT NULL REFERENCES desks (id),
    destination      TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL UNIQUE,
    payload          TEXT    NOT NULL,          -- JSON of core::outgoing::Outgoing
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    done_at          INTEGER
);
CREATE INDEX outbox_pending ON outbox (state, destination, id);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Where a ticket's card shows, so later changes edit it in place. `message_id` is the Slack
-- message ts or the Discord message id.
CREATE TABLE card_messages (
    desk_id      INTEGER NOT NULL REFERENCES desks (id),
    ticket_id    INTEGER NOT NULL REFERENCES tickets (id),
    platform     TEXT    NOT NULL,
    surface_id   TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, platform, channel)
) WITHOUT ROWID;
CREATE UNIQUE INDEX card_messages_by_message ON card_messages (platform, channel, message_id);

-- One ticket with the names its views need: the assignee's display name, and the linked
-- individual and organization (the ticket's own organization, else the individual's).
CREATE VIEW ticket_view AS
SELECT t.id, t.desk_id, t.no, t.description, t.priority, t.status, t.assignee, t.reporter,
       t.source, t.created_at, t.updated_at, t.first_response_at, t.resolved_at,
       t.individual_id, t.organization_id,
       m.name AS assignee_name,
       i.name AS individual_name,
       (SELECT e.email FROM individual_emails e
         WHERE e.desk_id = t.desk_id AND e.individual_id = t.individual_id
         ORDER BY e.email LIMIT 1) AS individual_email,
       COALESCE(t.organization_id, i.organization_id) AS org_id,
       o.name AS organization_name
FROM tickets t
LEFT JOIN members m ON m.desk_id = t.desk_id AND m.user_ref = t.assignee
LEFT JOIN individuals i ON i.desk_id = t.desk_id AND i.id = t.individual_id
LEFT JOIN organizations o ON o.desk_id = t.desk_id AND o.id = COALESCE(t.organization_id, i.organization_id);
