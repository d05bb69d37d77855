//! A fixed set of SQLite connections handed out one at a time, and write transactions on them.
//!
//! Why not `sqlx::Pool`: each sqlx SQLite connection runs its statements on a thread of its
//! own, so every message to it is a round trip between threads. The pool adds two of those to
//! every use: it pings the connection when it is acquired (`test_before_acquire`) and again,
//! from a spawned task, when it is released. That tripled the thread hops of a one-statement
//! read and was most of the server's time under load (BENCHMARKS.md). The connections here are
//! in-process files, not sockets that go stale, so a checkout is a semaphore permit and a pop
//! from a vector, and a return is a push.
//!
//! Transactions are plain `BEGIN IMMEDIATE` / `COMMIT` statements on a checked-out connection
//! ([`Tx`]; the group commit sends the `BEGIN` with the round's first write); a transaction dropped before its commit is rolled back by a task that holds the
//! connection until the rollback has run, so no one else ever sees it half-done.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::Result;

/// Up to `size` connections to one database.
pub(crate) struct Conns {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl Conns {
    /// Opens `size` connections with `options` (at least one, at once, so a bad database
    /// fails here and not on the first request).
    pub(crate) async fn open(options: SqliteConnectOptions, size: usize) -> Result<Conns> {
        let size = size.max(1);
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(options.connect().await?);
        }
        Ok(Conns {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(size)),
                size,
            }),
        })
    }

    /// A connection of the set, waiting for one to be free.
    pub(crate) async fn get(&self) -> Result<Conn> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.inner.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let conn = match idle {
            Some(conn) => conn,
            // One was given up (dropped outside a runtime): open its replacement.
            None => self.inner.options.connect().await?,
        };
        Ok(Conn {
            conn: Some(conn),
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    /// A connection for a write transaction whose first command is to begin it with
    /// `BEGIN IMMEDIATE` (the write lock from the first statement), in the same round trip as
    /// that command's own statements. Dropped uncommitted, it is rolled back all the same.
    pub(crate) async fn for_transaction(&self) -> Result<Tx> {
        Ok(Tx {
            conn: Some(self.get().await?),
        })
    }

    /// Waits for every connection to come back, then closes them all; later checkouts fail.
    pub(crate) async fn close(&self) {
        let Ok(all) = self
            .inner
            .permits
            .acquire_many(u32::try_from(self.inner.size).unwrap_or(u32::MAX))
            .await
        else {
            return;
        };
        self.inner.permits.close();
        let conns = self
            .inner
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for conn in conns {
            let _ = sqlx::Connection::close(conn).await;
        }
        drop(all);
    }
}

impl Clone for Conns {
    fn clone(&self) -> Conns {
        Conns {
            inner: self.inner.clone(),
        }
    }
}

/// A checked-out connection; back in the set when dropped.
pub(crate) struct Conn {
    conn: Option<SqliteConnection>,
    inner: Arc<Inner>,
    // Released after `Drop::drop` has put the connection back (fields drop after it).
    _permit: OwnedSemaphorePermit,
}

impl Deref for Conn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Only `Drop` takes it out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && let Ok(mut idle) = self.inner.idle.lock()
        {
            // A statement dropped half-way is harmless: the connection's thread runs commands
            // in order and resets a statement whose reader went away.
            idle.push(conn);
        }
    }
}

/// A write transaction on a checked-out connection. Commit it, or drop it to roll back.
pub(crate) struct Tx {
    conn: Option<Conn>,
}

impl Tx {
    /// Commits. On failure the transaction is rolled back before the connection is reused.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let conn = self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        sqlx::query("COMMIT").execute(&mut **conn).await?;
        // Committed: nothing left to roll back.
        self.conn = None;
        Ok(())
    }

    /// The transaction was committed by a statement of its own (`…; COMMIT`): the connection
    /// goes back as it is, with nothing to roll back.
    pub(crate) fn committed(mut self) {
        self.conn = None;
    }
}

impl Deref for Tx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_deref_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // The task owns the connection until the rollback ran (after a failed `COMMIT`
            // there may be nothing to roll back; that error is expected and ignored), and
            // puts it back only then. A task that never runs (its runtime is shutting down)
            // closes it instead, which rolls back; the set opens a replacement.
            Ok(rt) => {
                let raw = conn.conn.take();
                rt.spawn(async move {
                    if let Some(mut raw) = raw {
                        let _ = sqlx::query("ROLLBACK").execute(&mut raw).await;
                        conn.conn = Some(raw);
                    }
                    drop(conn);
                });
            }
            // No runtime to run it on: close the connection instead, which rolls back; the set
            // opens a replacement on the next checkout.
            Err(_) => drop(conn.conn.take()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction dropped while its runtime shuts down (its rollback task never runs) does
    /// not go back to the set still open: the next checkout can begin a transaction.
    #[test]
    fn a_transaction_dropped_at_shutdown_is_not_reused_half_done() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true);
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let conns = first.block_on(Conns::open(options, 1)).unwrap();
        let mut tx = first.block_on(conns.for_transaction()).unwrap();
        first
            .block_on(sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx))
            .unwrap();
        // Held by a task that never finishes: dropped when the runtime shuts down.
        first.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(first);
        let second = runtime();
        second.block_on(async {
            let mut conn = conns.get().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
        });
    }
}
