//! Background jobs besides the outbox worker: the SLA watcher and the digest scheduler. Each
//! runs a pass, then sleeps until its own cron schedule or the pass's hint (the next SLA check,
//! the next digest) says, whichever is sooner, until shutdown.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::desk::sla::{next_run, parse_cron};
use crate::desk::{Clock, Desks};

/// A background job and its fallback schedule (6-field cron, UTC).
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub name: &'static str,
    pub every: &'static str,
    pub what: &'static str,
    /// Whether a pass runs at start-up too, before the schedule's first instant.
    pub at_start: bool,
}

/// Every background job the server runs (the outbox worker has its own wake-ups).
pub const JOBS: &[Job] = &[
    Job {
        name: "sla-watch",
        // Every second (two indexed reads when nothing is due), so a check that a write
        // brings close (a priority raised near its deadline) is at most a second late; in
        // between it wakes exactly at the next check it knows of.
        every: "* * * * * *",
        what: "warns before and alerts on SLA breaches; looks every second and wakes exactly at the next known check",
        at_start: true,
    },
    Job {
        name: "digests",
        every: "0 * * * * *",
        what: "posts scheduled digests; wakes exactly at the next scheduled run",
        at_start: true,
    },
    Job {
        name: "mail-poll",
        every: "0 */5 * * * *",
        what: "polls connected mailboxes every PIRAJA_MAIL_POLL (this schedule is the fallback)",
        at_start: true,
    },
    Job {
        name: "housekeeping",
        every: "0 17 3 * * *",
        what: "prunes delivered messages and request keys older than a week, daily at 03:17 UTC",
        at_start: false,
    },
];

/// Runs `tick` now and again at each run of `job`'s schedule, at the hint `tick` returns, or
/// when `wake` is poked, until `stop` turns true.
pub async fn run_job<F, Fut>(
    job: Job,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
    wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<DateTime<Utc>>>,
{
    let cron = match parse_cron(job.every) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(job = job.name, error = %e, "A job's schedule does not parse; the job does not run.");
            return;
        }
    };
    tracing::debug!(job = job.name, "A background job started.");
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let hint = if first && !job.at_start {
            None
        } else {
            tick().await
        };
        first = false;
        let now = clock.now();
        let mut next =
            next_run(&cron, chrono_tz::UTC, now).unwrap_or(now + chrono::TimeDelta::minutes(1));
        if let Some(h) = hint {
            next = next.min(h.max(now));
        }
        let wait = (next - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(5));
        let poked = async {
            match &wake {
                Some(w) => w.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = poked => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Starts every job of [`JOBS`] for `desks` (the mail poller only with a mail adapter, polling
/// every `poll`).
pub fn spawn_all(
    desks: &Desks,
    mail: Option<(std::sync::Arc<crate::mail::MailApp>, Duration)>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    JOBS.iter()
        .filter(|job| job.name != "mail-poll" || mail.is_some())
        .map(|job| {
            let (desks, stop, job, mail) = (desks.clone(), stop.clone(), *job, mail.clone());
            tokio::spawn(async move {
                let clock = desks.clock.clone();
                match (job.name, mail) {
                    ("sla-watch", _) => {
                        run_job(job, clock, stop, None, || async {
                            desks.sla_tick().await;
                            desks.store.sla_next_check().await.ok().flatten()
                        })
                        .await
                    }
                    ("mail-poll", Some((app, every))) => {
                        run_job(job, clock.clone(), stop, None, || async {
                            app.poll_all(&desks).await;
                            Some(crate::mail::next_poll(clock.now(), every))
                        })
                        .await
                    }
                    ("housekeeping", _) => {
                        run_job(job, clock, stop, None, || async {
                            desks.housekeep().await;
                            None
                        })
                        .await
                    }
                    _ => {
                        let wake = Some(desks.digest_wake.clone());
                        run_job(job, clock, stop, wake, || desks.digest_tick()).await
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn every_job_has_a_unique_name_and_a_schedule_that_parses() {
        let mut names: Vec<&str> = JOBS.iter().map(|j| j.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), JOBS.len());
        for job in JOBS {
            assert!(parse_cron(job.every).is_ok(), "{}", job.name);
            assert!(!job.what.is_empty());
        }
    }

    /// A clock that follows tokio's (paused) clock from a fixed UTC start.
    fn tokio_clock(start: DateTime<Utc>) -> Clock {
        let origin = tokio::time::Instant::now();
        Clock::from_fn(move || {
            start + chrono::TimeDelta::from_std(origin.elapsed()).unwrap_or_default()
        })
    }

    /// Runs a job on schedule `every` (first pass at start-up or not, each pass hinting
    /// `hint` seconds after `start`) on tokio's paused clock for `secs` seconds from `start`,
    /// then stops it; returns when it ran.
    async fn runs_of(
        start: DateTime<Utc>,
        every: &'static str,
        at_start: bool,
        hint: Option<i64>,
        secs: u64,
    ) -> Vec<DateTime<Utc>> {
        let clock = tokio_clock(start);
        let runs = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = watch::channel(false);
        let job = Job {
            name: "test",
            every,
            what: "test",
            at_start,
        };
        let (c, r) = (clock.clone(), runs.clone());
        let hint = hint.map(|s| start + chrono::TimeDelta::seconds(s));
        let handle = tokio::spawn(run_job(job, clock, stop, None, move || {
            r.lock().unwrap().push(c.now());
            async move { hint }
        }));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop_tx.send(true).unwrap();
        handle.await.unwrap();
        runs.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_runs_at_each_scheduled_instant_once_and_stops_on_shutdown() {
        let start = "2026-12-04T10:00:30Z".parse::<DateTime<Utc>>().unwrap();
        let runs = runs_of(start, "0 * * * * *", true, None, 5 * 60).await;
        // Once at start, then at 10:01:00 … 10:05:00, each once.
        assert_eq!(runs.len(), 6, "{runs:?}");
        for (i, at) in runs.iter().skip(1).enumerate() {
            assert_eq!(*at, start + chrono::TimeDelta::seconds(30 + 60 * i as i64));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_not_run_at_start_first_runs_at_its_schedule() {
        let start = "2026-12-04T10:00:30Z".parse::<DateTime<Utc>>().unwrap();
        let runs = runs_of(start, "0 * * * * *", false, None, 150).await;
        let minute = |m: i64| start + chrono::TimeDelta::seconds(30 + 60 * m);
        assert_eq!(runs, [minute(0), minute(1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_sooner_than_the_schedule_wakes_the_job_then() {
        let start = "2026-12-04T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let runs = runs_of(start, "0 0 * * * *", true, Some(90), 100).await;
        let hint = start + chrono::TimeDelta::seconds(90);
        assert!(runs.contains(&hint), "{runs:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poke_runs_the_job_at_once() {
        let start = "2026-12-04T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = tokio_clock(start);
        let runs = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = watch::channel(false);
        let wake = Arc::new(tokio::sync::Notify::new());
        let job = Job {
            name: "test",
            every: "0 0 * * * *",
            what: "test",
            at_start: true,
        };
        let (c, r) = (clock.clone(), runs.clone());
        let handle = tokio::spawn(run_job(job, clock, stop, Some(wake.clone()), move || {
            r.lock().unwrap().push(c.now());
            async { None }
        }));
        tokio::time::sleep(Duration::from_secs(10)).await;
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop_tx.send(true).unwrap();
        handle.await.unwrap();
        // At start, then at the poke (ten seconds in), not at the hour.
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs, [start, start + chrono::TimeDelta::seconds(10)]);
    }
}
