//! The SLA clock, its watcher and digests, through the desk and the real SQLite store, with a
//! hand-stepped clock.

use chrono::Duration;
use piraja::core::outgoing::Outgoing;
use piraja::desk::Reply;

use crate::helpers::{TestDesks, text};

/// Every queued outbox message in order (none are delivered in these tests).
async fn pending(t: &TestDesks) -> Vec<Outgoing> {
    t.queued().await
}

fn card_sla(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Created { card, .. } | Reply::Card { card, .. } => card.sla.clone(),
        Reply::Detail(d) => d.card.sla.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn sla_settings_are_shown_set_and_refused_with_an_example() {
    let t = TestDesks::new().await;
    let shown = text(&t.slack("T1", "U1", "C1", "sla").await);
    assert!(
        shown.contains("urgent: 1h / 4h") && shown.contains("low: 1d / 7d"),
        "{shown}"
    );
    let set = text(&t.slack("T1", "U1", "C1", "sla high 2h 2d").await);
    assert!(set.contains("2h") && set.contains("2d"), "{set}");
    assert!(text(&t.slack("T1", "U1", "C1", "sla").await).contains("high: 2h / 2d"));
    for (bad, says) in [
        ("sla high 10s 1d", "30s to 90d"),
        ("sla high 1h 91d", "30s to 90d"),
        (
            "sla hours Mon-Fri 17:00-09:00 Europe/Helsinki",
            "09:00-17:00",
        ),
        (
            "sla hours Mon-Fri 09:00-17:00 Mars/Olympus",
            "Europe/Helsinki",
        ),
        ("digest schedule \"0 9 * *\"", "0 9 * * 1-5"),
        (
            "digest schedule \"0 9 * * 1-5\" Mars/Olympus",
            "Europe/Helsinki",
        ),
    ] {
        let reply = t.slack("T1", "U1", "C1", bad).await;
        assert!(matches!(reply, Reply::Error(_)), "{bad}: {}", text(&reply));
        assert!(text(&reply).contains(says), "{bad}: {}", text(&reply));
    }
    let shown = text(&t.slack("T1", "U1", "C1", "sla").await);
    assert!(
        shown.contains("high: 2h / 2d") && shown.contains("around the clock"),
        "{shown}"
    );
    let hours = text(
        &t.slack(
            "T1",
            "U1",
            "C1",
            "sla hours Mon-Fri 09:00-17:00 Europe/Helsinki",
        )
        .await,
    );
    assert!(
        hours.contains("Mon-Fri 09:00-17:00 Europe/Helsinki"),
        "{hours}"
    );
    // The whole day, as people write it, in any case; stored under the zone's own name.
    let all_day = text(
        &t.slack(
            "T1",
            "U1",
            "C1",
            "sla hours daily 00:00-24:00 europe/helsinki",
        )
        .await,
    );
    assert!(
        all_day.contains("Mon-Sun 00:00-24:00 Europe/Helsinki"),
        "{all_day}"
    );
    t.slack("T1", "U1", "C1", "sla holiday 2026-12-24").await;
    let shown = text(&t.slack("T1", "U1", "C1", "sla").await);
    assert!(
        shown.contains("2026-12-24") && shown.contains("Business hours"),
        "{shown}"
    );
    // Only admins change the policy.
    let member = t.slack("T1", "U2", "C1", "sla high 1h 1d").await;
    assert!(text(&member).contains("Only desk admins"));
}

#[tokio::test]
async fn cards_show_the_clock_and_the_watcher_warns_then_alerts_once() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C-support", "channel").await;
    // The clock starts 2026-12-01 09:00 UTC (a Tuesday). Urgent: 1h first response.
    let created = t
        .slack("T1", "U2", "C-support", "new urgent Checkout is down")
        .await;
    assert_eq!(
        card_sla(&created).as_deref(),
        Some("first response due in 1h")
    );
    let before = pending(&t).await.len();
    // 46 minutes in: at risk (75% of 1h), nobody assigned, so the channel hears it.
    t.clock.advance(Duration::minutes(46));
    t.desks.sla_tick().await;
    let out = pending(&t).await;
    let warnings: Vec<_> = out[before..]
        .iter()
        .filter(|m| matches!(m, Outgoing::ChannelMessage { text, .. } if text.contains("at risk")))
        .collect();
    assert_eq!(warnings.len(), 1, "{out:?}");
    // The card is refreshed when the level changes.
    assert!(
        out[before..]
            .iter()
            .any(|m| matches!(m, Outgoing::UpdateCards { note: None, .. }))
    );
    let shown = t.slack("T1", "U1", "C-support", "show 1").await;
    assert_eq!(
        card_sla(&shown).as_deref(),
        Some("first response due in 14m")
    );
    // 61 minutes in: breached, the channel is alerted once, however often the watcher looks.
    t.clock.advance(Duration::minutes(15));
    for _ in 0..3 {
        t.desks.sla_tick().await;
    }
    // A restarted server (new desks over the same store) sends nothing again.
    let restarted = piraja::desk::Desks::new(t.store.clone(), t.clock.clock());
    restarted.sla_tick().await;
    restarted
        .refresh_desk_sla(piraja::core::ticket::DeskId(1))
        .await
        .unwrap();
    let out = pending(&t).await;
    let breaches = out
        .iter()
        .filter(|m| matches!(m, Outgoing::ChannelMessage { text, .. } if text.contains("breached its first response")))
        .count();
    assert_eq!(breaches, 1, "{out:?}");
    let warnings = out
        .iter()
        .filter(|m| matches!(m, Outgoing::ChannelMessage { text, .. } if text.contains("at risk")))
        .count();
    assert_eq!(warnings, 1);
    let shown = t.slack("T1", "U1", "C-support", "show 1").await;
    assert_eq!(
        card_sla(&shown).as_deref(),
        Some("first response overdue by 1m")
    );
}

#[tokio::test]
async fn a_breach_undone_by_a_lower_priority_and_reached_again_is_alerted_again() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C-support", "channel").await;
    let breaches = |out: &[Outgoing]| {
        out.iter()
            .filter(|m| matches!(m, Outgoing::ChannelMessage { text, .. } if text.contains("breached its first response")))
            .count()
    };
    // Urgent: 1h first response, breached after 61 minutes.
    t.slack("T1", "U2", "C-support", "new urgent Checkout is down")
        .await;
    t.clock.advance(Duration::minutes(61));
    t.desks.sla_tick().await;
    assert_eq!(breaches(&pending(&t).await), 1);
    // Low: a day to answer, so the breach no longer stands; the watcher says nothing more.
    let lowered = t.slack("T1", "U1", "C-support", "priority 1 low").await;
    assert_eq!(
        card_sla(&lowered).as_deref(),
        Some("first response due in 22h 59m")
    );
    t.clock.advance(Duration::hours(12));
    t.desks.sla_tick().await;
    assert_eq!(breaches(&pending(&t).await), 1);
    // A day after it was opened the new deadline is missed too: that is a new breach.
    t.clock.advance(Duration::hours(11));
    for _ in 0..2 {
        t.desks.sla_tick().await;
    }
    let out = pending(&t).await;
    assert_eq!(breaches(&out), 2, "{out:?}");
}

#[tokio::test]
async fn a_channel_and_a_person_each_keep_one_schedule_and_either_can_stop_it() {
    use piraja::store::SlaStore;
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C-support", "channel").await;
    let schedules = || async { t.store.digest_schedules().await.unwrap() };
    t.slack(
        "T1",
        "U1",
        "C-support",
        "digest schedule \"0 9 * * 1-5\" UTC",
    )
    .await;
    t.slack(
        "T1",
        "U1",
        "C-support",
        "digest schedule \"0 16 * * 1-5\" UTC",
    )
    .await;
    t.slack("T1", "U1", "C-other", "digest schedule \"0 9 * * *\" UTC")
        .await;
    t.slack("T1", "U1", "C-support", "digest me \"30 8 * * *\"")
        .await;
    t.slack("T1", "U1", "C-other", "digest me \"45 8 * * *\"")
        .await;
    let mut crons: Vec<String> = schedules().await.into_iter().map(|s| s.cron).collect();
    crons.sort();
    assert_eq!(crons, ["0 16 * * 1-5", "0 9 * * *", "45 8 * * *"]);
    let stopped = t.slack("T1", "U1", "C-support", "digest me off").await;
    assert!(text(&stopped).contains("stopped"), "{}", text(&stopped));
    let again = t.slack("T1", "U1", "C-support", "digest me off").await;
    assert!(
        text(&again).contains("no digest of your own"),
        "{}",
        text(&again)
    );
    t.slack("T1", "U1", "C-support", "digest off").await;
    let left: Vec<String> = schedules().await.into_iter().map(|s| s.channel).collect();
    assert_eq!(left, ["C-other"]);
}

#[tokio::test]
async fn a_breached_ticket_waiting_on_the_customer_stays_in_the_digests_breached_section() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C-support", "channel").await;
    t.slack("T1", "U2", "C-support", "new urgent Checkout is down")
        .await;
    // Answered at once; the 4h resolution target is missed, then the ticket waits.
    t.slack("T1", "U1", "C-support", "start 1").await;
    // A second one, missed too, still running.
    t.slack("T1", "U2", "C-support", "new urgent Payments are down")
        .await;
    t.slack("T1", "U1", "C-support", "start 2").await;
    t.clock.advance(Duration::minutes(241));
    t.desks.sla_tick().await;
    t.slack("T1", "U1", "C-support", "wait 1").await;
    let reply = t.slack("T1", "U1", "C-support", "digest now").await;
    let Reply::Digest(d) = &reply else {
        panic!("not a digest: {reply:?}")
    };
    assert_eq!(d.breached.total, 2, "{:?}", d.breached);
    assert_eq!(d.at_risk.total, 0, "{:?}", d.at_risk);
    // The running one comes first: the waiting one's clock is paused (it has no due time), and
    // a paused clock sorted first would push the live breaches out of the listed few.
    let listed: Vec<i64> = d.breached.lines.iter().map(|l| l.no.0).collect();
    assert_eq!(listed, [2, 1]);
    // It says how long ago its target was missed, which the watcher found at 241 min.
    assert_eq!(
        d.breached.lines[1].when(t.clock.now()),
        "SLA paused (waiting), breached 0s ago"
    );
    t.clock.advance(Duration::minutes(95));
    let reply = t.slack("T1", "U1", "C-support", "digest now").await;
    let Reply::Digest(d) = &reply else {
        panic!("not a digest: {reply:?}")
    };
    assert_eq!(
        d.breached.lines[1].when(t.clock.now()),
        "SLA paused (waiting), breached 1h 35m ago"
    );
    // Both missed targets count in the week's compliance, the paused one too.
    let urgent = d
        .compliance
        .iter()
        .find(|c| c.priority.as_str() == "urgent");
    let urgent = urgent.unwrap();
    assert_eq!((urgent.resolution_met, urgent.resolution_total), (0, 2));
}

#[tokio::test]
async fn an_assignee_is_warned_by_dm_and_waiting_pauses_the_clock() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C-support", "channel").await;
    t.slack("T1", "U1", "C-support", "new high Invoices are wrong")
        .await;
    // A reporter's own assignment is not a first response; an agent's start is.
    t.slack("T1", "U1", "C-support", "assign 1 <@U7>").await;
    let started = t.slack("T1", "U7", "C-support", "start 1").await;
    assert_eq!(card_sla(&started).as_deref(), Some("resolution due in 1d"));
    // 75% of a day later the assignee gets a direct message.
    t.clock.advance(Duration::hours(18));
    t.desks.sla_tick().await;
    let dms = pending(&t)
        .await
        .into_iter()
        .filter(|m| matches!(m, Outgoing::DirectMessage { user, text, .. } if user.id == "U7" && text.contains("at risk")))
        .count();
    assert_eq!(dms, 1);
    // Waiting on the customer pauses the clock; resuming continues where it stopped.
    let waiting = t.slack("T1", "U7", "C-support", "wait 1").await;
    assert_eq!(
        card_sla(&waiting).as_deref(),
        Some("SLA paused (waiting on the customer)")
    );
    t.clock.advance(Duration::days(3));
    t.desks.sla_tick().await;
    let resumed = t.slack("T1", "U7", "C-support", "start 1").await;
    assert_eq!(card_sla(&resumed).as_deref(), Some("resolution due in 6h"));
    // A policy change recomputes the due time.
    t.slack("T1", "U1", "C-support", "sla high 4h 2d").await;
    let shown = t.slack("T1", "U7", "C-support", "show 1").await;
    assert_eq!(card_sla(&shown).as_deref(), Some("resolution due in 1d 6h"));
    // Business hours: Tuesday 2026-12-04 is past; the clock counts only 09-17 Helsinki.
    let completed = t.slack("T1", "U7", "C-support", "complete 1").await;
    assert_eq!(card_sla(&completed), None);
}

#[tokio::test]
async fn digest_now_summarises_the_queue_for_both_platforms() {
    let t = TestDesks::new().await;
    for i in 0..12 {
        let p = ["urgent", "high", "medium", "low"][i % 4];
        t.slack("T1", "U1", "C1", &format!("new {p} Ticket {i}"))
            .await;
    }
    t.slack("T1", "U1", "C1", "assign 2 me").await;
    t.slack("T1", "U1", "C1", "complete 3").await;
    t.clock.advance(Duration::hours(2));
    t.desks.sla_tick().await;
    let reply = t.slack("T1", "U1", "C1", "digest now").await;
    let Reply::Digest(d) = &reply else {
        panic!("{}", text(&reply))
    };
    assert_eq!(d.open_total(), 11);
    assert_eq!(d.unassigned.total, 10);
    assert_eq!(d.created, 12);
    assert_eq!(d.resolved, 1);
    // The urgent ones (1h first response) are breached after two hours.
    assert_eq!(d.breached.total, 3, "{:?}", d.breached);
    // The plain text names every ticket the digest lists.
    let summary = d.summary();
    let words: Vec<&str> = summary
        .split(|c: char| c.is_whitespace() || ",;()".contains(c))
        .collect();
    for no in d.listed() {
        assert!(words.contains(&no.to_string().as_str()), "{no}: {summary}");
    }
    assert_eq!(d.oldest.lines[0].no.0, 1);
    assert_eq!(d.per_assignee.len(), 1);
    // The week's compliance counts the urgent first responses missed and still unanswered,
    // and the medium ticket its reporter completed in time (not a response: nobody else
    // answered it).
    let of = |p| d.compliance.iter().find(|c| c.priority == p).cloned();
    let urgent = of(piraja::core::ticket::Priority::Urgent).expect("urgent compliance");
    assert_eq!(
        (
            urgent.first_met,
            urgent.first_total,
            urgent.resolution_total
        ),
        (0, 3, 0)
    );
    let medium = of(piraja::core::ticket::Priority::Medium).expect("medium compliance");
    assert_eq!((medium.first_met, medium.first_total), (0, 0));
    assert_eq!((medium.resolution_met, medium.resolution_total), (1, 1));
    let slack = piraja::slack::render::message(&reply);
    assert!(!slack.private);
    assert!(piraja::slack::render::limit_violations(&slack.blocks).is_empty());
    let discord = piraja::discord::render::message(&reply);
    assert!(piraja::discord::render::limit_violations(&discord.body).is_empty());
}

#[tokio::test]
async fn scheduled_digests_run_once_each_skip_long_outages_and_stop_when_removed() {
    let t = TestDesks::new().await;
    // 2026-12-01 09:00 UTC now; every day at 09:30 UTC in this channel.
    let set = text(
        &t.slack("T1", "U1", "C-ops", "digest schedule \"30 9 * * *\" UTC")
            .await,
    );
    assert!(set.contains("2026-12-01 09:30"), "{set}");
    let me = text(
        &t.slack("T1", "U1", "C-ops", "digest me \"35 9 * * 1-5\"")
            .await,
    );
    assert!(me.contains("direct message"), "{me}");
    let digests = |out: &[Outgoing]| {
        out.iter()
            .filter(|m| matches!(m, Outgoing::Digest { user: None, .. }))
            .count()
    };
    t.desks.digest_tick().await;
    assert_eq!(digests(&pending(&t).await), 0);
    t.clock.advance(Duration::minutes(31));
    t.desks.digest_tick().await;
    t.desks.digest_tick().await;
    assert_eq!(
        digests(&pending(&t).await),
        1,
        "once, however often the scheduler looks"
    );
    // Down from before 09:30 the next day until 11:00: more than an hour late, skipped.
    t.clock.advance(Duration::hours(25));
    t.desks.digest_tick().await;
    assert_eq!(digests(&pending(&t).await), 1);
    // Back at 09:36 the day after, a restart posts that day's once.
    t.clock.advance(Duration::hours(23) + Duration::minutes(5));
    let restarted = piraja::desk::Desks::new(t.store.clone(), t.clock.clock());
    restarted.digest_tick().await;
    t.desks.digest_tick().await;
    assert_eq!(digests(&pending(&t).await), 2);
    // The personal digest went by direct message on the weekday mornings.
    let personal = pending(&t)
        .await
        .iter()
        .filter(|m| matches!(m, Outgoing::Digest { user: Some(u), .. } if u.id == "U1"))
        .count();
    assert!(personal >= 1);
    let off = text(&t.slack("T1", "U1", "C-ops", "digest off").await);
    assert!(off.contains("Removed 1"), "{off}");
    t.clock.advance(Duration::days(1));
    t.desks.digest_tick().await;
    assert_eq!(digests(&pending(&t).await), 2);
}
