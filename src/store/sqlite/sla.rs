//! SLA settings, clocks and alerts, and digests, in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{SqliteStore, at, corrupt, ms};
use crate::core::digest::{Compliance, Digest, Line, SECTION_LINES, Section};
use crate::core::outgoing::Outgoing;
use crate::core::people::{Platform, SurfaceRef, UserRef};
use crate::core::ticket::{DeskId, Priority, Status, TicketId, TicketNo};
use crate::core::view::{Person, first_line};
use crate::store::{DigestSchedule, Result, SlaAlert, SlaSettings, SlaState, SlaStore};

/// A listed ticket as the digest queries read it.
struct LineRow {
    no: i64,
    priority: String,
    status: String,
    description: String,
    assignee: Option<String>,
    assignee_name: Option<String>,
    created_at: i64,
    due: Option<i64>,
    breached_at: Option<i64>,
}

impl LineRow {
    fn line(self) -> Result<Line> {
        let assignee = self
            .assignee
            .map(|a| a.parse::<UserRef>().map_err(corrupt))
            .transpose()?
            .map(|user| Person {
                user,
                name: self.assignee_name,
            });
        Ok(Line {
            no: TicketNo(self.no),
            priority: Priority::parse(&self.priority).ok_or_else(|| corrupt(&self.priority))?,
            status: Status::parse(&self.status).ok_or_else(|| corrupt(&self.status))?,
            description: first_line(&self.description, 100),
            assignee,
            created_at: at(self.created_at),
            due: self.due.map(at),
            breached_at: self.breached_at.map(at),
        })
    }
}

fn section(total: i64, rows: Vec<LineRow>) -> Result<Section> {
    Ok(Section {
        total,
        lines: rows.into_iter().map(LineRow::line).collect::<Result<_>>()?,
    })
}

/// What an alert's outbox rows are keyed by: the ticket, the kind and when it was queued.
/// `sla_alerts` is what sends an alert of a kind once per ticket, whichever write queues it (an
/// SLA refresh, or a change that brought its clocks); the instant keeps a later alert of the
/// same kind apart, once the first was withdrawn (its deadline moved away and was reached
/// again).
pub(super) fn alert_cause(ticket: TicketId, target: &str, level: &str, at: i64) -> String {
    format!("alert:{}:{target}:{level}:{at}", ticket.0)
}

/// A ticket's stored SLA clocks, if it was last changed at `as_of`.
const SLA_BEFORE: &str = "SELECT first_level, resolution_level, first_due, resolution_due, sla_paused,
        sla_check_at
   FROM tickets WHERE desk_id = ?1 ->> 'desk' AND id = ?1 ->> 'ticket' AND updated_at = ?1 ->> 'as_of'";

/// What [`SLA_BEFORE`] reads.
#[derive(sqlx::FromRow)]
struct SlaBefore {
    first_level: Option<String>,
    resolution_level: Option<String>,
    first_due: Option<i64>,
    resolution_due: Option<i64>,
    sla_paused: i64,
    sla_check_at: Option<i64>,
}

#[async_trait]
impl SlaStore for SqliteStore {
    async fn sla_settings(&self, desk: DeskId) -> Result<SlaSettings> {
        let d = sqlx::query!(
            r#"SELECT timezone, business_hours, at_risk_ratio AS "ratio!: f64" FROM desks WHERE id = ?"#,
            desk.0
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let rows = sqlx::query!(
            "SELECT priority, first_response_ms, resolution_ms FROM sla_targets WHERE desk_id = ?",
            desk.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let mut targets = Vec::new();
        for r in rows {
            let p = Priority::parse(&r.priority).ok_or_else(|| corrupt(&r.priority))?;
            targets.push((
                p,
                TimeDelta::milliseconds(r.first_response_ms),
                TimeDelta::milliseconds(r.resolution_ms),
            ));
        }
        let days = sqlx::query_scalar!(
            "SELECT day FROM sla_holidays WHERE desk_id = ? ORDER BY day",
            desk.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let holidays = days
            .iter()
            .map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(corrupt))
            .collect::<Result<_>>()?;
        Ok(SlaSettings {
            timezone: d.timezone,
            business_hours: d.business_hours,
            at_risk_ratio: d.ratio,
            targets,
            holidays,
        })
    }

    async fn set_sla_target(
        &self,
        desk: DeskId,
        priority: Priority,
        first_response: TimeDelta,
        resolution: TimeDelta,
    ) -> Result<()> {
        let p = priority.as_str();
        let (f, r) = (
            first_response.num_milliseconds(),
            resolution.num_milliseconds(),
        );
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO sla_targets (desk_id, priority, first_response_ms, resolution_ms) VALUES (?, ?, ?, ?)
             ON CONFLICT (desk_id, priority) DO UPDATE SET first_response_ms = excluded.first_response_ms,
                 resolution_ms = excluded.resolution_ms",
            desk.0,
            p,
            f,
            r
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_business_hours(
        &self,
        desk: DeskId,
        hours: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE desks SET business_hours = ?, timezone = coalesce(?, timezone) WHERE id = ?",
            hours,
            timezone,
            desk.0
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_holiday(&self, desk: DeskId, day: NaiveDate) -> Result<()> {
        let day = day.format("%Y-%m-%d").to_string();
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT OR IGNORE INTO sla_holidays (desk_id, day) VALUES (?, ?)",
            desk.0,
            day
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn active_ticket_ids(&self, desk: DeskId) -> Result<Vec<TicketId>> {
        let ids = sqlx::query_scalar!(
            r#"SELECT id AS "id!: i64" FROM tickets
               WHERE desk_id = ? AND status IN ('open', 'in_progress', 'waiting')"#,
            desk.0
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(ids.into_iter().map(TicketId).collect())
    }

    async fn save_sla(
        &self,
        desk: DeskId,
        ticket: TicketId,
        as_of: DateTime<Utc>,
        state: &SlaState,
        on_change: &[Outgoing],
        alerts: &[SlaAlert],
        now: DateTime<Utc>,
    ) -> Result<Vec<&'static str>> {
        let now_ms = ms(now);
        let first_due = state.due.first_due.map(ms);
        let resolution_due = state.due.resolution_due.map(ms);
        let paused = state.due.paused;
        let first_level = state.first_level.as_str();
        let resolution_level = state.resolution_level.as_str();
        let check = state.check_at.map(ms);
        // The stored clocks are read with the statement that opens the write's savepoint; when
        // nothing would change (most changes of a ticket move no SLA clock), nothing is written
        // and no commit is waited for.
        // Three integers: written directly, no JSON map built.
        let param = format!(
            r#"{{"desk":{},"ticket":{},"as_of":{}}}"#,
            desk.0,
            ticket.0,
            ms(as_of)
        );
        let (mut tx, rows) = self
            .group
            .write_first(&self.writer, SLA_BEFORE, param)
            .await?;
        let Some(before) = rows
            .first()
            .map(<SlaBefore as sqlx::FromRow<_>>::from_row)
            .transpose()?
        else {
            // The ticket changed since these clocks were computed: the newer change saves its own.
            tx.unchanged();
            return Ok(Vec::new());
        };
        let same = before.first_level.as_deref() == Some(first_level)
            && before.resolution_level.as_deref() == Some(resolution_level)
            && before.first_due == first_due
            && before.resolution_due == resolution_due
            && (before.sla_paused != 0) == paused
            && before.sla_check_at == check;
        if same && alerts.is_empty() {
            tx.unchanged();
            return Ok(Vec::new());
        }
        let mut recorded = Vec::new();
        sqlx::query!(
            "UPDATE tickets SET first_due = ?, resolution_due = ?, sla_paused = ?, first_level = ?,
                 resolution_level = ?, sla_check_at = ?
             WHERE desk_id = ? AND id = ?",
            first_due,
            resolution_due,
            paused,
            first_level,
            resolution_level,
            check,
            desk.0,
            ticket.0
        )
        .execute(&mut *tx)
        .await?;
        let changed = before.first_level.as_deref() != Some(first_level)
            || before.resolution_level.as_deref() != Some(resolution_level);
        if changed {
            // Alerts the clocks fell back below no longer stand: reached again, they alert again.
            let withdrawn = serde_json::to_string(
                &state
                    .withdrawn()
                    .map(|(target, level)| format!("{target}:{level}"))
                    .collect::<Vec<_>>(),
            )
            .map_err(corrupt)?;
            sqlx::query!(
                "DELETE FROM sla_alerts
                  WHERE desk_id = ? AND ticket_id = ?
                    AND target || ':' || level IN (SELECT value FROM json_each(?))",
                desk.0,
                ticket.0,
                withdrawn
            )
            .execute(&mut *tx)
            .await?;
        }
        if changed && before.first_level.is_some() {
            let cause = format!("sla:{}:{first_level}:{resolution_level}:{now_ms}", ticket.0);
            Self::enqueue_in(&mut tx, desk, &cause, on_change, now_ms).await?;
        }
        for alert in alerts {
            let inserted = sqlx::query!(
                "INSERT OR IGNORE INTO sla_alerts (desk_id, ticket_id, target, level, at) VALUES (?, ?, ?, ?, ?)",
                desk.0,
                ticket.0,
                alert.target,
                alert.level,
                now_ms
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                let cause = alert_cause(ticket, alert.target, alert.level, now_ms);
                Self::enqueue_in(&mut tx, desk, &cause, &alert.out, now_ms).await?;
                recorded.push(alert.level);
            }
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn sla_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<(DeskId, TicketId)>> {
        let now = ms(now);
        let rows = sqlx::query!(
            r#"SELECT desk_id AS "desk!: i64", id AS "id!: i64" FROM tickets
               WHERE sla_check_at IS NOT NULL AND sla_check_at <= ? ORDER BY sla_check_at LIMIT ?"#,
            now,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (DeskId(r.desk), TicketId(r.id)))
            .collect())
    }

    async fn sla_next_check(&self) -> Result<Option<DateTime<Utc>>> {
        let next = sqlx::query_scalar!(
            r#"SELECT min(sla_check_at) AS "at: i64" FROM tickets WHERE sla_check_at IS NOT NULL"#
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        Ok(next.map(at))
    }

    async fn digest(
        &self,
        desk: DeskId,
        assignee: Option<&UserRef>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Digest> {
        let who = assignee.map(UserRef::to_string);
        let (now_ms, since_ms) = (ms(now), ms(since));
        let limit = SECTION_LINES as i64;
        let counts = sqlx::query!(
            r#"SELECT priority, status, count(*) AS "n!: i64" FROM tickets
               WHERE desk_id = ?1 AND status IN ('open', 'in_progress', 'waiting')
                 AND (?2 IS NULL OR assignee = ?2)
               GROUP BY priority, status"#,
            desk.0,
            who
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let mut by_priority: Vec<(Priority, [i64; 3])> = [
            Priority::Urgent,
            Priority::High,
            Priority::Medium,
            Priority::Low,
        ]
        .into_iter()
        .map(|p| (p, [0; 3]))
        .collect();
        for c in counts {
            let i = match c.status.as_str() {
                "open" => 0,
                "in_progress" => 1,
                _ => 2,
            };
            if let Some(entry) = by_priority
                .iter_mut()
                .find(|(p, _)| p.as_str() == c.priority)
            {
                entry.1[i] = c.n;
            }
        }
        // Breached: a target whose due time has passed, or that the watcher found breached (a
        // breached ticket waiting on the customer has its clock paused and no due time).
        let breached_total = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!: i64" FROM tickets
               WHERE desk_id = ?1 AND status IN ('open', 'in_progress', 'waiting') AND (?2 IS NULL OR assignee = ?2)
                 AND (first_due <= ?3 OR resolution_due <= ?3
                      OR first_level = 'breached' OR resolution_level = 'breached')"#,
            desk.0,
            who,
            now_ms
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let breached = sqlx::query_as!(
            LineRow,
            r#"SELECT t.no AS "no!", t.priority AS "priority!", t.status AS "status!", t.description AS "description!",
                      t.assignee, m.name AS assignee_name, t.created_at AS "created_at!",
                      min(coalesce(t.first_due, t.resolution_due), coalesce(t.resolution_due, t.first_due)) AS "due: i64",
                      CASE WHEN t.first_due IS NULL AND t.resolution_due IS NULL THEN
                        (SELECT min(a.at) FROM sla_alerts a WHERE a.ticket_id = t.id AND a.level = 'breached')
                      END AS "breached_at: i64"
               FROM tickets t LEFT JOIN members m ON m.desk_id = t.desk_id AND m.user_ref = t.assignee
               WHERE t.desk_id = ?1 AND t.status IN ('open', 'in_progress', 'waiting') AND (?2 IS NULL OR t.assignee = ?2)
                 AND (t.first_due <= ?3 OR t.resolution_due <= ?3
                      OR t.first_level = 'breached' OR t.resolution_level = 'breached')
               ORDER BY "due: i64" IS NULL, 8 LIMIT ?4"#,
            desk.0,
            who,
            now_ms,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let at_risk_total = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!: i64" FROM tickets
               WHERE desk_id = ?1 AND status IN ('open', 'in_progress', 'waiting') AND (?2 IS NULL OR assignee = ?2)
                 AND (first_level = 'at_risk' OR resolution_level = 'at_risk')
                 AND NOT (coalesce(first_due <= ?3, 0) OR coalesce(resolution_due <= ?3, 0)
                          OR coalesce(first_level = 'breached', 0)
                          OR coalesce(resolution_level = 'breached', 0))"#,
            desk.0,
            who,
            now_ms
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let at_risk = sqlx::query_as!(
            LineRow,
            r#"SELECT t.no AS "no!", t.priority AS "priority!", t.status AS "status!", t.description AS "description!",
                      t.assignee, m.name AS assignee_name, t.created_at AS "created_at!",
                      min(coalesce(t.first_due, t.resolution_due), coalesce(t.resolution_due, t.first_due)) AS "due: i64",
                      NULL AS "breached_at: i64"
               FROM tickets t LEFT JOIN members m ON m.desk_id = t.desk_id AND m.user_ref = t.assignee
               WHERE t.desk_id = ?1 AND t.status IN ('open', 'in_progress', 'waiting') AND (?2 IS NULL OR t.assignee = ?2)
                 AND (t.first_level = 'at_risk' OR t.resolution_level = 'at_risk')
                 AND NOT (coalesce(t.first_due <= ?3, 0) OR coalesce(t.resolution_due <= ?3, 0)
                          OR coalesce(t.first_level = 'breached', 0)
                          OR coalesce(t.resolution_level = 'breached', 0))
               ORDER BY "due: i64" IS NULL, 8 LIMIT ?4"#,
            desk.0,
            who,
            now_ms,
            limit
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let unassigned_total = if who.is_some() {
            0
        } else {
            sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!: i64" FROM tickets
                   WHERE desk_id = ? AND status IN ('open', 'in_progress', 'waiting') AND assignee IS NULL"#,
                desk.0
            )
            .fetch_one(&mut *self.read().await?)
            .await?
        };
        let unassigned = if who.is_some() {
            Vec::new()
        } else {
            sqlx::query_as!(
                LineRow,
                r#"SELECT no AS "no!", priority AS "priority!", status AS "status!", description AS "description!",
                          assignee, NULL AS "assignee_name: String", created_at AS "created_at!", NULL AS "due: i64",
                          NULL AS "breached_at: i64"
                   FROM tickets
                   WHERE desk_id = ? AND status IN ('open', 'in_progress', 'waiting') AND assignee IS NULL
                   ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, no
                   LIMIT ?"#,
                desk.0,
                limit
            )
            .fetch_all(&mut *self.read().await?)
            .await?
        };
        let open_total: i64 = by_priority.iter().map(|(_, c)| c.iter().sum::<i64>()).sum();
        let oldest = sqlx::query_as!(
            LineRow,
            r#"SELECT t.no AS "no!", t.priority AS "priority!", t.status AS "status!", t.description AS "description!",
                      t.assignee, m.name AS assignee_name, t.created_at AS "created_at!", NULL AS "due: i64",
                      NULL AS "breached_at: i64"
               FROM tickets t LEFT JOIN members m ON m.desk_id = t.desk_id AND m.user_ref = t.assignee
               WHERE t.desk_id = ?1 AND t.status IN ('open', 'in_progress', 'waiting') AND (?2 IS NULL OR t.assignee = ?2)
               ORDER BY t.created_at, t.no LIMIT 5"#,
            desk.0,
            who
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let per = sqlx::query!(
            r#"SELECT t.assignee AS "assignee!", m.name, count(*) AS "n!: i64"
               FROM tickets t LEFT JOIN members m ON m.desk_id = t.desk_id AND m.user_ref = t.assignee
               WHERE t.desk_id = ?1 AND t.status IN ('open', 'in_progress', 'waiting') AND t.assignee IS NOT NULL
                 AND (?2 IS NULL OR t.assignee = ?2)
               GROUP BY t.assignee ORDER BY 3 DESC, 1 LIMIT 10"#,
            desk.0,
            who
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let mut per_assignee = Vec::new();
        for p in per {
            let user: UserRef = p.assignee.parse().map_err(corrupt)?;
            per_assignee.push((Person { user, name: p.name }, p.n));
        }
        let flow = sqlx::query!(
            r#"SELECT coalesce(sum(created_at >= ?3), 0) AS "created!: i64",
                      coalesce(sum(resolved_at >= ?3), 0) AS "resolved!: i64"
               FROM tickets WHERE desk_id = ?1 AND (?2 IS NULL OR assignee = ?2)
                 AND (created_at >= ?3 OR resolved_at >= ?3)"#,
            desk.0,
            who,
            since_ms
        )
        .fetch_one(&mut *self.read().await?)
        .await?;
        let week = now_ms - 7 * 24 * 3600 * 1000;
        // A target missed and still not met counts in the week it was missed: its due time, or
        // while the clock is paused (waiting on the customer: no due time), its breach alert's.
        let rows = sqlx::query!(
            r#"SELECT priority AS "priority!",
                      coalesce(sum(first_response_at >= ?3 AND first_level = 'met'), 0) AS "first_met!: i64",
                      coalesce(sum((first_response_at >= ?3 AND first_level IN ('met', 'met_late'))
                                   OR (first_response_at IS NULL AND first_level = 'breached' AND coalesce(first_due, (SELECT a.at FROM sla_alerts a WHERE a.ticket_id = tickets.id AND a.target = 'first_response' AND a.level = 'breached')) >= ?3)), 0) AS "first_total!: i64",
                      coalesce(sum(resolved_at >= ?3 AND resolution_level = 'met'), 0) AS "res_met!: i64",
                      coalesce(sum((resolved_at >= ?3 AND resolution_level IN ('met', 'met_late'))
                                   OR (resolved_at IS NULL AND resolution_level = 'breached' AND coalesce(resolution_due, (SELECT a.at FROM sla_alerts a WHERE a.ticket_id = tickets.id AND a.target = 'resolution' AND a.level = 'breached')) >= ?3)), 0) AS "res_total!: i64"
               FROM tickets WHERE desk_id = ?1 AND (?2 IS NULL OR assignee = ?2)
                 AND (first_response_at >= ?3 OR resolved_at >= ?3
                      OR (first_level = 'breached' AND coalesce(first_due, (SELECT a.at FROM sla_alerts a WHERE a.ticket_id = tickets.id AND a.target = 'first_response' AND a.level = 'breached')) >= ?3)
                      OR (resolution_level = 'breached' AND coalesce(resolution_due, (SELECT a.at FROM sla_alerts a WHERE a.ticket_id = tickets.id AND a.target = 'resolution' AND a.level = 'breached')) >= ?3))
               GROUP BY priority"#,
            desk.0,
            who,
            week
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        let mut compliance = Vec::new();
        for p in [
            Priority::Urgent,
            Priority::High,
            Priority::Medium,
            Priority::Low,
        ] {
            if let Some(r) = rows.iter().find(|r| r.priority == p.as_str()) {
                compliance.push(Compliance {
                    priority: p,
                    first_met: r.first_met,
                    first_total: r.first_total,
                    resolution_met: r.res_met,
                    resolution_total: r.res_total,
                });
            }
        }
        let _ = open_total;
        Ok(Digest {
            title: String::new(),
            at: now,
            since,
            by_priority,
            breached: section(breached_total, breached)?,
            at_risk: section(at_risk_total, at_risk)?,
            unassigned: section(unassigned_total, unassigned)?,
            oldest: section(open_total, oldest)?,
            per_assignee,
            created: flow.created,
            resolved: flow.resolved,
            compliance,
            // The desk fills it in: the schedule's zone, or its own.
            timezone: "UTC".into(),
        })
    }

    async fn add_digest_schedule(&self, s: &DigestSchedule, now: DateTime<Utc>) -> Result<i64> {
        let platform = s.surface.platform.as_str();
        let user = s.user.as_ref().map(UserRef::to_string);
        let (last, now) = (ms(s.last_run), ms(now));
        let mut tx = self.write().await?;
        // One schedule a channel, and one digest of their own a person: a new one replaces it.
        sqlx::query!(
            "DELETE FROM digest_schedules
              WHERE desk_id = ?1 AND platform = ?2 AND surface_id = ?3
                AND CASE WHEN ?5 IS NULL THEN user_ref IS NULL AND channel = ?4
                         ELSE user_ref = ?5 END",
            s.desk.0,
            platform,
            s.surface.external_id,
            s.channel,
            user
        )
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO digest_schedules (desk_id, platform, surface_id, channel, user_ref, cron, timezone, last_run, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id AS "id!: i64""#,
            s.desk.0,
            platform,
            s.surface.external_id,
            s.channel,
            user,
            s.cron,
            s.timezone,
            last,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn remove_personal_digest(&self, desk: DeskId, user: &UserRef) -> Result<u64> {
        let user = user.to_string();
        let mut tx = self.write().await?;
        let n = sqlx::query!(
            "DELETE FROM digest_schedules WHERE desk_id = ? AND user_ref = ?",
            desk.0,
            user
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn remove_digest_schedules(
        &self,
        desk: DeskId,
        surface: &SurfaceRef,
        channel: &str,
    ) -> Result<u64> {
        let platform = surface.platform.as_str();
        let mut tx = self.write().await?;
        let n = sqlx::query!(
            "DELETE FROM digest_schedules WHERE desk_id = ? AND platform = ? AND surface_id = ? AND channel = ?
               AND user_ref IS NULL",
            desk.0,
            platform,
            surface.external_id,
            channel
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn digest_schedules(&self) -> Result<Vec<DigestSchedule>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id!: i64", desk_id, platform, surface_id, channel, user_ref, cron, timezone, last_run
               FROM digest_schedules ORDER BY id"#
        )
        .fetch_all(&mut *self.read().await?)
        .await?;
        rows.into_iter()
            .map(|r| {
                let platform = Platform::parse(&r.platform).ok_or_else(|| corrupt(&r.platform))?;
                Ok(DigestSchedule {
                    id: r.id,
                    desk: DeskId(r.desk_id),
                    surface: SurfaceRef::new(platform, &r.surface_id),
                    channel: r.channel,
                    user: r.user_ref.map(|u| u.parse().map_err(corrupt)).transpose()?,
                    cron: r.cron,
                    timezone: r.timezone,
                    last_run: at(r.last_run),
                })
            })
            .collect()
    }

    async fn run_digest(
        &self,
        schedule: i64,
        run: DateTime<Utc>,
        out: &[Outgoing],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let run_ms = ms(run);
        let mut tx = self.write().await?;
        let desk = sqlx::query_scalar!(
            "UPDATE digest_schedules SET last_run = ? WHERE id = ? AND last_run < ? RETURNING desk_id",
            run_ms,
            schedule,
            run_ms
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(desk) = desk else {
            return Ok(false);
        };
        Self::enqueue_in(
            &mut tx,
            DeskId(desk),
            &format!("digest:{schedule}:{run_ms}"),
            out,
            ms(now),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
