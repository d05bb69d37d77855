//! The outbox worker: delivers queued messages through the platform senders.
//!
//! Delivery is at least once. Each destination (a ticket's cards on one surface, one user's
//! direct messages, one channel) gets its messages in the order they were written: the store
//! hands out only the oldest pending message of each destination. A failed attempt is retried
//! with exponential backoff and full jitter, or exactly when the platform's `Retry-After` says;
//! after [`RetryPolicy::max_attempts`] the message is dead-lettered, logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::core::people::{Platform, SurfaceRef};
use crate::core::ticket::TicketId;
use crate::core::view::Card;
use crate::desk::Clock;
use crate::store::{CardMessage, OutboxItem, Outcome, Settled, Store};

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Delivered; a posted card is recorded so later changes edit it.
    Sent { card: Option<CardMessage> },
    /// Failed for now (network, 5xx, rate limit); `after` is the platform's `Retry-After`.
    /// `done`: the copies of a card refresh this attempt finished before it failed.
    Retry {
        after: Option<Duration>,
        error: String,
        done: Vec<String>,
    },
    /// Not sent at all: the sender is waiting out a rate limit the platform announced, for
    /// `after`. It does not count as an attempt (a long limit must not dead-letter messages).
    Held { after: Duration },
    /// Will never succeed (bad channel, revoked token): dead-letter it now.
    Failed(String),
}

/// Keys (a Discord route, a Slack workspace) that wait out a rate limit the platform announced,
/// each until an instant; expired ones are dropped as new ones come, so it stays small.
#[derive(Debug, Default)]
pub struct Pauses(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl Pauses {
    /// The longest wait left among `keys`, if any is paused.
    pub fn wait(&self, keys: &[&str]) -> Option<Duration> {
        let now = std::time::Instant::now();
        let paused = self.0.lock().ok()?;
        (keys.iter())
            .filter_map(|k| paused.get(*k))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max()
    }

    /// Pauses `key` for `wait`.
    pub fn pause(&self, key: &str, wait: Duration) {
        let now = std::time::Instant::now();
        if let Ok(mut paused) = self.0.lock() {
            paused.retain(|_, until| *until > now);
            paused.insert(key.to_owned(), now + wait);
        }
    }
}

/// What a platform call's error means for delivery.
pub trait DeliveryError: std::fmt::Display {
    /// `Some(after)` when the platform rate limited the call (`after` is its `Retry-After`).
    fn rate_limited(&self) -> Option<Option<Duration>>;
    /// Whether trying again later may work.
    fn transient(&self) -> bool;
    /// `Some(wait)` when the call was not made: its route is paused for `wait` by a rate
    /// limit already announced.
    fn held(&self) -> Option<Duration> {
        None
    }
    /// Whether the call failed for one copy of a card alone (deleted, or in a channel that is
    /// archived or left): that copy is skipped and the others still change.
    fn this_copy_only(&self) -> bool {
        false
    }
}

/// A failed attempt, with the copies of a card refresh it finished before failing (as
/// `channel/message id`; none for any other message).
#[derive(Debug)]
pub struct Partial<E> {
    pub error: E,
    pub done: Vec<String>,
}

impl<E> From<E> for Partial<E> {
    fn from(error: E) -> Partial<E> {
        Partial {
            error,
            done: Vec::new(),
        }
    }
}

/// What a platform does to one copy of a ticket's card: edit it to the card as it is now, and
/// say a note in its thread.
#[async_trait]
pub trait CardCopies: Send + Sync {
    type Error: DeliveryError + Send;
    async fn edit(&self, copy: &CardMessage) -> Result<(), Self::Error>;
    async fn say(&self, copy: &CardMessage, note: &str) -> Result<(), Self::Error>;
}

/// Edits every copy of a ticket's card (`cards`; but not `answered`, which the request's own
/// answer replaced) and says `note` in each one's thread, copy after copy. Copies an earlier,
/// part-way attempt finished ([`OutboxItem::progress`]) are skipped; when a copy fails, the
/// error comes back with the copies this attempt finished, for the retry to skip in turn. One
/// loop for every platform, so no thread hears a note twice on any.
pub async fn refresh_copies<C: CardCopies>(
    item: &OutboxItem,
    cards: Vec<CardMessage>,
    answered: Option<&str>,
    note: Option<&str>,
    copies: &C,
) -> Result<(), Partial<C::Error>> {
    let before: &[String] = item.progress.as_ref().map_or(&[], |p| &p.done);
    let note = note.filter(|n| !n.is_empty());
    let mut done = Vec::new();
    for m in cards {
        // A message id is unique in its channel (Slack's `ts`), not beyond.
        let copy = format!("{}/{}", m.channel, m.message_id);
        if before.contains(&copy) {
            continue;
        }
        if answered != Some(m.message_id.as_str()) {
            match copies.edit(&m).await {
                Ok(()) => {}
                Err(e) if e.this_copy_only() => {
                    tracing::warn!(channel = %m.channel, error = %e, "A card copy cannot be edited; it was skipped.");
                    continue;
                }
                Err(error) => return Err(Partial { error, done }),
            }
        }
        if let Some(note) = note {
            match copies.say(&m, note).await {
                Ok(()) => {}
                Err(e) if e.this_copy_only() => {
                    tracing::warn!(channel = %m.channel, error = %e, "A card copy takes no note; it was skipped.");
                }
                Err(error) => return Err(Partial { error, done }),
            }
        }
        done.push(copy);
    }
    Ok(())
}

impl Delivery {
    /// The outcome of one attempt: sent; retried at the platform's time when rate limited, or
    /// with backoff when the error is transient; otherwise failed for good.
    pub fn of<E: DeliveryError>(result: Result<Option<CardMessage>, Partial<E>>) -> Delivery {
        let Partial { error: e, done } = match result {
            Ok(card) => return Delivery::Sent { card },
            Err(partial) => partial,
        };
        match e.rate_limited() {
            // A call not made: nothing of this attempt was done past what is recorded.
            _ if e.held().is_some() && done.is_empty() => Delivery::Held {
                after: e.held().unwrap_or_default(),
            },
            Some(after) => Delivery::Retry {
                after,
                error: "rate limited".into(),
                done,
            },
            None if e.transient() || e.held().is_some() => Delivery::Retry {
                after: e.held(),
                error: e.to_string(),
                done,
            },
            None => Delivery::Failed(e.to_string()),
        }
    }
}

/// Delivers messages to one platform.
#[async_trait]
pub trait Sender: Send + Sync {
    async fn deliver(&self, item: &OutboxItem) -> Delivery;
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`: the platform's `Retry-After` when it gave one,
    /// else `base·2^(attempts-1)` capped, with full jitter over its upper half.
    pub fn delay(
        &self,
        attempts: i64,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let ceiling = self
            .base
            .checked_mul(2u32.saturating_pow(exp))
            .unwrap_or(self.cap)
            .min(self.cap);
        let half = ceiling / 2;
        half + Duration::from_millis(rng.random_range(0..=half.as_millis().max(1) as u64))
    }
}

/// The background worker.
pub struct Worker {
    store: Arc<dyn Store>,
    senders: HashMap<Platform, Arc<dyn Sender>>,
    clock: Clock,
    wake: Arc<Notify>,
    policy: RetryPolicy,
    /// Deliveries under way at once (each to a different destination).
    concurrency: usize,
    /// When the outbox gauges were last read (counting a long backlog costs milliseconds, so
    /// they are read at most every [`OBSERVE_EVERY`], not after every round).
    observed: std::sync::Mutex<Option<std::time::Instant>>,
    /// Rounds in a row whose outcomes could not be recorded.
    unrecorded: AtomicU32,
}

/// How often the outbox gauges are refreshed under load.
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

impl Worker {
    pub fn new(store: Arc<dyn Store>, clock: Clock, wake: Arc<Notify>) -> Worker {
        Worker {
            store,
            senders: HashMap::new(),
            clock,
            wake,
            policy: RetryPolicy::default(),
            concurrency: 64,
            observed: std::sync::Mutex::new(None),
            unrecorded: AtomicU32::new(0),
        }
    }

    /// Plugs in the sender for a platform.
    pub fn with_sender(mut self, platform: Platform, sender: Arc<dyn Sender>) -> Worker {
        self.senders.insert(platform, sender);
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Worker {
        self.policy = policy;
        self
    }

    /// Delivers every message due now, once each; returns how many were attempted.
    pub async fn tick(&self) -> usize {
        let now = self.clock.now();
        let due = match self.store.outbox_due(now, self.concurrency as i64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "The outbox could not be read.");
                return 0;
            }
        };
        let count = due.len();
        let merged: usize = due.iter().map(|i| i.merged.len()).sum();
        metrics::counter!("piraja_outbox_merged_total").increment(merged as u64);
        let mut running = JoinSet::new();
        for item in due {
            let sender = self.senders.get(&item.message.surface().platform).cloned();
            running.spawn(async move {
                use futures_util::FutureExt;
                let outcome = match sender {
                    // A delivery that panics is an attempt that failed, recorded as one (so it
                    // is given up on in the end), not a message left pending for ever.
                    Some(s) => std::panic::AssertUnwindSafe(s.deliver(&item))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Delivery::Retry {
                            after: None,
                            error: "the delivery panicked".into(),
                            done: Vec::new(),
                        }),
                    None => Delivery::Failed(format!(
                        "no sender is configured for {}",
                        item.message.surface().platform.as_str()
                    )),
                };
                (item, outcome)
            });
        }
        let mut settled = Vec::with_capacity(count);
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((item, outcome)) => self.settle(&item, outcome, &mut settled),
                Err(e) => tracing::error!(error = %e, "An outbox delivery task panicked."),
            }
        }
        if let Err(e) = self.store.outbox_settle(&settled, self.clock.now()).await {
            // They will be sent again: not at once, and later the longer it lasts (a full
            // disk must not turn the worker into a loop that posts the same messages).
            let failures = self.unrecorded.fetch_add(1, Ordering::Relaxed) + 1;
            let pause = Duration::from_secs(1 << (failures - 1).min(6));
            tracing::error!(error = %e, count = settled.len(), pause_s = pause.as_secs(), "Outbox deliveries could not be recorded; they will be sent again after a pause.");
            tokio::time::sleep(pause).await;
        } else {
            self.unrecorded.store(0, Ordering::Relaxed);
        }
        self.observe().await;
        count
    }

    /// What to record of one attempt (recorded for the whole round at once), of its own row and
    /// of the rows it carried with it (`OutboxItem::merged`), with how many refreshes joined to
    /// each it read (`OutboxItem::joins`).
    fn settle(&self, item: &OutboxItem, outcome: Delivery, settled: &mut Vec<Settled>) {
        let now = self.clock.now();
        let attempts = item.attempts + 1;
        let outcome = match outcome {
            Delivery::Sent { card } => {
                metrics::counter!("piraja_outbox_deliveries_total", "outcome" => "sent")
                    .increment(1);
                Outcome::Sent(card)
            }
            // Not sent: tried again once the rate limit ends, with its attempts as they were.
            Delivery::Held { after } => Outcome::Retry {
                attempts: item.attempts,
                at: now + chrono::Duration::from_std(after).unwrap_or_default(),
                error: "waiting out the platform's rate limit".into(),
                progress: item.progress.clone(),
            },
            Delivery::Retry { after, error, done } if attempts < self.policy.max_attempts => {
                let delay = self.policy.delay(attempts, after, &mut rand::rng());
                tracing::warn!(
                    outbox.id = item.id,
                    destination = %item.destination,
                    attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %error,
                    "A message could not be delivered; it will be retried."
                );
                metrics::counter!("piraja_outbox_deliveries_total", "outcome" => "retry")
                    .increment(1);
                let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                Outcome::Retry {
                    attempts,
                    at,
                    error,
                    progress: item.progress_after(done),
                }
            }
            Delivery::Retry { error, .. } | Delivery::Failed(error) => {
                tracing::error!(
                    outbox.id = item.id,
                    destination = %item.destination,
                    attempts,
                    error = %error,
                    "A message was given up on and dead-lettered."
                );
                metrics::counter!("piraja_outbox_deliveries_total", "outcome" => "dead")
                    .increment(1);
                Outcome::Dead { attempts, error }
            }
        };
        // The rows carried with it are sent, or dead, with it; on a retry they stay queued as
        // they were, to be carried again (only what joined them since the read is moved).
        let carried = match &outcome {
            Outcome::Sent(_) => Outcome::Sent(None),
            Outcome::Dead { .. } => outcome.clone(),
            Outcome::Retry { .. } | Outcome::Carried => Outcome::Carried,
        };
        let joins = |id: i64| item.joins.iter().find(|j| j.0 == id).map(|j| j.1);
        settled.push(Settled {
            id: item.id,
            desk: item.desk,
            outcome,
            joins: joins(item.id),
        });
        settled.extend(item.merged.iter().map(|&id| Settled {
            id,
            desk: item.desk,
            outcome: carried.clone(),
            joins: joins(id),
        }));
    }

    async fn observe(&self) {
        if let Ok(mut last) = self.observed.lock() {
            if last.is_some_and(|t| t.elapsed() < OBSERVE_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        if let Ok(stats) = self.store.outbox_stats(self.clock.now()).await {
            metrics::gauge!("piraja_outbox_depth").set(stats.pending as f64);
            metrics::gauge!("piraja_outbox_oldest_age_seconds").set(stats.oldest_age_secs);
            metrics::gauge!("piraja_outbox_dead_letters").set(stats.dead as f64);
        }
    }

    /// Runs until `shutdown` turns true. A delivery under way when it does is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let ticked = self.clock.now();
            let attempted = self.tick().await;
            if attempted > 0 {
                continue;
            }
            let wait = match self.store.outbox_next_due().await {
                // Due when the round read the outbox, yet not handed out: that read failed (a
                // row it cannot decode, a database in trouble). Not again at once: the worker
                // would spin.
                Ok(Some(next)) if next <= ticked => Duration::from_secs(1),
                Ok(Some(next)) => (next - self.clock.now())
                    .to_std()
                    .unwrap_or_default()
                    .min(Duration::from_secs(5)),
                _ => Duration::from_secs(5),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("The outbox worker stopped.");
    }
}

/// The card of ticket `ticket` as it is now, and the messages that show it on `surface`, in
/// one read (what a sender needs to post or edit cards); `None` when the ticket is gone.
pub async fn card_of(
    store: &dyn Store,
    item: &OutboxItem,
    ticket: TicketId,
    surface: &SurfaceRef,
) -> Result<Option<(Card, Vec<CardMessage>)>, String> {
    let found = store
        .card_of(item.desk, ticket, surface)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.map(|(r, cards)| {
        let card = Card::of(&r.ticket, r.assignee_name, chrono::Utc::now());
        (card, cards)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            max_attempts: 10,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempts in 1..20 {
            let d = p.delay(attempts, None, &mut rng);
            let ceiling =
                (Duration::from_secs(2) * 2u32.pow((attempts - 1).min(20) as u32)).min(p.cap);
            assert!(
                d >= ceiling / 2 && d <= ceiling + Duration::from_millis(1),
                "{attempts}: {d:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(37)), &mut rng),
            Duration::from_secs(37)
        );
    }
}
