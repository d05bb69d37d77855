//! Group commit: every write of the process shares one transaction with the writes that run
//! beside it, each inside a savepoint of its own, and each returns only once that shared
//! transaction is committed.
//!
//! With `synchronous = FULL` a commit is a disk flush; one flush per write capped the server at
//! the disk's flush rate. Here the first write of a round opens the transaction and spawns the
//! round's committer; writes queued on the lock behind it join the same transaction; the
//! committer takes the lock after them (the lock is fair), commits once, and tells every
//! member the outcome. An acknowledgement still means "on disk": [`Write::commit`] waits for
//! the round's commit and fails if it failed. A write that holds the lock may instead commit
//! the round itself ([`Write::commit_round`], the batch writers): the earlier members have all
//! finished, are told the same way, and the committer finds the round done.
//!
//! A write that goes away without committing (an error, or a request dropped mid-way) leaves
//! its savepoint open and the round marked `dirty`; whoever takes the lock next (the next write
//! or the committer) rolls the savepoint back first, so half a write is never committed. A
//! finished write's savepoint is released by the same statement that opens the next one. A
//! write dropped while its savepoint was being opened leaves the round `uncertain` (which of
//! `BEGIN`, `RELEASE`, `SAVEPOINT` ran is unknown): the next holder of the lock rolls the whole
//! round back and tells its members it failed, rather than build on a savepoint that may not be
//! there. So does a batch writer dropped while its writes and `COMMIT`, or its `COMMIT` alone,
//! were under way ([`Write::write_and_commit_round`], [`Write::commit_round`]): the round may
//! have committed, and its members are told it failed (a false failure, which a keyed retry
//! repairs, never a false success).
//!
//! Every member learns its own round's outcome: the failures are kept by round (the last
//! [`KEPT_FAILURES`]), so a member that wakes after later rounds committed is not told their
//! success.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::conns::{Conns, Tx};
use super::corrupt;
use crate::store::Result;

/// The shared transaction and who waits for it.
pub(crate) struct Group {
    state: Arc<Mutex<State>>,
}

struct State {
    tx: Option<Tx>,
    /// The round's `BEGIN IMMEDIATE` has run on `tx`. It is sent with the round's first
    /// write, in the same round trip to the connection's thread (one hop less a round).
    begun: bool,
    generation: u64,
    /// The last write's savepoint is still open. A finished write's savepoint is released by
    /// the statement that opens the next one (or by the commit), which saves a round trip to
    /// the connection's thread per write.
    open: bool,
    /// The open savepoint's write went away unfinished: it is rolled back, not released.
    dirty: bool,
    /// A write was dropped while opening its savepoint, or a batch writer while its `COMMIT`
    /// ran: the round's state is unknown.
    uncertain: bool,
    /// The rounds ended so far and which of them failed.
    done: watch::Sender<Outcomes>,
}

/// How many failed rounds are remembered for members that have not yet looked.
const KEPT_FAILURES: usize = 64;

/// What the members of ended rounds are told.
#[derive(Debug, Default)]
struct Outcomes {
    /// The latest round that ended.
    latest: Option<u64>,
    /// Rounds that failed, oldest first, with the reason (at most [`KEPT_FAILURES`]).
    failed: VecDeque<(u64, String)>,
    /// The newest failed round no longer kept: a member of a round up to it cannot be told
    /// whether its round failed, and is told it did (a retry is safe: writes are keyed).
    forgotten: Option<u64>,
}

impl Outcomes {
    /// Round `generation`'s outcome, once it has ended.
    fn of(&self, generation: u64) -> Option<std::result::Result<(), String>> {
        if self.latest.is_none_or(|latest| latest < generation) {
            return None;
        }
        if let Some((_, e)) = self.failed.iter().find(|(g, _)| *g == generation) {
            return Some(Err(e.clone()));
        }
        if self.forgotten.is_some_and(|f| generation <= f) {
            return Some(Err("the outcome of the commit is no longer known".into()));
        }
        Some(Ok(()))
    }

    fn record(&mut self, generation: u64, result: std::result::Result<(), String>) {
        self.latest = Some(generation);
        if let Err(e) = result {
            self.failed.push_back((generation, e));
            if self.failed.len() > KEPT_FAILURES
                && let Some((g, _)) = self.failed.pop_front()
            {
                self.forgotten = Some(g);
            }
        }
    }
}

impl State {
    /// The round `generation` ended with `result` (its transaction is gone): the next write
    /// opens a new one, and every member waiting is told.
    fn ended(&mut self, generation: u64, result: std::result::Result<(), String>) {
        self.begun = false;
        self.generation += 1;
        self.open = false;
        self.dirty = false;
        self.uncertain = false;
        self.done.send_modify(|o| o.record(generation, result));
    }

    /// Ends the round at once if a write was dropped while opening its savepoint (or while its
    /// writes and `COMMIT` ran): its transaction is dropped (rolled back, if it is still open)
    /// and its members told it failed.
    fn end_if_uncertain(&mut self) {
        if self.uncertain {
            self.tx = None;
            let generation = self.generation;
            self.ended(
                generation,
                Err("a write was cancelled while it began or committed; the round is reported failed".into()),
            );
        }
    }

    /// What becomes of the last write's savepoint before the next one opens.
    fn closing(&self) -> Close {
        close_savepoint(self.open, self.dirty)
    }
}

impl Default for Group {
    fn default() -> Group {
        Group {
            state: Arc::new(Mutex::new(State {
                tx: None,
                begun: false,
                generation: 0,
                open: false,
                dirty: false,
                uncertain: false,
                done: watch::channel(Outcomes::default()).0,
            })),
        }
    }
}

impl Group {
    /// Starts a write: joins the round's transaction (opening it on `writer` if there is
    /// none) inside a new savepoint.
    pub(crate) async fn write(&self, writer: &Conns) -> Result<Write> {
        self.open(writer, None).await.map(|(w, _)| w)
    }

    /// Starts a write whose first statement, `sql` (a constant reading the one parameter
    /// `param`), runs in the same round trip as the statement that opens the write's
    /// savepoint, and returns its rows. One round trip to the connection's thread less for the
    /// writes that start with a read (creates, changes, SLA refreshes) and for those that are
    /// one command (an outbox round's outcomes).
    pub(crate) async fn write_first(
        &self,
        writer: &Conns,
        sql: &'static str,
        param: String,
    ) -> Result<(Write, Vec<SqliteRow>)> {
        self.open(writer, Some((sql, param))).await
    }

    /// Opens a write's savepoint (after beginning the round's transaction, when this is its
    /// first write) and runs `first`, all as one command; returns its rows.
    async fn open(
        &self,
        writer: &Conns,
        first: Option<(&'static str, String)>,
    ) -> Result<(Write, Vec<SqliteRow>)> {
        use futures_util::TryStreamExt;
        use sqlx::Executor;
        let mut g = self.round(writer).await?;
        let begin = !g.begun;
        let opening = opening(g.closing());
        // The statements before the savepoint is open: once they have all run, it is.
        let steps = usize::from(begin) + opening.matches(';').count() + 1;
        // Until the flags below are set, a drop of this future leaves them unknown.
        g.uncertain = true;
        let tx =
            g.tx.as_mut()
                .ok_or_else(|| corrupt("no group transaction"))?;
        // Every part is a constant of ours (`sql` is `'static`): nothing from a request.
        let batch = sqlx::AssertSqlSafe(format!(
            "{}{opening}{}",
            if begin { "BEGIN IMMEDIATE; " } else { "" },
            first
                .as_ref()
                .map_or(String::new(), |(sql, _)| format!("; {sql}"))
        ));
        let mut query = sqlx::query(batch);
        if let Some((_, param)) = first {
            query = query.bind(param);
        }
        let mut done = 0;
        let mut rows = Vec::new();
        let result: Result<()> = async {
            let mut results = (&mut **tx).fetch_many(query);
            while let Some(item) = results.try_next().await? {
                match item {
                    sqlx::Either::Left(_) => done += 1,
                    sqlx::Either::Right(row) => rows.push(row),
                }
            }
            Ok(())
        }
        .await;
        if begin && done >= 1 {
            g.begun = true;
        }
        if done >= steps {
            // Open, and dirty until the write says it is finished.
            g.open = true;
            g.dirty = true;
        } else if done + 1 == steps {
            // The last savepoint was closed (or the transaction begun) but the new one did
            // not open.
            g.open = false;
            g.dirty = false;
        }
        // Otherwise closing the last savepoint (or beginning) failed part-way and it is still
        // as it was.
        g.uncertain = false;
        result?;
        Ok((Write { guard: g }, rows))
    }

    /// The lock on the round, with the round's transaction open.
    async fn round(&self, writer: &Conns) -> Result<OwnedMutexGuard<State>> {
        let mut g = self.state.clone().lock_owned().await;
        g.end_if_uncertain();
        if g.tx.is_none() {
            g.tx = Some(writer.for_transaction().await?);
            g.begun = false;
            spawn_committer(self.state.clone(), g.generation);
        }
        Ok(g)
    }
}

/// The statements that close the last write's savepoint as `close` says and open a new one.
fn opening(close: Close) -> &'static str {
    match close {
        Close::Nothing => "SAVEPOINT piraja_write",
        Close::Release => "RELEASE piraja_write; SAVEPOINT piraja_write",
        Close::Undo => "ROLLBACK TO piraja_write; RELEASE piraja_write; SAVEPOINT piraja_write",
    }
}

/// What becomes of the savepoint left open before the next statement.
#[derive(Clone, Copy)]
enum Close {
    Nothing,
    Release,
    Undo,
}

fn close_savepoint(open: bool, dirty: bool) -> Close {
    match (open, dirty) {
        (false, _) => Close::Nothing,
        (true, false) => Close::Release,
        (true, true) => Close::Undo,
    }
}

/// One write in the shared transaction. [`Write::commit`] it; dropping it undoes it.
pub(crate) struct Write {
    guard: OwnedMutexGuard<State>,
}

impl Write {
    /// Releases the savepoint, lets the next write in, and waits until the round is on disk.
    pub(crate) async fn commit(self) -> Result<()> {
        self.finish().await
    }

    /// Releases the savepoint and lets the next write in at once; the future it returns
    /// resolves when the round is on disk (or its commit failed).
    pub(crate) fn finish(mut self) -> impl Future<Output = Result<()>> + Send + 'static {
        let g = &mut *self.guard;
        // Finished: its savepoint is released with the next statement or the commit.
        g.dirty = false;
        let generation = g.generation;
        let mut committed = g.done.subscribe();
        drop(self.guard);
        async move {
            let outcome = committed
                .wait_for(|o| o.of(generation).is_some())
                .await
                .map_err(|_| corrupt("the group commit was lost"))?
                .of(generation);
            match outcome {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(corrupt(format!("the commit failed: {e}"))),
                None => Err(corrupt("the group commit was lost")),
            }
        }
    }
}

impl Write {
    /// Commits the round now, from this write, which holds the round's lock (so every earlier
    /// member of the round has finished), and tells every member the outcome. For the batch
    /// writers: their requests are answered as soon as the round is on disk, without waiting
    /// for the committer task to take the lock after them and wake them.
    pub(crate) async fn commit_round(mut self) -> Result<()> {
        let g = &mut *self.guard;
        let generation = g.generation;
        // Until the outcome is known, a drop of this future leaves it unknown (the `COMMIT` may
        // still run, or fail): the next holder of the lock ends the round as failed, rather than
        // open a new one under the same generation, whose outcome its members would be told.
        g.uncertain = true;
        // `COMMIT` releases this write's savepoint with the rest.
        let result = match (g.tx.take(), g.begun) {
            (Some(tx), true) => tx.commit().await.map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        g.ended(generation, result.clone());
        result.map_err(|e| corrupt(format!("the commit failed: {e}")))
    }

    /// Runs `sql` (constant statements reading the one parameter `param`, returning no rows) and
    /// commits the round in the same command: one round trip to the connection's thread less
    /// than the writes and then [`Write::commit_round`], for a batch writer whose writes are its
    /// last statements.
    ///
    /// `Err` is the writes' failure: `COMMIT` did not run, and the round goes on without this
    /// write (its savepoint is undone, as for any write dropped unfinished). `Ok` holds the
    /// commit's outcome, told to every member as [`Write::commit_round`] tells it.
    pub(crate) async fn write_and_commit_round(
        mut self,
        sql: &'static str,
        param: String,
    ) -> Result<std::result::Result<(), String>> {
        use futures_util::TryStreamExt;
        use sqlx::Executor;
        let g = &mut *self.guard;
        let generation = g.generation;
        // Until the outcome is known, a drop of this future leaves the round's state unknown
        // (the command may still commit): the next holder of the lock ends the round as failed.
        g.uncertain = true;
        let tx =
            g.tx.as_mut()
                .ok_or_else(|| corrupt("no group transaction"))?;
        // Both parts are constants of ours: nothing from a request. The row of `SELECT 1`
        // says the writes all ran, so a failure after it is the commit's.
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{}; SELECT 1; COMMIT",
            sql.trim_end().trim_end_matches(';')
        )))
        .bind(param);
        let mut written = false;
        let result: Result<()> = async {
            let mut results = (&mut **tx).fetch_many(query);
            while let Some(item) = results.try_next().await? {
                if item.is_right() {
                    written = true;
                }
            }
            Ok(())
        }
        .await;
        let outcome = match result {
            Ok(()) => {
                // Committed: the transaction is over, with nothing left to roll back.
                if let Some(tx) = g.tx.take() {
                    tx.committed();
                }
                Ok(())
            }
            // The writes failed: dropping `self` leaves the savepoint to be undone.
            Err(e) if !written => {
                g.uncertain = false;
                return Err(e);
            }
            // The commit itself failed: the transaction is rolled back as it is dropped.
            Err(e) => {
                g.tx = None;
                Err(e.to_string())
            }
        };
        g.ended(generation, outcome.clone());
        Ok(outcome)
    }

    /// Ends a write that read but wrote nothing: its savepoint is released with the next
    /// statement, and there is no commit to wait for.
    pub(crate) fn unchanged(mut self) {
        self.guard.dirty = false;
    }
}

impl Deref for Write {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // A `Write` exists only while its round's transaction is open.
        self.guard.tx.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.guard
            .tx
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!())
    }
}

/// Commits generation `generation` once the writes queued before it have joined, and tells
/// every member the outcome. A task of its own, so a request that goes away cannot leave the
/// transaction (and with it the only writer connection) open.
fn spawn_committer(state: Arc<Mutex<State>>, generation: u64) {
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        let mut g = state.lock().await;
        if g.generation != generation {
            return;
        }
        g.end_if_uncertain();
        if g.generation != generation {
            return;
        }
        let close = g.closing();
        let begun = std::mem::take(&mut g.begun);
        let result = match g.tx.take() {
            // No write got as far as beginning the transaction: nothing to commit (dropping
            // the connection's `Tx` rolls back, in case).
            Some(_) if !begun => Ok(()),
            Some(mut tx) => {
                // A write left unfinished is undone before the commit; `COMMIT` releases a
                // finished one.
                let undone = match close {
                    Close::Undo => sqlx::query("ROLLBACK TO piraja_write")
                        .execute(&mut *tx)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Close::Nothing | Close::Release => Ok(()),
                };
                match undone {
                    Ok(()) => tx.commit().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
            None => Ok(()),
        };
        g.ended(generation, result);
    });
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        (dir, SqliteStore::open(&url).await.unwrap())
    }

    async fn desks(store: &SqliteStore) -> Vec<String> {
        sqlx::query_scalar::<_, String>("SELECT name FROM desks ORDER BY id")
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap()
    }

    async fn add(w: &mut super::Write, name: &str) {
        sqlx::query("INSERT INTO desks (name, created_at) VALUES (?, 0)")
            .bind(name)
            .execute(&mut **w)
            .await
            .unwrap();
    }

    #[test]
    fn each_member_is_told_its_own_rounds_outcome() {
        let mut o = super::Outcomes::default();
        assert_eq!(o.of(0), None);
        o.record(0, Ok(()));
        o.record(1, Err("disk full".into()));
        o.record(2, Ok(()));
        // A member of round 1 that looks after round 2 committed is still told round 1 failed.
        assert_eq!(o.of(1), Some(Err("disk full".into())));
        assert_eq!(
            (o.of(0), o.of(2), o.of(3)),
            (Some(Ok(())), Some(Ok(())), None)
        );
        // Failures too old to keep are reported as failures, never as successes.
        for g in 3..3 + super::KEPT_FAILURES as u64 + 1 {
            o.record(g, Err("again".into()));
        }
        assert!(o.of(1).is_some_and(|r| r.is_err()));
        // Round 2 is older than a forgotten failure: it cannot be told apart, so it is told
        // it failed (its caller retries a keyed write; a false success would lose it).
        assert!(o.of(2).is_some_and(|r| r.is_err()));
        assert_eq!(
            o.of(3 + super::KEPT_FAILURES as u64),
            Some(Err("again".into()))
        );
    }

    #[tokio::test]
    async fn a_write_cancelled_while_it_begins_is_rolled_back_and_the_next_starts_afresh() {
        let (_dir, store) = store().await;
        let mut kept = store.write().await.unwrap();
        add(&mut kept, "kept").await;
        kept.commit().await.unwrap();
        // A write dropped after one poll, while its `BEGIN` and savepoint statements (and a
        // slow first read, so that one poll cannot see it through) are with the connection's
        // thread, as a request cut off by a timeout: which of them ran is unknown.
        use futures_util::FutureExt;
        let slow = "WITH RECURSIVE c(x) AS
                      (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < CAST(?1 AS INTEGER))
                    SELECT count(*) FROM c";
        let cut = store
            .group
            .write_first(&store.writer, slow, "300000".into())
            .now_or_never();
        assert!(cut.is_none(), "the write was not cut off");
        // The next write (before the round's committer runs) finds the round uncertain, rolls
        // it back and opens a new one, instead of beginning a transaction inside it.
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        next.commit().await.unwrap();
        assert_eq!(desks(&store).await, ["kept", "next"]);
    }

    #[tokio::test]
    async fn a_batch_cut_off_while_its_writes_and_commit_run_is_reported_failed() {
        let (_dir, store) = store().await;
        let mut told = store.group.state.lock().await.done.subscribe();
        // A batch dropped after one poll, while its (slow) writes and COMMIT are with the
        // connection's thread: whether its round committed is unknown.
        use futures_util::FutureExt;
        let slow = "WITH RECURSIVE c(x) AS
                      (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < CAST(?1 AS INTEGER))
                    INSERT INTO desks (name, created_at) SELECT 'batch', count(*) FROM c";
        let batch = store.write().await.unwrap();
        let generation = store_generation(&batch);
        let cut = batch
            .write_and_commit_round(slow, "300000".into())
            .now_or_never();
        assert!(cut.is_none(), "the batch was not cut off");
        // The next write finds the round uncertain: its members are told it failed (never
        // that it committed), and the next round starts afresh.
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        next.commit().await.unwrap();
        let outcome = told.borrow_and_update().of(generation);
        assert!(matches!(outcome, Some(Err(_))), "{outcome:?}");
        // The connection's thread stopped at the dropped answer: the COMMIT did not run.
        assert_eq!(desks(&store).await, ["next"]);
    }

    #[tokio::test]
    async fn a_batch_cut_off_while_its_commit_runs_is_reported_failed() {
        let (_dir, store) = store().await;
        let mut told = store.group.state.lock().await.done.subscribe();
        let mut batch = store.write().await.unwrap();
        // Enough pages that the commit is still with the connection's thread after one poll.
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
             INSERT INTO desks (name, created_at) SELECT 'batch ' || x, 0 FROM c",
        )
        .execute(&mut *batch)
        .await
        .unwrap();
        let generation = store_generation(&batch);
        use futures_util::FutureExt;
        let cut = batch.commit_round().now_or_never();
        assert!(cut.is_none(), "the commit was not cut off");
        // The next write finds the round's outcome unknown: its members are told it failed
        // (a keyed retry repairs a false failure), not the outcome of a new round under the
        // same generation.
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        let next_generation = store_generation(&next);
        next.commit().await.unwrap();
        assert!(next_generation > generation);
        let outcome = told.borrow_and_update().of(generation);
        assert!(matches!(outcome, Some(Err(_))), "{outcome:?}");
        assert!(desks(&store).await.contains(&"next".to_owned()));
    }

    fn store_generation(w: &super::Write) -> u64 {
        w.guard.generation
    }

    #[tokio::test]
    async fn a_write_dropped_half_way_is_undone_and_the_others_commit() {
        let (_dir, store) = store().await;
        let mut kept = store.write().await.unwrap();
        add(&mut kept, "kept").await;
        kept.commit().await.unwrap();
        // Dropped after its statement, before its commit: as a request that went away.
        let mut dropped = store.write().await.unwrap();
        add(&mut dropped, "dropped").await;
        drop(dropped);
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        next.commit().await.unwrap();
        assert_eq!(desks(&store).await, ["kept", "next"]);
        // Dropped as the last write of its round: the committer undoes it.
        let mut last = store.write().await.unwrap();
        add(&mut last, "last").await;
        drop(last);
        let w = store.write().await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(desks(&store).await, ["kept", "next"]);
    }

    #[tokio::test]
    async fn a_first_read_runs_with_the_savepoint_and_a_failing_one_changes_nothing() {
        let (_dir, store) = store().await;
        let mut kept = store.write().await.unwrap();
        add(&mut kept, "kept").await;
        kept.commit().await.unwrap();
        let (mut w, rows) = store
            .group
            .write_first(
                &store.writer,
                "SELECT ?1 ->> 'n' AS n",
                r#"{"n": 7}"#.into(),
            )
            .await
            .unwrap();
        assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], "n"), 7);
        add(&mut w, "after a read").await;
        w.commit().await.unwrap();
        // The read fails after the savepoint opened: an error, and the round goes on.
        assert!(
            store
                .group
                .write_first(
                    &store.writer,
                    "SELECT * FROM no_such_table WHERE ?1",
                    "1".into()
                )
                .await
                .is_err()
        );
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        next.commit().await.unwrap();
        assert_eq!(desks(&store).await, ["kept", "after a read", "next"]);
    }

    #[tokio::test]
    async fn concurrent_writes_share_a_commit_and_all_land() {
        let (_dir, store) = store().await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let store = store.clone();
            set.spawn(async move {
                let mut w = store.write().await.unwrap();
                add(&mut w, &format!("d{i:02}")).await;
                w.commit().await.unwrap();
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        let names = desks(&store).await;
        assert_eq!(names.len(), 50);
        // Fewer commits than writes: the rounds were shared.
        let rounds = store.group.state.lock().await.generation;
        assert!(rounds < 50, "{rounds} rounds for 50 writes");
    }

    #[tokio::test]
    async fn a_write_that_commits_its_round_tells_the_round_and_its_committer_does_nothing() {
        let (_dir, store) = store().await;
        let mut told = store.group.state.lock().await.done.subscribe();
        let mut batch = store.write().await.unwrap();
        add(&mut batch, "batch").await;
        batch.commit_round().await.unwrap();
        assert_eq!(desks(&store).await, ["batch"]);
        assert_eq!(told.borrow_and_update().of(0), Some(Ok(())));
        // The round's committer, spawned when the round opened, finds it committed.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.group.state.lock().await.generation, 1);
        // A failing statement in the next round's write: it is undone, the round goes on.
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        let next = tokio::spawn(next.finish());
        let mut failing = store.write().await.unwrap();
        assert!(
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut *failing)
                .await
                .is_err()
        );
        drop(failing);
        let mut last = store.write().await.unwrap();
        add(&mut last, "last").await;
        last.commit_round().await.unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(desks(&store).await, ["batch", "next", "last"]);
    }

    #[tokio::test]
    async fn writes_sent_with_the_commit_land_with_the_round_and_failing_ones_leave_it_going() {
        let (_dir, store) = store().await;
        let mut told = store.group.state.lock().await.done.subscribe();
        // An earlier member of the round, then a batch whose last writes go with the commit.
        let mut first = store.write().await.unwrap();
        add(&mut first, "first").await;
        let first = tokio::spawn(first.finish());
        let batch = store.write().await.unwrap();
        let committed = batch
            .write_and_commit_round(
                "INSERT INTO desks (name, created_at) VALUES (?1, 0);
                 INSERT INTO desks (name, created_at) VALUES (?1 || ' again', 0);",
                "batch".into(),
            )
            .await
            .unwrap();
        assert_eq!(committed, Ok(()));
        first.await.unwrap().unwrap();
        assert_eq!(desks(&store).await, ["first", "batch", "batch again"]);
        // The round is over and its members were told (the first may have had a round of its
        // own, committed by that round's committer before the batch took the lock).
        let g = store.group.state.lock().await;
        assert!(g.tx.is_none());
        assert_eq!(told.borrow_and_update().of(g.generation - 1), Some(Ok(())));
        drop(g);
        // Writes that fail half-way: nothing of them lands, the commit did not run, and the
        // round goes on with its other members, committed by the round's committer.
        let mut next = store.write().await.unwrap();
        add(&mut next, "next").await;
        let next = tokio::spawn(next.finish());
        let failing = store.write().await.unwrap();
        let failed = failing
            .write_and_commit_round(
                "INSERT INTO desks (name, created_at) VALUES (?1, 0); INSERT INTO no_such_table VALUES (1)",
                "half".into(),
            )
            .await;
        assert!(failed.is_err());
        next.await.unwrap().unwrap();
        assert_eq!(
            desks(&store).await,
            ["first", "batch", "batch again", "next"]
        );
    }
}
