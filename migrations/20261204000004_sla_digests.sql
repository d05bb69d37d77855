-- The SLA clock and scheduled digests.

-- Per-desk SLA settings: the timezone of business hours and digests, business hours as
-- written ('Mon-Fri 09:00-17:00 Europe/Helsinki', NULL = around the clock), and the share of a
-- target after which a ticket is at risk.
ALTER TABLE desks ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE desks ADD COLUMN business_hours TEXT;
ALTER TABLE desks ADD COLUMN at_risk_ratio REAL NOT NULL DEFAULT 0.75
    CHECK (at_risk_ratio > 0 AND at_risk_ratio < 1);

-- Targets a desk changed from the defaults (core/sla.rs), in milliseconds.
CREATE TABLE sla_targets (
    desk_id            INTEGER NOT NULL REFERENCES desks (id),
    priority           TEXT    NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    first_response_ms  INTEGER NOT NULL CHECK (first_response_ms >= 30000),
    resolution_ms      INTEGER NOT NULL CHECK (resolution_ms >= 30000),
    PRIMARY KEY (desk_id, priority)
) WITHOUT ROWID;

-- Whole days the SLA clock does not count (local dates in the desk's business-hours zone).
CREATE TABLE sla_holidays (
    desk_id  INTEGER NOT NULL REFERENCES desks (id),
    day      TEXT    NOT NULL,                  -- YYYY-MM-DD
    PRIMARY KEY (desk_id, day)
) WITHOUT ROWID;

-- Each ticket's clocks as last computed (on every relevant change and by the watcher):
-- when each target falls due (NULL once met or while paused), its level, whether the clocks
-- are paused (waiting), and when the watcher must look at the ticket next.
ALTER TABLE tickets ADD COLUMN first_due INTEGER;
ALTER TABLE tickets ADD COLUMN resolution_due INTEGER;
ALTER TABLE tickets ADD COLUMN first_level TEXT;
ALTER TABLE tickets ADD COLUMN resolution_level TEXT;
ALTER TABLE tickets ADD COLUMN sla_paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN sla_check_at INTEGER;
CREATE INDEX tickets_sla_check ON tickets (sla_check_at) WHERE sla_check_at IS NOT NULL;

-- Warnings and breach alerts sent, once per ticket, target and level. Written in the same
-- transaction as the outbox rows that carry them: no repeat after a restart, none missed.
CREATE TABLE sla_alerts (
    desk_id    INTEGER NOT NULL REFERENCES desks (id),
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    target     TEXT    NOT NULL CHECK (target IN ('first_response', 'resolution')),
    level      TEXT    NOT NULL CHECK (level IN ('at_risk', 'breached')),
    at         INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, target, level)
) WITHOUT ROWID;

-- Scheduled digests: a channel's (user_ref NULL) or one person's own queue (user_ref set,
-- delivered as a direct message). `last_run` is the scheduled instant last handled (posted,
-- or skipped because the server was down for more than an hour), so each instant runs once.
CREATE TABLE digest_schedules (
    id          INTEGER PRIMARY KEY,
    desk_id     INTEGER NOT NULL REFERENCES desks (id),
    platform    TEXT    NOT NULL,
    surface_id  TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    user_ref    TEXT,
    cron        TEXT    NOT NULL,
    timezone    TEXT    NOT NULL,
    last_run    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX digest_schedules_by_desk ON digest_schedules (desk_id, channel);

-- ticket_view again, with the SLA columns cards need.
DROP VIEW ticket_view;
CREATE VIEW ticket_view AS
SELECT t.id, t.desk_id, t.no, t.description, t.priority, t.status, t.assignee, t.reporter,
       t.source, t.created_at, t.updated_at, t.first_response_at, t.resolved_at,
       t.individual_id, t.organization_id, t.first_due, t.resolution_due, t.sla_paused,
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
