//! The SQLite store: WAL journal, `synchronous = FULL`, foreign keys on, a writer, readers and
//! a checkpointer.
//!
//! Writes go through a pool of exactly one connection and start with `BEGIN IMMEDIATE`, so
//! writers queue inside the process instead of failing with `SQLITE_BUSY`, and a transaction
//! never has to upgrade a read lock. Reads use a separate pool of read-only connections that
//! WAL lets run beside the writer. `synchronous = FULL` makes every acknowledged commit
//! survive power loss, not only a process crash (see ARCHITECTURE.md). A database file also
//! gets a connection of its own that checkpoints the WAL ([`spawn_checkpointer`]).

mod batches;
mod changes;
mod conns;
mod contacts;
mod creates;
mod desks;
mod group;
mod installs;
mod mail;
mod outbox;
mod sla;
mod tickets;
mod writes;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use conns::Conns;
pub(crate) use group::Write;

use super::{Result, StoreError};

/// The SQLite implementation of [`super::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Conns,
    reader: Conns,
    path: Option<PathBuf>,
    group: std::sync::Arc<group::Group>,
    /// Creates and changes go to their batch writers (`creates.rs`, `changes.rs`).
    creates: tokio::sync::mpsc::Sender<creates::Pending>,
    changes: tokio::sync::mpsc::Sender<changes::Pending>,
    /// Where the batch writers and the outbox's outcomes run (`batches.rs`).
    thread: std::sync::Arc<batches::WriterThread>,
    /// The connection that checkpoints the WAL (a database file only).
    checkpointer: Option<Conns>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Migrations embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and applies pending migrations.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        let path = Some(base.get_filename().to_path_buf()).filter(|p| p != Path::new(":memory:"));
        // The writer checkpoints only if the checkpointer below falls far behind.
        let writer = Conns::open(
            base.clone()
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string()),
            1,
        )
        .await?;
        {
            let mut conn = writer.get().await?;
            MIGRATOR.run(&mut *conn).await?;
        }
        // An in-memory database is private to its connection: read through the writer then.
        let reader = if path.is_some() {
            // Four readers with a 2 MiB page cache each, beside the writer's 16 MiB, keep the
            // process's memory bounded under load (BENCHMARKS.md). A reader's cache is dropped
            // whenever the WAL changed since its last read, so under writes it holds little.
            Conns::open(
                base.clone().read_only(true).pragma("cache_size", "-2000"),
                4,
            )
            .await?
        } else {
            writer.clone()
        };
        // Before the checkpointer: an error here must not leave its task running.
        let thread = batches::WriterThread::start()?;
        let checkpointer = match path {
            Some(_) => {
                let c = Conns::open(base.clone().pragma("cache_size", "-500"), 1).await?;
                spawn_checkpointer(c.clone());
                Some(c)
            }
            None => None,
        };
        let group = std::sync::Arc::<group::Group>::default();
        let creates = creates::spawn(&thread, writer.clone(), group.clone());
        let changes = changes::spawn(&thread, writer.clone(), group.clone());
        Ok(SqliteStore {
            writer,
            reader,
            path,
            group,
            creates,
            changes,
            thread,
            checkpointer,
        })
    }

    /// Applies migrations and closes (`piraja migrate`).
    pub async fn migrate(url: &str) -> Result<()> {
        let store = SqliteStore::open(url).await?;
        store.close_pools().await;
        Ok(())
    }

    /// Writes a consistent copy of the database at `url` to the new file `to` while other
    /// processes keep using it: `VACUUM INTO` reads one snapshot (WAL lets writers go on) and
    /// writes a compact, self-contained database. Refuses to overwrite an existing file.
    pub async fn backup(url: &str, to: &Path) -> Result<()> {
        use sqlx::ConnectOptions;
        if to.exists() {
            return Err(StoreError::Exists(to.display().to_string()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = options.connect().await?;
        let target = to.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        Ok(())
    }

    /// Closes the connections, checkpointing the WAL.
    async fn close_pools(&self) {
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
        self.reader.close().await;
        self.writer.close().await;
    }

    /// The database file, when it is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A write: a savepoint in the transaction that the writes under way share (group
    /// commit, see `group.rs`); [`Write::commit`] returns once it is on disk.
    async fn write(&self) -> Result<Write> {
        self.group.write(&self.writer).await
    }

    /// A read-only connection (the writer's, for an in-memory database).
    async fn read(&self) -> Result<conns::Conn> {
        self.reader.get().await
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Holds the batch writers until `n` requests wait for them, so those make one batch
    /// (whatever the threads' timing): for tests of what a batch does with several requests.
    pub(super) fn one_batch(&self, n: usize) -> impl Future<Output = ()> + '_ {
        let held = self.thread.hold();
        async move {
            let queued = |room: usize, max: usize| max - room;
            while queued(self.creates.capacity(), self.creates.max_capacity())
                + queued(self.changes.capacity(), self.changes.max_capacity())
                < n
            {
                tokio::task::yield_now().await;
            }
            drop(held);
        }
    }
}

/// WAL pages after which the writer checkpoints in its own commit (SQLite's default is 1,000):
/// a safety net; normally [`spawn_checkpointer`] keeps the WAL far shorter.
const WRITER_CHECKPOINT_PAGES: u32 = 20_000;

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the WAL on a connection of its own, every [`CHECKPOINT_EVERY`], until the store
/// closes. A `PASSIVE` checkpoint waits for no one and blocks no one; done by the writer (at
/// every 1,000th page, SQLite's default) it was an eighth of the writer thread's time under
/// load, and the writer thread is what every write of the process waits for (BENCHMARKS.md).
fn spawn_checkpointer(conns: Conns) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // Fails once the store is closed: the checkpointer stops.
            let Ok(mut conn) = conns.get().await else {
                return;
            };
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *conn)
                .await
            {
                tracing::warn!(error = %e, "A WAL checkpoint failed; the next one tries again.");
            }
        }
    });
}

/// Milliseconds since the epoch, as stored.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time back as a `DateTime`.
fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// What the store's unit tests share.
#[cfg(test)]
mod testing {
    use super::SqliteStore;

    /// The one integer `sql` reads (a count, a maximum).
    pub(super) async fn count(store: &SqliteStore, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&mut *store.read().await.unwrap())
            .await
            .unwrap()
    }

    /// Runs `sql` in a write of its own (a test's change behind the store's back).
    pub(super) async fn execute(store: &SqliteStore, sql: &str) {
        let mut w = store.write().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *w)
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;
    use super::testing::count;

    /// The SQLite this binary links is built as `.cargo/config.toml` says: without the query
    /// planner's stability guarantee, every `LIMIT ?` statement would be planned again on each
    /// run (sqlx clears the bindings first), and a clone built without the setting would not
    /// notice.
    #[tokio::test]
    async fn sqlite_is_built_to_plan_each_statement_once() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let qpsg = count(&store, "SELECT sqlite_compileoption_used('ENABLE_QPSG')").await;
        assert_eq!(
            qpsg, 1,
            "LIBSQLITE3_FLAGS in .cargo/config.toml was not applied"
        );
        let memstatus = count(
            &store,
            "SELECT sqlite_compileoption_used('DEFAULT_MEMSTATUS=0')",
        )
        .await;
        assert_eq!(memstatus, 1);
    }
}
