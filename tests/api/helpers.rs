//! Test harness: a fresh SQLite database per test, a hand-stepped clock, and invocations as
//! the platform adapters build them.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use piraja::core::grammar;
use piraja::core::people::{Platform, SurfaceRef, UserRef};
use piraja::desk::{Clock, Desks, Invocation, Reply};
use piraja::store::SqliteStore;
use tempfile::TempDir;

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(Mutex::new(
            Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        )))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn advance(&self, d: chrono::Duration) {
        *self.0.lock().unwrap() += d;
    }

    pub fn clock(&self) -> Clock {
        let inner = self.0.clone();
        Clock::from_fn(move || *inner.lock().unwrap())
    }
}

/// Desks over a fresh database in a temporary directory.
pub struct TestDesks {
    pub desks: Desks,
    pub store: Arc<SqliteStore>,
    pub clock: ManualClock,
    /// Keeps the database's directory alive for the test's length.
    pub _dir: TempDir,
}

impl TestDesks {
    pub async fn new() -> TestDesks {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = Arc::new(SqliteStore::open(&url).await.unwrap());
        let clock = ManualClock::new();
        // Tests create hundreds of tickets a second; the abuse limits get their own test.
        let desks = Desks::new(store.clone(), clock.clock()).with_limits(piraja::config::Limits {
            per_user: 1_000_000,
            creates_per_user: 1_000_000,
            per_desk: 1_000_000,
        });
        TestDesks {
            desks,
            store,
            clock,
            _dir: dir,
        }
    }

    /// Delivers everything queued, as the worker would in time: what is due now, then, with
    /// the clock moved on, the card refreshes paced to later in the second.
    pub async fn deliver_all(&self, worker: &piraja::outbox::Worker) {
        use piraja::store::OutboxStore;
        for _ in 0..20 {
            if worker.tick().await > 0 {
                continue;
            }
            let now = self.clock.now();
            match self.store.outbox_next_due().await.unwrap() {
                Some(next) if next > now && next - now <= chrono::Duration::seconds(1) => {
                    self.clock.advance(next - now);
                }
                _ => break,
            }
        }
    }

    /// Ticket #1 of desk 1, as stored.
    pub async fn first_ticket(&self) -> piraja::store::TicketRecord {
        use piraja::core::ticket::{DeskId, TicketNo};
        use piraja::store::TicketStore;
        (self.store.ticket(DeskId(1), TicketNo(1)).await.unwrap()).unwrap()
    }

    /// Every message ever queued in the outbox, oldest first (pending or not).
    pub async fn queued(&self) -> Vec<piraja::core::outgoing::Outgoing> {
        use sqlx::Connection;
        let path = self._dir.path().join("test.db");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let rows: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap();
        rows.iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    }

    /// Renames a table of the database behind the server's back, from a connection of the
    /// test's own: the store's statements on it then fail, as on a database in trouble, until
    /// it is renamed back.
    pub async fn rename_table(&self, from: &str, to: &str) {
        use sqlx::Connection;
        let path = self._dir.path().join("test.db");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {from} RENAME TO {to}"
        )))
        .execute(&mut db)
        .await
        .unwrap();
    }

    /// Parses `text` as Slack text and runs it as `user` in `channel` of workspace `team`.
    pub async fn slack(&self, team: &str, user: &str, channel: &str, text: &str) -> Reply {
        let cmd = match grammar::parse(text) {
            Ok(cmd) => cmd,
            Err(e) => return Reply::Error(e.to_string()),
        };
        self.desks
            .execute(&slack_inv(team, user, channel), cmd)
            .await
    }
}

impl TestDesks {
    /// Runs `text` as a Discord guild admin (Manage Guild) or member.
    pub async fn discord(&self, guild: &str, user: &str, admin: bool, text: &str) -> Reply {
        let cmd = match grammar::parse(text) {
            Ok(cmd) => cmd,
            Err(e) => return Reply::Error(e.to_string()),
        };
        let inv = Invocation {
            surface: SurfaceRef::new(Platform::Discord, guild),
            surface_name: None,
            user: UserRef::discord(user),
            user_name: Some(format!("name-{user}")),
            channel: Some("D-CHAN".to_owned()),
            key: None,
            keyed_changes: false,
            surface_admin: admin,
            post_in_channel: true,
            answered: None,
        };
        self.desks.execute(&inv, cmd).await
    }
}

pub fn slack_inv(team: &str, user: &str, channel: &str) -> Invocation {
    Invocation {
        surface: SurfaceRef::new(Platform::Slack, team),
        surface_name: None,
        user: UserRef::slack(user),
        user_name: Some(format!("name-{user}")),
        channel: Some(channel.to_owned()),
        key: None,
        keyed_changes: false,
        surface_admin: false,
        post_in_channel: true,
        answered: None,
    }
}

/// The text of a reply, for assertions.
pub fn text(reply: &Reply) -> String {
    match reply {
        Reply::Text { text, .. } | Reply::Error(text) => text.clone(),
        Reply::Card { card, note } => format!("{} | {note}", card.summary()),
        Reply::Created { card, .. } => card.summary(),
        Reply::Detail(d) => format!("{}\n{}", d.card.summary(), d.timeline.join("\n")),
        Reply::List(l) => format!(
            "{} ({}): {}",
            l.title,
            l.total,
            l.rows
                .iter()
                .map(|r| r.no.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Reply::History(h) => format!(
            "{} ({}): {}",
            h.title,
            h.total,
            h.lines
                .iter()
                .map(|l| format!("{} {}", l.no, l.status.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Reply::Form { priority } => format!("form {priority:?}"),
        Reply::Digest(d) => d.summary(),
    }
}
