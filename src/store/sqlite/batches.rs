//! What the batch writers (`creates.rs`, `changes.rs`) share: a task that takes every request
//! waiting at that moment and writes them together inside one group-commit round, the way a
//! request hands itself to it, and committing that round itself and answering at once.
//!
//! Why batch: every sqlx statement is a round trip to the connection's thread, and the group
//! commit's lock is held across each one. Written one by one, each request held the lock for
//! two round trips (a read, then the writes); a batch holds it for two, whatever its size.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::conns::Conns;
use super::corrupt;
use super::group::{Group, Write};
use crate::store::Result;

/// The most requests one batch writes: bounds the batch's parameter and how long it holds the
/// round's lock.
pub(super) const MAX_BATCH: usize = 256;

/// Requests that may wait for a batch writer before senders wait for room.
const QUEUE: usize = 4096;

/// Starts a batch writer: `write` gets every request waiting (up to [`MAX_BATCH`]) each time.
/// The task ends when every sender is gone.
pub(super) fn spawn<P, F, Fut>(writer: Conns, group: Arc<Group>, write: F) -> mpsc::Sender<P>
where
    P: Send + 'static,
    F: Fn(Conns, Arc<Group>, Vec<P>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    use futures_util::FutureExt;
    let (tx, mut rx) = mpsc::channel::<P>(QUEUE);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let items = std::mem::take(&mut batch);
            // A batch runs its requests' closures (outbox rows, SLA clocks). If one panics, that
            // batch's requests get an error (their answers are dropped), its half-written
            // savepoint is undone as any dropped write is, and the writer goes on.
            let written = std::panic::AssertUnwindSafe(write(writer.clone(), group.clone(), items));
            if written.catch_unwind().await.is_err() {
                tracing::error!("A batch of writes panicked; its requests were refused.");
            }
        }
    });
    tx
}

/// Hands a request (made around the sender of its answer) to a batch writer and waits for
/// the answer (an error if the batch was lost).
pub(super) async fn submit<P, T>(
    queue: &mpsc::Sender<P>,
    request: impl FnOnce(oneshot::Sender<Result<T>>) -> P,
) -> Result<T> {
    let (done, answer) = oneshot::channel();
    let stopped = || corrupt("the batch writer has stopped, or the batch failed");
    queue.send(request(done)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Commits the batch's round at once and calls `answer` with the outcome (every answer waits
/// for the commit: a retried request's ticket, or a ticket changed twice, may be of this very
/// round). The next batch would wait for this commit anyway, for the round's lock.
pub(super) async fn commit_and_answer(
    w: Write,
    answer: impl FnOnce(std::result::Result<(), String>),
) {
    answer(w.commit_round().await.map_err(|e| e.to_string()));
}
