//! SLA and digests on the desk: the `sla` and `digest` commands, keeping each ticket's clocks
//! stored, the watcher's warnings and breach alerts, and scheduled digests.
//!
//! The arithmetic is pure ([`crate::core::sla`]); this module loads a ticket's history and its
//! desk's policy and calendar, computes, and stores the result with any alerts in one
//! transaction.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::{Desks, Reply, mention_text};
use crate::core::digest::Digest;
use crate::core::outgoing::Outgoing;
use crate::core::people::{Actor, Surface, UserRef};
use crate::core::sla::{self, BusinessHours, Calendar, Level, Policy, SlaDue, Step, Targets};
use crate::core::ticket::{DeskId, Priority, Ticket};
use crate::store::{DigestSchedule, SlaAlert, SlaPlan, SlaState, StoreError};

/// How late a scheduled digest may still be posted after the server was down.
pub const DIGEST_GRACE: TimeDelta = TimeDelta::hours(1);

/// A desk's policy and calendar, and its timezone.
#[derive(Debug, Clone)]
pub struct SlaContext {
    pub policy: Policy,
    /// Shared, so that a ticket's [`sla::Memo`] can tell the calendar it was computed with.
    pub calendar: std::sync::Arc<Calendar>,
    pub timezone: String,
}

/// Parses a cron expression as digests take it: 5 fields, or 6 with seconds first; POSIX
/// weekdays (0 and 7 are Sunday, 1-5 Monday to Friday).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr).map_err(|e| format!("{expr:?} is not a cron schedule ({e})"))
}

/// Parses an IANA timezone name.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    crate::core::sla::find_tz(name)
        .ok_or_else(|| format!("{name:?} is not a timezone; use an IANA name like Europe/Helsinki"))
}

/// The next run of `cron` in `tz` strictly after `after`.
pub fn next_run(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The latest run of `cron` in `tz` at or before `at`.
pub fn last_run(cron: &Cron, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&at.with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn example_hours() -> &'static str {
    "/ticket sla hours Mon-Fri 09:00-17:00 Europe/Helsinki"
}

impl Desks {
    /// A new ticket's clocks, stored with it in the create transaction.
    pub async fn new_ticket_sla(
        &self,
        desk: DeskId,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> Result<SlaState, StoreError> {
        let ctx = self.sla_context(desk).await?;
        let events = [sla::SlaEvent {
            at: now,
            kind: sla::SlaEventKind::Created { priority },
        }];
        let clocks = sla::clocks(&ctx.policy, &ctx.calendar, &events, now);
        Ok(SlaState {
            due: SlaDue::of(&clocks),
            first_level: clocks.first_response.level,
            resolution_level: clocks.resolution.level,
            check_at: sla::next_change_of(&ctx.policy, &ctx.calendar, &clocks, now),
        })
    }

    /// Forgets a desk's cached SLA settings (after they change).
    pub fn forget_sla_context(&self, desk: DeskId) {
        if let Ok(mut cache) = self.sla_cache.lock() {
            cache.remove(&desk);
        }
    }

    /// The desk's SLA policy and calendar (cached for a minute; changes here forget it).
    pub async fn sla_context(&self, desk: DeskId) -> Result<SlaContext, StoreError> {
        if let Ok(cache) = self.sla_cache.lock()
            && let Some((ctx, at)) = cache.get(&desk)
            && at.elapsed() < std::time::Duration::from_secs(60)
        {
            return Ok(ctx.clone());
        }
        let ctx = self.load_sla_context(desk).await?;
        if let Ok(mut cache) = self.sla_cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(desk, (ctx.clone(), std::time::Instant::now()));
        }
        Ok(ctx)
    }

    async fn load_sla_context(&self, desk: DeskId) -> Result<SlaContext, StoreError> {
        let s = self.store.sla_settings(desk).await?;
        let mut policy = Policy::default();
        for (p, first, resolution) in s.targets {
            if let Ok(t) = Targets::new(first, resolution) {
                policy.set(p, t);
            }
        }
        let _ = policy.set_risk_ratio(s.at_risk_ratio);
        let calendar = match s.business_hours.as_deref().map(BusinessHours::from_str) {
            Some(Ok(hours)) => Calendar::new(hours, s.holidays),
            Some(Err(e)) => {
                tracing::warn!(desk.id = %desk, error = %e, "Stored business hours do not parse; the SLA clock runs around the clock.");
                Calendar::always()
            }
            None => Calendar::always(),
        };
        Ok(SlaContext {
            policy,
            calendar: std::sync::Arc::new(calendar),
            timezone: s.timezone,
        })
    }

    /// Recomputes a ticket's clocks, stores them, and queues any warning or breach alert not
    /// sent before and a card refresh when a level changed. Returns the ticket with its new
    /// due times. Failures are logged: the change that led here has already been made.
    pub async fn refresh_sla(&self, desk: DeskId, ticket: Ticket) -> Ticket {
        match self.evaluate(desk, &ticket, None).await {
            Ok(due) => Ticket { sla: due, ..ticket },
            Err(e) => {
                tracing::error!(desk.id = %desk, ticket.no = ticket.no.0, error = %e, "The SLA clocks could not be stored.");
                ticket
            }
        }
    }

    /// What computes a changed ticket's clocks inside the change's write (see [`SlaPlan`]):
    /// the desk's policy and calendar, and the alerts' messages to `surfaces`.
    pub(super) async fn sla_plan(
        &self,
        desk: DeskId,
        surfaces: Vec<Surface>,
        now: DateTime<Utc>,
    ) -> Result<SlaPlan, StoreError> {
        let ctx = self.sla_context(desk).await?;
        Ok(Box::new(
            move |ticket: &Ticket, timeline: &[Step], memo: &mut Option<sla::Memo>| {
                plan_clocks(&ctx, ticket, timeline, memo, &surfaces, now)
            },
        ))
    }

    async fn evaluate(
        &self,
        desk: DeskId,
        ticket: &Ticket,
        context: Option<&SlaContext>,
    ) -> Result<SlaDue, StoreError> {
        let now = self.clock.now();
        let loaded;
        let ctx = match context {
            Some(c) => c,
            None => {
                loaded = self.sla_context(desk).await?;
                &loaded
            }
        };
        let timeline = self.store.timeline(desk, ticket.id).await?;
        let steps: Vec<Step> = timeline.iter().filter_map(Step::of_event).collect();
        let surfaces = self.surfaces(desk).await?;
        let (state, alerts) = plan_clocks(ctx, ticket, &steps, &mut None, &surfaces, now);
        let on_change: Vec<Outgoing> = surfaces
            .iter()
            .map(|s| Outgoing::UpdateCards {
                surface: s.surface.clone(),
                ticket: ticket.id,
                note: None,
                answered: None,
            })
            .collect();
        let recorded = self
            .store
            .save_sla(
                desk,
                ticket.id,
                ticket.updated_at,
                &state,
                &on_change,
                &alerts,
                now,
            )
            .await?;
        alerts_queued(desk, ticket, &recorded);
        if !recorded.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(state.due)
    }

    /// Recomputes every active ticket of a desk (after a policy or calendar change).
    pub async fn refresh_desk_sla(&self, desk: DeskId) -> Result<usize, StoreError> {
        let ctx = self.sla_context(desk).await?;
        let ids = self.store.active_ticket_ids(desk).await?;
        for id in &ids {
            if let Some(r) = self.store.ticket_by_id(desk, *id).await? {
                self.evaluate(desk, &r.ticket, Some(&ctx)).await?;
            }
        }
        self.outbox_wake.notify_one();
        Ok(ids.len())
    }

    /// One pass of the SLA watcher: every ticket whose clocks need a look by now. Returns how
    /// many were looked at.
    pub async fn sla_tick(&self) -> usize {
        let now = self.clock.now();
        let due = match self.store.sla_due(now, 200).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "The SLA watcher could not read due tickets.");
                return 0;
            }
        };
        for (desk, id) in &due {
            let result = async {
                let Some(r) = self.store.ticket_by_id(*desk, *id).await? else {
                    return Ok(());
                };
                self.evaluate(*desk, &r.ticket, None).await.map(|_| ())
            }
            .await;
            if let Err(e) = result {
                tracing::error!(desk.id = %desk, error = %e, "The SLA watcher could not check a ticket.");
            }
        }
        due.len()
    }

    pub(super) async fn sla_show(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let ctx = self.sla_context(actor.desk).await?;
        let mut lines = vec!["SLA targets (first response / resolution):".to_owned()];
        for p in [
            Priority::Urgent,
            Priority::High,
            Priority::Medium,
            Priority::Low,
        ] {
            let t = ctx.policy.get(p);
            lines.push(format!(
                "{p}: {} / {}",
                sla::human(t.first_response),
                sla::human(t.resolution)
            ));
        }
        lines.push(match &ctx.calendar.hours {
            Some(h) => format!("Business hours: {h}."),
            None => "The clock runs around the clock; set business hours with /ticket sla hours Mon-Fri 09:00-17:00 Europe/Helsinki".into(),
        });
        if !ctx.calendar.holidays.is_empty() {
            let days: Vec<String> = ctx
                .calendar
                .holidays
                .iter()
                .map(|d| d.to_string())
                .collect();
            lines.push(format!("Holidays: {}.", days.join(", ")));
        }
        lines.push(format!(
            "A ticket is at risk once {}% of a target is used.",
            (ctx.policy.risk_ratio() * 100.0).round()
        ));
        Ok(Reply::private(lines.join("\n")))
    }

    pub(super) async fn sla_set(
        &self,
        actor: &Actor,
        priority: Priority,
        first: std::time::Duration,
        resolution: std::time::Duration,
    ) -> Result<Reply, StoreError> {
        let (Ok(first), Ok(resolution)) =
            (TimeDelta::from_std(first), TimeDelta::from_std(resolution))
        else {
            return Ok(Reply::Error(
                "Durations run from 30s to 90d, like /ticket sla high 4h 1d".into(),
            ));
        };
        if let Err(e) = Targets::new(first, resolution) {
            return Ok(Reply::Error(format!(
                "{e}. For example: /ticket sla high 4h 1d"
            )));
        }
        self.store
            .set_sla_target(actor.desk, priority, first, resolution)
            .await?;
        self.forget_sla_context(actor.desk);
        let n = self.refresh_desk_sla(actor.desk).await?;
        Ok(Reply::Text {
            text: format!(
                "{priority} tickets now get a first response within {} and a resolution within {}; {n} open ticket(s) recomputed.",
                sla::human(first),
                sla::human(resolution)
            ),
            private: false,
        })
    }

    pub(super) async fn sla_hours(
        &self,
        actor: &Actor,
        hours: Option<BusinessHours>,
    ) -> Result<Reply, StoreError> {
        let text = match hours {
            None => {
                self.store
                    .set_business_hours(actor.desk, None, None)
                    .await?;
                self.forget_sla_context(actor.desk);
                "The SLA clock now runs around the clock.".to_owned()
            }
            Some(parsed) => {
                let written = parsed.to_string();
                self.store
                    .set_business_hours(actor.desk, Some(&written), Some(parsed.tz.name()))
                    .await?;
                self.forget_sla_context(actor.desk);
                format!("The SLA clock now counts business hours only: {written}.")
            }
        };
        let n = self.refresh_desk_sla(actor.desk).await?;
        Ok(Reply::Text {
            text: format!("{text} {n} open ticket(s) recomputed."),
            private: false,
        })
    }

    pub(super) async fn sla_holiday(
        &self,
        actor: &Actor,
        day: chrono::NaiveDate,
    ) -> Result<Reply, StoreError> {
        self.store.add_holiday(actor.desk, day).await?;
        self.forget_sla_context(actor.desk);
        let ctx = self.sla_context(actor.desk).await?;
        let n = self.refresh_desk_sla(actor.desk).await?;
        let note = if ctx.calendar.hours.is_none() {
            format!(
                " Holidays count once business hours are set ({}).",
                example_hours()
            )
        } else {
            String::new()
        };
        Ok(Reply::Text {
            text: format!(
                "{day} is a holiday: the SLA clock does not count it. {n} open ticket(s) recomputed.{note}"
            ),
            private: false,
        })
    }

    /// The digest of a desk (or of one person's queue) now, counting flow since `since`, its
    /// times shown in `timezone` (by default the desk's).
    pub async fn digest_of(
        &self,
        desk: DeskId,
        assignee: Option<&UserRef>,
        since: DateTime<Utc>,
        timezone: Option<&str>,
    ) -> Result<Digest, StoreError> {
        let now = self.clock.now();
        let mut d = self.store.digest(desk, assignee, since, now).await?;
        d.timezone = match timezone {
            Some(zone) => zone.to_owned(),
            None => self.sla_context(desk).await?.timezone,
        };
        let when = crate::core::digest::local_time(now, &d.timezone);
        d.title = match assignee {
            Some(_) => format!("Your queue, {when}"),
            None => format!("Support queue, {when}"),
        };
        Ok(d)
    }

    pub(super) async fn digest_now(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let since = self.clock.now() - TimeDelta::days(1);
        Ok(Reply::Digest(Box::new(
            self.digest_of(actor.desk, None, since, None).await?,
        )))
    }

    pub(super) async fn digest_schedule(
        &self,
        actor: &Actor,
        cron: &str,
        timezone: Option<&str>,
        personal: bool,
    ) -> Result<Reply, StoreError> {
        let example = if personal {
            "/ticket digest me \"30 8 * * 1-5\""
        } else {
            "/ticket digest schedule \"0 9 * * 1-5\" Europe/Helsinki"
        };
        let Some(channel) = actor.channel.clone() else {
            return Ok(Reply::Error(format!("Run it in a channel, like {example}")));
        };
        let parsed = match parse_cron(cron) {
            Ok(c) => c,
            Err(e) => return Ok(Reply::Error(format!("{e}. For example: {example}"))),
        };
        let zone = match timezone {
            Some(z) => z.to_owned(),
            None => self.sla_context(actor.desk).await?.timezone,
        };
        let tz = match parse_tz(&zone) {
            Ok(tz) => tz,
            Err(e) => return Ok(Reply::Error(format!("{e}. For example: {example}"))),
        };
        // Kept as IANA spells it, however it was typed.
        let zone = tz.name().to_owned();
        let now = self.clock.now();
        let Some(next) = next_run(&parsed, tz, now) else {
            return Ok(Reply::Error(format!(
                "{cron:?} never runs. For example: {example}"
            )));
        };
        let schedule = DigestSchedule {
            id: 0,
            desk: actor.desk,
            surface: actor.surface.clone(),
            channel,
            user: personal.then(|| actor.user.clone()),
            cron: cron.to_owned(),
            timezone: zone.clone(),
            last_run: now,
        };
        self.store.add_digest_schedule(&schedule, now).await?;
        self.digest_wake.notify_one();
        let local = next.with_timezone(&tz).format("%a %Y-%m-%d %H:%M");
        Ok(if personal {
            Reply::private(format!(
                "You will get a digest of your own queue by direct message on \"{cron}\" ({zone}); the first on {local}."
            ))
        } else {
            Reply::Text {
                text: format!(
                    "This channel gets a digest on \"{cron}\" ({zone}); the first on {local}."
                ),
                private: false,
            }
        })
    }

    pub(super) async fn digest_me_off(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let n = (self.store)
            .remove_personal_digest(actor.desk, &actor.user)
            .await?;
        self.digest_wake.notify_one();
        Ok(Reply::private(if n == 0 {
            "You had no digest of your own. Start one with /ticket digest me \"30 8 * * 1-5\""
                .into()
        } else {
            "Your own digest is stopped.".to_owned()
        }))
    }

    pub(super) async fn digest_off(&self, actor: &Actor) -> Result<Reply, StoreError> {
        let Some(channel) = &actor.channel else {
            return Ok(Reply::Error(
                "Run /ticket digest off in the channel whose digests should stop.".into(),
            ));
        };
        let n = self
            .store
            .remove_digest_schedules(actor.desk, &actor.surface, channel)
            .await?;
        self.digest_wake.notify_one();
        Ok(Reply::Text {
            text: if n == 0 {
                "This channel had no scheduled digests.".into()
            } else {
                format!("Removed {n} scheduled digest(s) from this channel.")
            },
            private: false,
        })
    }

    /// One pass of the digest scheduler: posts each schedule's latest due run once, when it is
    /// less than an hour late, and skips older missed runs. Returns the earliest next run.
    pub async fn digest_tick(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let schedules = match self.store.digest_schedules().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "The digest scheduler could not read schedules.");
                return None;
            }
        };
        let mut earliest: Option<DateTime<Utc>> = None;
        for s in schedules {
            let (Ok(cron), Ok(tz)) = (parse_cron(&s.cron), parse_tz(&s.timezone)) else {
                tracing::warn!(
                    schedule = s.id,
                    "A digest schedule does not parse; it is skipped."
                );
                continue;
            };
            if let Some(run) = last_run(&cron, tz, now).filter(|r| *r > s.last_run)
                && let Err(e) = self.run_schedule(&s, run, now).await
            {
                tracing::error!(schedule = s.id, error = %e, "A digest could not be queued.");
            }
            if let Some(next) = next_run(&cron, tz, now) {
                earliest = Some(earliest.map_or(next, |e| e.min(next)));
            }
        }
        earliest
    }

    async fn run_schedule(
        &self,
        s: &DigestSchedule,
        run: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if now - run >= DIGEST_GRACE {
            // Too late to be useful: mark it handled and wait for the next.
            self.store.run_digest(s.id, run, &[], now).await?;
            tracing::info!(
                schedule = s.id,
                "A digest missed while the server was down was skipped."
            );
            return Ok(());
        }
        let mut digest = self
            .digest_of(s.desk, s.user.as_ref(), s.last_run, Some(&s.timezone))
            .await?;
        digest.at = now;
        let out = [Outgoing::Digest {
            surface: s.surface.clone(),
            channel: s.channel.clone(),
            user: s.user.clone(),
            digest: Box::new(digest),
        }];
        if self.store.run_digest(s.id, run, &out, now).await? {
            metrics::counter!("piraja_digest_runs_total").increment(1);
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

/// A ticket's clocks from its timeline at `now`, and the alerts due (each once: the store
/// queues an alert the ticket had before no second time).
fn plan_clocks(
    ctx: &SlaContext,
    ticket: &Ticket,
    timeline: &[Step],
    memo: &mut Option<sla::Memo>,
    surfaces: &[Surface],
    now: DateTime<Utc>,
) -> (SlaState, Vec<SlaAlert>) {
    let clocks = sla::clocks_of(&ctx.policy, &ctx.calendar, ticket, timeline, memo, now);
    // Alerts due now are queued with the clocks, so the next look is when a level next
    // changes.
    let state = SlaState {
        due: SlaDue::of(&clocks),
        first_level: clocks.first_response.level,
        resolution_level: clocks.resolution.level,
        check_at: sla::next_change_of(&ctx.policy, &ctx.calendar, &clocks, now),
    };
    let mut alerts = Vec::new();
    for (target, clock, words) in [
        ("first_response", &clocks.first_response, "first response"),
        ("resolution", &clocks.resolution, "resolution"),
    ] {
        let level = match clock.level {
            Level::AtRisk => "at_risk",
            Level::Breached => "breached",
            _ => continue,
        };
        let out = alert_messages(ticket, surfaces, level, words, clock.due, now);
        alerts.push(SlaAlert { target, level, out });
    }
    (state, alerts)
}

/// Counts and logs the alerts a write queued.
pub(super) fn alerts_queued(desk: DeskId, ticket: &Ticket, recorded: &[&'static str]) {
    for level in recorded {
        let name = if *level == "breached" {
            "breach"
        } else {
            "warning"
        };
        metrics::counter!("piraja_sla_alerts_total", "kind" => name).increment(1);
        tracing::info!(desk.id = %desk, ticket.no = ticket.no.0, level, "An SLA alert was queued.");
    }
}

/// What a warning or breach says, and to whom: a warning goes to the assignee (or the
/// notification channels when nobody is assigned); a breach goes to the notification channels,
/// mentioning the assignee.
fn alert_messages(
    ticket: &Ticket,
    surfaces: &[crate::core::people::Surface],
    level: &str,
    target: &str,
    due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Outgoing> {
    let when = match due {
        Some(d) if d > now => format!("due in {}", sla::human(d - now)),
        Some(d) => format!("overdue by {}", sla::human(now - d)),
        None => "due".into(),
    };
    // Quoted, not acted on: mentions in the description do not ping from an alert.
    let what = crate::core::view::inert(&crate::core::view::first_line(&ticket.description, 120));
    let who = ticket.assignee.as_ref().map(mention_text);
    let text = if level == "breached" {
        format!(
            "🚨 {} breached its {target} target ({when}): {what}{}",
            ticket.no,
            who.map(|w| format!(" · {w}"))
                .unwrap_or_else(|| " · nobody is assigned".into())
        )
    } else {
        format!("⏳ {} is at risk: {target} {when}: {what}", ticket.no)
    };
    // The assignee is mentioned on their own platform and named by platform on the other.
    let people: Vec<_> = ticket.assignee.iter().map(|u| (u, None)).collect();
    let channels = || -> Vec<Outgoing> {
        surfaces
            .iter()
            .filter_map(|s| {
                Some(Outgoing::ChannelMessage {
                    surface: s.surface.clone(),
                    channel: s.notify_channel.clone()?,
                    text: super::for_platform(&text, s.surface.platform, &people),
                })
            })
            .collect()
    };
    match (&ticket.assignee, level) {
        (Some(user), "at_risk") => surfaces
            .iter()
            .find(|s| s.surface.platform == user.platform)
            .map(|s| {
                vec![Outgoing::DirectMessage {
                    surface: s.surface.clone(),
                    user: user.clone(),
                    text: text.clone(),
                    ticket: Some(ticket.id),
                }]
            })
            .unwrap_or_else(channels),
        _ => channels(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn cron_takes_five_or_six_fields_with_posix_weekdays() {
        let weekdays = parse_cron("0 9 * * 1-5").unwrap();
        let tz = parse_tz("Europe/Helsinki").unwrap();
        // Friday 2026-12-04 10:00 Helsinki (08:00 UTC): next is Monday 09:00 Helsinki.
        assert_eq!(
            next_run(&weekdays, tz, utc(2026, 12, 4, 8, 0)),
            Some(utc(2026, 12, 7, 7, 0))
        );
        let sunday = parse_cron("0 0 9 * * 0").unwrap();
        let next = next_run(&sunday, chrono_tz::UTC, utc(2026, 12, 4, 0, 0)).unwrap();
        assert_eq!(next, utc(2026, 12, 6, 9, 0), "0 is Sunday");
        assert!(parse_cron("0 9 * *").is_err());
        assert!(parse_cron("61 9 * * *").is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }

    #[test]
    fn dst_changes_neither_double_nor_drop_a_daily_digest() {
        // 02:30 local does not exist on 2026-03-29 in Helsinki and happens twice on 2026-10-25.
        let cron = parse_cron("30 3 * * *").unwrap();
        let tz = parse_tz("Europe/Helsinki").unwrap();
        for (start, days) in [(utc(2026, 3, 26, 0, 0), 6), (utc(2026, 10, 22, 0, 0), 6)] {
            let mut at = start;
            let mut runs = Vec::new();
            while let Some(next) = next_run(&cron, tz, at) {
                if next > start + TimeDelta::days(days) {
                    break;
                }
                runs.push(next);
                at = next;
            }
            assert_eq!(runs.len(), days as usize, "{runs:?}");
        }
    }
}
