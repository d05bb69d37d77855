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

/// The thread the batch writers (and the outbox's outcomes) run on: a runtime of its own, so
/// that a write holding the round's lock is never queued behind request handlers.
///
/// Why: a write holds the group commit's lock across each round trip to the connection's
/// thread, and each answer wakes the task that waits for it. On the server's runtime that task
/// waited its turn behind whatever requests the two workers were serving, and the lock with
/// it: a batch of 25 clicks took 3.4 ms, 77 µs more for each click it carried, while the
/// machine still had a sixth of its CPU idle (BENCHMARKS.md, session 11). Here the writes are
/// all the thread runs (the batches, the outbox's outcomes, and the commits and rollbacks of
/// the rounds they open), so a wake-up is taken at once.
pub(super) struct WriterThread {
    handle: tokio::runtime::Handle,
    /// Dropped with the last handle of the store: the thread's runtime then stops.
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    pub(super) fn start() -> Result<Arc<WriterThread>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| corrupt(format!("the writer thread's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("piraja-writer".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| corrupt(format!("the writer thread: {e}")))?;
        Ok(Arc::new(WriterThread {
            handle,
            _stop: stop,
        }))
    }

    /// Runs `work` on the writer thread and waits for its outcome.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            // A panic is the work's alone: the thread goes on with the rest.
            Err(e) if e.is_panic() => Err(corrupt("a write panicked on the writer thread")),
            Err(_) => Err(corrupt("the writer thread has stopped")),
        }
    }
}

#[cfg(test)]
impl WriterThread {
    /// Holds the thread (its runtime runs nothing) until the returned sender is dropped.
    pub(super) fn hold(&self) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        self.handle.spawn(async move {
            let _ = started.send(());
            let _ = held.recv();
        });
        let _ = running.recv();
        release
    }
}

/// Starts a batch writer on `thread`: `write` gets every request waiting (up to [`MAX_BATCH`])
/// each time. The task ends when every sender is gone.
pub(super) fn spawn<P, F, Fut>(
    thread: &WriterThread,
    writer: Conns,
    group: Arc<Group>,
    write: F,
) -> mpsc::Sender<P>
where
    P: Send + 'static,
    F: Fn(Conns, Arc<Group>, Vec<P>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    use futures_util::FutureExt;
    let (tx, mut rx) = mpsc::channel::<P>(QUEUE);
    thread.handle.spawn(async move {
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
///
/// `last`: the batch's last writes (a constant and its parameter), which go with the commit as
/// one command; if they fail, the batch fails and the round goes on without it.
pub(super) async fn commit_and_answer(
    w: Write,
    last: Option<(&'static str, String)>,
    answer: impl FnOnce(std::result::Result<(), String>),
) {
    let committed = match last {
        None => w.commit_round().await.map_err(|e| e.to_string()),
        Some((sql, param)) => match w.write_and_commit_round(sql, param).await {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(error = %e, "A batch's writes failed.");
                Err(e.to_string())
            }
        },
    };
    answer(committed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_writer_thread_and_one_that_panics_fails_alone() {
        let thread = WriterThread::start().unwrap();
        let name = thread
            .run(async { Ok(std::thread::current().name().map(str::to_owned)) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("piraja-writer"));
        let panicked = thread
            .run(async move {
                if name.is_some() {
                    panic!("a write went wrong");
                }
                Ok(())
            })
            .await;
        assert!(panicked.unwrap_err().to_string().contains("panicked"));
        assert_eq!(thread.run(async { Ok(7) }).await.unwrap(), 7);
    }
}
