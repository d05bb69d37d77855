//! The outbox worker against a fake destination that fails, rate-limits and recovers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use piraja::core::outgoing::Outgoing;
use piraja::core::people::{Platform, SurfaceRef};
use piraja::core::ticket::{DeskId, TicketId};
use piraja::outbox::{Delivery, RetryPolicy, Sender, Worker};
use piraja::store::{OutboxItem, OutboxStore};

use crate::helpers::TestDesks;

/// A destination that answers from a script, then succeeds; it records what it delivered.
#[derive(Default)]
struct FakeDestination {
    script: Mutex<VecDeque<Delivery>>,
    delivered: Mutex<Vec<String>>,
    attempts: Mutex<usize>,
}

#[async_trait]
impl Sender for FakeDestination {
    async fn deliver(&self, item: &OutboxItem) -> Delivery {
        *self.attempts.lock().unwrap() += 1;
        if let Some(next) = self.script.lock().unwrap().pop_front() {
            return next;
        }
        match &item.message {
            Outgoing::ChannelMessage { text, .. } => {
                self.delivered.lock().unwrap().push(text.clone());
            }
            Outgoing::UpdateCards { note, .. } => {
                let note = note.clone().unwrap_or_default();
                self.delivered.lock().unwrap().push(format!("edit: {note}"));
            }
            Outgoing::PostCard { .. } => self.delivered.lock().unwrap().push("post".into()),
            _ => {}
        }
        Delivery::Sent { card: None }
    }
}

fn notice(text: &str) -> Outgoing {
    Outgoing::ChannelMessage {
        surface: SurfaceRef::new(Platform::Slack, "T1"),
        channel: "C1".into(),
        text: text.into(),
    }
}

/// A refresh of ticket 1's cards on the Slack workspace, saying `note` in their threads.
fn refresh(note: Option<&str>) -> Outgoing {
    Outgoing::UpdateCards {
        surface: SurfaceRef::new(Platform::Slack, "T1"),
        ticket: TicketId(1),
        note: note.map(str::to_owned),
        answered: None,
    }
}

fn retry(after: Option<u64>) -> Delivery {
    Delivery::Retry {
        after: after.map(Duration::from_secs),
        error: "http 503".into(),
        done: Vec::new(),
    }
}

async fn setup(
    script: Vec<Delivery>,
    policy: RetryPolicy,
) -> (TestDesks, Arc<FakeDestination>, Worker) {
    let t = TestDesks::new().await;
    // A desk must exist for the rows' foreign key.
    t.slack("T1", "U1", "C1", "help").await;
    let fake = Arc::new(FakeDestination {
        script: Mutex::new(script.into()),
        ..Default::default()
    });
    let worker = Worker::new(
        t.store.clone(),
        t.clock.clock(),
        t.desks.outbox_wake.clone(),
    )
    .with_sender(Platform::Slack, fake.clone())
    .with_policy(policy);
    (t, fake, worker)
}

#[tokio::test]
async fn a_failing_destination_is_retried_with_backoff_honours_retry_after_and_recovers_in_order() {
    let policy = RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
        max_attempts: 10,
    };
    let (t, fake, worker) = setup(vec![retry(None), retry(None), retry(Some(30))], policy).await;
    t.store
        .enqueue(
            DeskId(1),
            "k1",
            &[notice("first"), notice("second")],
            t.clock.now(),
        )
        .await
        .unwrap();

    // Attempt 1 fails; the second message waits behind the first.
    assert_eq!(worker.tick().await, 1);
    assert_eq!(worker.tick().await, 0, "nothing is due during the backoff");
    // Backoff after attempt 1 is 1–2 s.
    t.clock.advance(chrono::Duration::milliseconds(2001));
    assert_eq!(worker.tick().await, 1); // attempt 2 fails
    t.clock.advance(chrono::Duration::milliseconds(4001));
    assert_eq!(worker.tick().await, 1); // attempt 3: rate-limited, Retry-After 30 s
    t.clock.advance(chrono::Duration::seconds(29));
    assert_eq!(worker.tick().await, 0, "Retry-After is honoured");
    t.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(worker.tick().await, 1); // attempt 4 succeeds
    assert_eq!(worker.tick().await, 1); // then the second message
    assert_eq!(*fake.delivered.lock().unwrap(), vec!["first", "second"]);
    assert_eq!(*fake.attempts.lock().unwrap(), 5);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_and_the_destination_moves_on() {
    let policy = RetryPolicy {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(1),
        max_attempts: 3,
    };
    let (t, fake, worker) = setup(vec![retry(None), retry(None), retry(None)], policy).await;
    t.store
        .enqueue(
            DeskId(1),
            "k1",
            &[notice("doomed"), notice("next")],
            t.clock.now(),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        worker.tick().await;
        t.clock.advance(chrono::Duration::seconds(2));
    }
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 1));
    worker.tick().await;
    assert_eq!(*fake.delivered.lock().unwrap(), vec!["next"]);
}

/// A destination whose every delivery panics (a bug in a sender).
struct Panicking;

#[async_trait]
impl Sender for Panicking {
    async fn deliver(&self, _item: &OutboxItem) -> Delivery {
        panic!("a bug in a sender")
    }
}

#[tokio::test]
async fn a_delivery_that_panics_is_a_failed_attempt_and_in_the_end_dead_lettered() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "help").await;
    let worker = Worker::new(
        t.store.clone(),
        t.clock.clock(),
        t.desks.outbox_wake.clone(),
    )
    .with_sender(Platform::Slack, Arc::new(Panicking))
    .with_policy(RetryPolicy {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(1),
        max_attempts: 2,
    });
    t.store
        .enqueue(DeskId(1), "k1", &[notice("boom")], t.clock.now())
        .await
        .unwrap();
    assert_eq!(worker.tick().await, 1);
    // Recorded as an attempt, backed off: not sent again at once.
    assert_eq!(worker.tick().await, 0);
    t.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(worker.tick().await, 1);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 1));
}

#[tokio::test]
async fn a_message_held_by_a_rate_limit_is_not_an_attempt_and_is_not_dead_lettered() {
    let policy = RetryPolicy {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(1),
        max_attempts: 2,
    };
    let held = || Delivery::Held {
        after: Duration::from_secs(60),
    };
    let (t, fake, worker) = setup(vec![held(), held(), held()], policy).await;
    t.store
        .enqueue(DeskId(1), "k1", &[notice("patient")], t.clock.now())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(worker.tick().await, 1);
        assert_eq!(worker.tick().await, 0, "held for the limit's length");
        t.clock.advance(chrono::Duration::seconds(60));
    }
    // Three holds, more than the two attempts allowed: still queued, then delivered.
    assert_eq!(worker.tick().await, 1);
    assert_eq!(*fake.delivered.lock().unwrap(), vec!["patient"]);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once() {
    let (t, _fake, worker) = setup(
        vec![Delivery::Failed("channel_not_found".into())],
        RetryPolicy::default(),
    )
    .await;
    t.store
        .enqueue(DeskId(1), "k1", &[notice("nowhere")], t.clock.now())
        .await
        .unwrap();
    worker.tick().await;
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 1));
}

#[tokio::test]
async fn the_same_message_key_is_queued_once() {
    let (t, fake, worker) = setup(vec![], RetryPolicy::default()).await;
    for _ in 0..3 {
        t.store
            .enqueue(DeskId(1), "same-cause", &[notice("once")], t.clock.now())
            .await
            .unwrap();
    }
    while worker.tick().await > 0 {}
    assert_eq!(*fake.delivered.lock().unwrap(), vec!["once"]);
}

#[tokio::test]
async fn the_worker_wakes_when_a_message_is_queued_and_stops_on_shutdown() {
    let (t, fake, worker) = setup(vec![], RetryPolicy::default()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    t.store
        .enqueue(DeskId(1), "k", &[notice("wake up")], t.clock.now())
        .await
        .unwrap();
    t.desks.outbox_wake.notify_one();
    for _ in 0..200 {
        if !fake.delivered.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*fake.delivered.lock().unwrap(), vec!["wake up"]);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the worker stops")
        .unwrap();
}

#[tokio::test]
async fn queued_refreshes_of_a_card_go_as_one_delivery_and_a_card_post_keeps_its_place() {
    let (t, fake, worker) = setup(vec![retry(None)], RetryPolicy::default()).await;
    let post = Outgoing::PostCard {
        surface: SurfaceRef::new(Platform::Slack, "T1"),
        channel: "C2".into(),
        ticket: TicketId(1),
    };
    let now = t.clock.now();
    let queue = [
        ("k1", vec![refresh(Some("Ada started it")), refresh(None)]),
        ("k2", vec![refresh(Some("Ada completed it"))]),
        ("k3", vec![post]),
        ("k4", vec![refresh(Some("Bo reopened it"))]),
    ];
    for (key, out) in &queue {
        t.store.enqueue(DeskId(1), key, out, now).await.unwrap();
    }

    // The first attempt carries the three refreshes before the post, and fails: all three stay
    // queued and are carried again.
    assert_eq!(worker.tick().await, 1);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (5, 0));
    t.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(worker.tick().await, 1);
    assert_eq!(worker.tick().await, 1, "the post goes alone");
    assert_eq!(worker.tick().await, 1, "then the refresh queued after it");
    assert_eq!(worker.tick().await, 0);
    assert_eq!(
        *fake.delivered.lock().unwrap(),
        [
            "edit: Ada started it\nAda completed it",
            "post",
            "edit: Bo reopened it"
        ]
    );
    assert_eq!(*fake.attempts.lock().unwrap(), 4);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn refreshes_carried_by_a_delivery_that_fails_for_good_are_dead_with_it() {
    let (t, fake, worker) = setup(
        vec![Delivery::Failed("channel_not_found".into())],
        RetryPolicy::default(),
    )
    .await;
    let now = t.clock.now();
    let out = [refresh(Some("a")), refresh(Some("b")), refresh(Some("c"))];
    t.store.enqueue(DeskId(1), "k", &out, now).await.unwrap();
    assert_eq!(worker.tick().await, 1);
    assert_eq!(worker.tick().await, 0);
    assert_eq!(*fake.attempts.lock().unwrap(), 1);
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 3));
}

#[tokio::test]
async fn housekeeping_prunes_week_old_sent_messages_and_request_keys_and_nothing_else() {
    use piraja::core::grammar;
    use piraja::desk::Reply;
    use piraja::desk::housekeeping::Pruned;

    let (t, _fake, worker) = setup(
        vec![Delivery::Failed("channel_not_found".into())],
        RetryPolicy::default(),
    )
    .await;
    let create = |key: &'static str| {
        let mut inv = crate::helpers::slack_inv("T1", "U1", "C1");
        inv.key = Some(key.into());
        let desks = t.desks.clone();
        async move {
            match desks
                .execute(&inv, grammar::parse("new the printer is on fire").unwrap())
                .await
            {
                Reply::Created { card, replayed } => (card.no.0, replayed),
                other => panic!("{other:?}"),
            }
        }
    };
    // A week ago: a message that died, a ticket made by a request whose messages were sent.
    t.store
        .enqueue(DeskId(1), "dead", &[notice("lost")], t.clock.now())
        .await
        .unwrap();
    assert_eq!(worker.tick().await, 1);
    assert_eq!(create("slack:old").await, (1, false));
    while worker.tick().await > 0 {}
    t.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::minutes(1));
    // Now: another ticket, its messages sent, and a message still queued.
    assert_eq!(create("slack:new").await, (2, false));
    while worker.tick().await > 0 {}
    t.store
        .enqueue(DeskId(1), "queued", &[notice("later")], t.clock.now())
        .await
        .unwrap();

    let pruned = t.desks.housekeep().await;
    assert!(pruned.sent >= 1, "{pruned:?}");
    assert_eq!(pruned.request_keys, 1, "{pruned:?}");
    assert_eq!(t.desks.housekeep().await, Pruned::default());
    let stats = t.store.outbox_stats(t.clock.now()).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 1), "pending and dead stay");
    // The new request is still recognised; the week-old one is forgotten.
    assert_eq!(create("slack:new").await, (2, true));
    assert_eq!(create("slack:old").await, (3, false));
}

#[tokio::test]
async fn a_worker_whose_read_fails_waits_before_it_reads_again() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "help").await;
    // A pending row the worker cannot decode: every read of due messages fails.
    {
        use sqlx::Connection;
        let path = t._dir.path().join("test.db");
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO outbox (desk_id, destination, idempotency_key, payload, state,
                                 next_attempt_at, created_at)
             VALUES (1, 'slack:T1:channel:C1', 'broken', 'not json', 'pending', 0, 0)",
        )
        .execute(&mut db)
        .await
        .unwrap();
    }
    // The worker's clock counts its readings: one pass of the loop reads it twice.
    let readings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = readings.clone();
    let now = t.clock.now();
    let clock = piraja::desk::Clock::from_fn(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        now
    });
    let worker = Worker::new(t.store.clone(), clock, t.desks.outbox_wake.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let passes = readings.load(std::sync::atomic::Ordering::Relaxed) / 2;
    assert!(passes <= 2, "{passes} passes over the outbox in 300 ms");
}
