//! Housekeeping: what the desk keeps only for a while. Delivered outbox messages and the keys
//! that recognise a retried request are pruned once they are [`KEEP`] old, so a busy desk's
//! database does not grow with every message it ever sent and every request it ever took.
//! Tickets, their timelines, contacts, pending and dead-lettered messages are never pruned.

use std::time::Duration;

use super::Desks;
use crate::store::StoreError;

/// How long a delivered message and a request key are kept. Platforms retry within minutes
/// (Slack's event retries come within the hour), so a week is room to spare; a sent message is
/// kept as long for looking into what the desk said.
pub const KEEP: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Rows looked at in one step (one short write). Each step joins the write round beside it
/// like any other write, and the walk yields between steps, so requests are not held up.
const WINDOW: i64 = 2_000;

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sent: u64,
    pub request_keys: u64,
}

impl Desks {
    /// One housekeeping pass: delivered messages and request keys older than [`KEEP`].
    pub async fn housekeep(&self) -> Pruned {
        let before = self.clock.now() - KEEP;
        let mut pruned = Pruned::default();
        let sent = async {
            let mut after = Some(0);
            while let Some(from) = after {
                let (deleted, next) = self.store.prune_sent(before, from, WINDOW).await?;
                (pruned.sent, after) = (pruned.sent + deleted, next);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = sent {
            tracing::error!(error = %e, "Delivered outbox messages could not be pruned.");
        }
        let keys = async {
            let mut after = None;
            loop {
                let (deleted, next) = self.store.prune_request_keys(before, after, WINDOW).await?;
                pruned.request_keys += deleted;
                let Some(next) = next else { break };
                after = Some(next);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = keys {
            tracing::error!(error = %e, "Request keys could not be pruned.");
        }
        if pruned != Pruned::default() {
            tracing::info!(
                sent = pruned.sent,
                request_keys = pruned.request_keys,
                "Pruned delivered messages and request keys older than {} days.",
                KEEP.num_days()
            );
        }
        pruned
    }
}
