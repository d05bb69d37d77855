//! The desk core through the real SQLite store: tenancy, numbering, roles, the status machine,
//! the timeline, contacts and the outbox rows that changes write.

use std::collections::HashSet;

use piraja::core::outgoing::Outgoing;
use piraja::core::people::{Platform, SurfaceRef};
use piraja::core::ticket::{DeskId, TicketId, TicketNo};
use piraja::desk::Reply;
use piraja::store::{
    ContactStore, DeskStore, OutboxStore, Outcome, Settled, SlaStore, TicketStore,
};

use crate::helpers::{TestDesks, slack_inv, text};

fn far_future() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(4_000_000_000, 0).unwrap()
}

#[tokio::test]
async fn a_new_ticket_gets_the_next_number_and_a_created_event() {
    let t = TestDesks::new().await;
    let r = t.slack("T1", "U1", "C1", "new high VPN is down").await;
    assert_eq!(text(&r), "#1 · high · open · VPN is down");
    let r = t.slack("T1", "U1", "C1", "new printer on fire").await;
    assert_eq!(text(&r), "#2 · medium · open · printer on fire");
    let shown = text(&t.slack("T1", "U1", "C1", "show 1").await);
    assert!(shown.contains("name-U1 · created (high)"), "{shown}");
}

#[tokio::test]
async fn desk_b_never_sees_desk_a() {
    let t = TestDesks::new().await;
    t.slack("TA", "UA", "C1", "new secret of desk A").await;
    t.slack("TA", "UA", "C1", "contact 1 jane@acme.com Jane")
        .await;
    t.slack("TA", "UA", "C1", "note 1 a private note").await;

    // Desk B's first ticket is its own #1, and A's ticket is nowhere in B's views.
    assert_eq!(
        text(&t.slack("TB", "UB", "C9", "list all").await),
        "All tickets (0): "
    );
    assert_eq!(
        text(&t.slack("TB", "UB", "C9", "show 1").await),
        "There is no ticket #1 on this desk. Try /ticket list all"
    );
    assert!(
        text(&t.slack("TB", "UB", "C9", "history jane@acme.com").await).starts_with("No contact")
    );
    assert!(matches!(
        t.slack("TB", "UB", "C9", "note 1 sneaky").await,
        Reply::Error(_)
    ));
    t.slack("TB", "UB", "C9", "new desk B's own").await;
    assert_eq!(
        text(&t.slack("TB", "UB", "C9", "list all").await),
        "All tickets (1): #1"
    );

    // At the store level too: A's ticket id read through B's desk is nothing.
    let a = t.first_ticket().await;
    assert_eq!(a.ticket.description, "secret of desk A");
    assert!(
        t.store
            .ticket_by_id(DeskId(2), a.ticket.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.store
            .timeline(DeskId(2), a.ticket.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.store
            .timeline(DeskId(1), a.ticket.id)
            .await
            .unwrap()
            .len(),
        3
    );
    let jane = piraja::core::contact::Email::parse("jane@acme.com").unwrap();
    assert!(
        t.store
            .find_individual(DeskId(2), &jane)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.store
            .find_individual(DeskId(1), &jane)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        t.store
            .card_messages(
                DeskId(2),
                a.ticket.id,
                &SurfaceRef::new(Platform::Slack, "TA")
            )
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn fifty_concurrent_creators_get_numbers_one_to_fifty() {
    let t = TestDesks::new().await;
    t.slack("T1", "U0", "C1", "new warm-up").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let desks = t.desks.clone();
        tasks.spawn(async move {
            let inv = slack_inv("T1", &format!("U{i}"), "C1");
            let cmd = piraja::core::grammar::parse(&format!("new request {i}")).unwrap();
            desks.execute(&inv, cmd).await
        });
    }
    let mut numbers = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Reply::Created { card, .. } => assert!(numbers.insert(card.no.0)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: HashSet<i64> = (2..=51).collect();
    assert_eq!(numbers, want);
}

#[tokio::test]
async fn a_retried_request_returns_the_same_ticket() {
    let t = TestDesks::new().await;
    let mut inv = slack_inv("T1", "U1", "C1");
    inv.key = Some("trigger-123".into());
    let cmd = piraja::core::grammar::parse("new only once").unwrap();
    let first = t.desks.execute(&inv, cmd.clone()).await;
    let second = t.desks.execute(&inv, cmd).await;
    match (first, second) {
        (
            Reply::Created {
                card: a,
                replayed: false,
            },
            Reply::Created {
                card: b,
                replayed: true,
            },
        ) => {
            assert_eq!(a.no, b.no)
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        text(&t.slack("T1", "U1", "C1", "list all").await),
        "All tickets (1): #1"
    );
}

#[tokio::test]
async fn the_first_user_is_admin_and_members_act_as_agents_until_an_agent_exists() {
    let t = TestDesks::new().await;
    t.slack("T1", "UADMIN", "C1", "new first").await;
    // Small-team mode: a plain member may work tickets.
    let r = t.slack("T1", "UMEMBER", "C1", "start 1").await;
    assert_eq!(
        text(&r),
        "#1 · medium · in progress · first | <@UMEMBER> started #1."
    );
    // Settings stay with admins.
    let r = t.slack("T1", "UMEMBER", "C1", "channel").await;
    assert!(
        text(&r).starts_with("Only desk admins can use /ticket channel; you are a member"),
        "{}",
        text(&r)
    );
    // Once the admin names an agent, members no longer work tickets.
    let r = t
        .slack("T1", "UADMIN", "C1", "role <@UAGENT|agent> agent")
        .await;
    assert_eq!(text(&r), "<@UAGENT> is now an agent of this desk.");
    let r = t.slack("T1", "UMEMBER", "C1", "complete 1").await;
    assert!(
        text(&r).starts_with("#1: Only agents can use /ticket complete"),
        "{}",
        text(&r)
    );
    let r = t.slack("T1", "UAGENT", "C1", "complete 1 done").await;
    assert_eq!(
        text(&r),
        "#1 · medium · completed · first | <@UAGENT> completed #1. done"
    );
    // Members still create and view.
    assert!(matches!(
        t.slack("T1", "UMEMBER", "C1", "new second").await,
        Reply::Created { .. }
    ));
    assert!(matches!(
        t.slack("T1", "UMEMBER", "C1", "show 1").await,
        Reply::Detail(_)
    ));
}

#[tokio::test]
async fn tickets_move_only_as_the_status_table_allows_and_every_change_is_on_the_timeline() {
    let t = TestDesks::new().await;
    let run = |s: &'static str| t.slack("T1", "U1", "C1", s);
    run("new the thing").await;
    run("assign 1 me").await;
    run("start 1").await;
    assert_eq!(
        text(&run("reopen 1").await),
        "#1 is in progress and cannot move to open; it is not resolved."
    );
    // A double click on Start changes nothing and records nothing.
    assert_eq!(
        text(&run("start 1").await),
        "#1 · medium · in progress · the thing | Nothing to change: #1 is already so."
    );
    run("wait 1").await;
    run("priority 1 urgent").await;
    run("note 1 customer called back").await;
    run("complete 1 fixed").await;
    assert_eq!(
        text(&run("start 1").await),
        "#1 is completed and cannot move to in progress; reopen it first."
    );
    run("reopen 1").await;
    run("close 1 duplicate").await;
    let shown = text(&run("show 1").await);
    let lines: Vec<&str> = shown
        .lines()
        .skip(1)
        .map(|l| l.split(" · ").nth(2).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "created (medium)",
            "assigned",
            "status open → in progress",
            "status in progress → waiting",
            "priority medium → urgent",
            "note: customer called back",
            "status waiting → completed: fixed",
            "status completed → open",
            "status open → closed: duplicate",
        ]
    );
}

#[tokio::test]
async fn lists_filter_and_put_the_most_urgent_first() {
    let t = TestDesks::new().await;
    let run = |s: &'static str| t.slack("T1", "U1", "C1", s);
    run("new low one").await; // #1, low
    run("new urgent fire").await; // #2
    run("new high smoke").await; // #3
    run("new low dust").await; // #4
    run("assign 3 me").await;
    run("wait 4").await;
    assert_eq!(text(&run("list").await), "Open tickets (4): #2 #3 #1 #4");
    assert_eq!(text(&run("list mine").await), "Your open tickets (1): #3");
    assert_eq!(
        text(&run("list <@U1|me>").await),
        "Open tickets of <@U1> (1): #3"
    );
    assert_eq!(
        text(&run("list unassigned").await),
        "Unassigned open tickets (3): #2 #1 #4"
    );
    assert_eq!(
        text(&run("list waiting").await),
        "Tickets waiting on the customer (1): #4"
    );
    assert_eq!(
        text(&run("list urgent").await),
        "Open urgent tickets (1): #2"
    );
    run("close 2").await;
    assert_eq!(text(&run("list").await), "Open tickets (3): #3 #1 #4");
    assert_eq!(text(&run("list all").await), "All tickets (4): #2 #3 #1 #4");
}

#[tokio::test]
async fn contacts_join_organizations_by_domain_and_histories_are_newest_first() {
    let t = TestDesks::new().await;
    let run = |s: &'static str| t.slack("T1", "U1", "C1", s);
    run("new first problem").await;
    run("new second problem").await;
    run("new third problem").await;
    let r = run("contact 1 <mailto:Jane@Acme.com|Jane@Acme.com> Jane Doe").await;
    assert!(
        text(&r).ends_with("linked #1 to Jane Doe <jane@acme.com>."),
        "{}",
        text(&r)
    );
    // Linking Jane's ticket to Acme teaches Acme the acme.com domain.
    let r = run("contact 1 Acme Oy").await;
    assert!(
        text(&r).ends_with("linked #1 to Jane Doe <jane@acme.com> (Acme Oy)."),
        "{}",
        text(&r)
    );
    // A colleague at acme.com joins Acme on sight.
    run("contact 2 bob@acme.com Bob").await;
    let bob = piraja::core::contact::Email::parse("bob@acme.com").unwrap();
    let bob = t
        .store
        .find_individual(DeskId(1), &bob)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.organization.map(|(_, n)| n), Some("Acme Oy".to_owned()));
    // Free-mail domains never become an organization's.
    run("contact 3 someone@gmail.com").await;
    run("contact 3 acme oy").await;
    let other = piraja::core::contact::Email::parse("other@gmail.com").unwrap();
    let other = t
        .store
        .upsert_individual(DeskId(1), &other, None, t.clock.now())
        .await
        .unwrap();
    assert_eq!(other.organization, None);

    t.clock.advance(chrono::Duration::minutes(1));
    run("close 2").await;
    assert_eq!(
        text(&run("history acme oy").await),
        "Acme Oy (3): #3 open, #2 closed, #1 open"
    );
    assert_eq!(
        text(&run("history jane@acme.com").await),
        "Jane Doe <jane@acme.com> (1): #1 open"
    );
    assert!(
        text(&run("history nobody@nowhere.org").await).starts_with("No contact has the address")
    );
}

#[tokio::test]
async fn odd_text_is_stored_verbatim() {
    let t = TestDesks::new().await;
    let nasty = "Robert'); DROP TABLE tickets;-- ✓ 日本語 \u{1F525} \"quoted\"";
    let r = t.slack("T1", "U1", "C1", &format!("new {nasty}")).await;
    assert!(matches!(r, Reply::Created { .. }));
    let stored = t.first_ticket().await;
    assert_eq!(stored.ticket.description, nasty);
    let r = t.slack("T1", "U1", "C1", "new a\u{7}bell").await;
    assert!(
        text(&r).contains("control character (U+0007)"),
        "{}",
        text(&r)
    );
}

#[tokio::test]
async fn changes_queue_card_posts_updates_and_assignment_messages() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "CSUPPORT", "channel").await;
    // Created in the notification channel itself: one post, not two.
    t.slack("T1", "U1", "CSUPPORT", "new in the same channel")
        .await;
    // Created elsewhere: a post there and one in the notification channel.
    t.slack("T1", "U1", "CRANDOM", "new somewhere else").await;
    t.slack("T1", "U1", "CRANDOM", "assign 2 <@U2|two>").await;
    let due = t.store.outbox_due(far_future(), 100).await.unwrap();
    // Only the head of each destination is due; deliver in order to see the rest.
    let surface = SurfaceRef::new(Platform::Slack, "T1");
    let heads: Vec<&Outgoing> = due.iter().map(|i| &i.message).collect();
    assert_eq!(
        heads,
        vec![
            &Outgoing::PostCard {
                surface: surface.clone(),
                channel: "CSUPPORT".into(),
                ticket: TicketId(1)
            },
            &Outgoing::PostCard {
                surface: surface.clone(),
                channel: "CRANDOM".into(),
                ticket: TicketId(2)
            },
            &Outgoing::DirectMessage {
                surface: surface.clone(),
                user: piraja::core::people::UserRef::slack("U2"),
                text: "<@U1> assigned #2 to you: somewhere else".into(),
                ticket: Some(TicketId(2)),
            },
        ]
    );
    let mut all = Vec::new();
    loop {
        let due = t.store.outbox_due(far_future(), 100).await.unwrap();
        if due.is_empty() {
            break;
        }
        let mut settled = Vec::new();
        for item in due {
            all.push(item.message.clone());
            settled.push(Settled {
                id: item.id,
                desk: item.desk,
                outcome: Outcome::Sent(None),
                joins: None,
            });
        }
        t.store
            .outbox_settle(&settled, t.clock.now())
            .await
            .unwrap();
    }
    assert_eq!(all.len(), 5, "{all:#?}");
    assert!(all.contains(&Outgoing::UpdateCards {
        surface: surface.clone(),
        ticket: TicketId(2),
        note: Some("<@U1> assigned #2 to <@U2>.".into()),
        answered: None,
    }));
    assert!(all.contains(&Outgoing::PostCard {
        surface,
        channel: "CSUPPORT".into(),
        ticket: TicketId(2)
    }));
}

#[tokio::test]
async fn export_writes_tickets_with_contact_and_timeline_as_json_and_csv() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "new first, with \"quotes\"")
        .await;
    t.slack("T1", "U1", "C1", "contact 1 jane@acme.com Jane")
        .await;
    t.slack("T1", "U1", "C1", "new second").await;
    let tickets = t.store.export(DeskId(1)).await.unwrap();
    let mut json = Vec::new();
    piraja::export::write_json(&mut json, &tickets).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(parsed[0]["ticket"]["no"], 1);
    assert_eq!(
        parsed[0]["ticket"]["contact"]["individual"][1],
        "Jane <jane@acme.com>"
    );
    assert_eq!(parsed[0]["timeline"].as_array().unwrap().len(), 2);
    assert_eq!(parsed[1]["ticket"]["description"], "second");

    let mut csv_out = Vec::new();
    piraja::export::write_csv(&mut csv_out, &tickets).unwrap();
    let mut reader = csv::Reader::from_reader(csv_out.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][1], "first, with \"quotes\"");
    assert_eq!(&rows[0][6], "Jane <jane@acme.com>");
    assert_eq!(rows[0][12].lines().count(), 2);
    // Another desk exports nothing of this one.
    assert!(t.store.export(DeskId(2)).await.unwrap().is_empty());
}

/// The code in a `desk link` reply.
fn link_code(reply: &Reply) -> String {
    let t = text(reply);
    let at = t.find("code is ").unwrap() + "code is ".len();
    t[at..at + 9].to_owned()
}

#[tokio::test]
async fn a_link_code_joins_a_discord_guild_to_a_slack_desk_once() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "new Printer on fire").await;
    // Only admins may link; the first member of the desk is its admin.
    let member = t.slack("T1", "U2", "C1", "desk link").await;
    assert!(
        text(&member).contains("Only desk admins"),
        "{}",
        text(&member)
    );
    let code = link_code(&t.slack("T1", "U1", "C1", "desk link").await);
    // A guild member without Manage Guild cannot join.
    let refused = t
        .discord("G1", "D9", false, &format!("desk join {code}"))
        .await;
    assert!(matches!(refused, Reply::Error(_)));
    let joined = t
        .discord("G1", "D1", true, &format!("desk join {code}"))
        .await;
    assert!(
        text(&joined).contains("shares its desk"),
        "{}",
        text(&joined)
    );
    // The same tickets from both sides.
    let shown = t.discord("G1", "D1", true, "show 1").await;
    assert!(text(&shown).contains("Printer on fire"), "{}", text(&shown));
    t.discord("G1", "D1", true, "new Second from Discord").await;
    let list = t.slack("T1", "U1", "C1", "list").await;
    assert!(text(&list).contains("#1 #2"), "{}", text(&list));
    // Used codes, wrong codes and expired codes are refused.
    let again = t
        .discord("G2", "D1", true, &format!("desk join {code}"))
        .await;
    assert!(text(&again).contains("wrong, used or expired"));
    let code = link_code(&t.slack("T1", "U1", "C1", "desk link").await);
    t.clock.advance(chrono::Duration::minutes(11));
    let late = t
        .discord("G2", "D1", true, &format!("desk join {code}"))
        .await;
    assert!(text(&late).contains("wrong, used or expired"));
}

#[tokio::test]
async fn joining_with_tickets_of_its_own_needs_a_merge_which_renumbers_and_keeps_history() {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "new One").await;
    t.slack("T1", "U1", "C1", "new Two").await;
    t.slack("T1", "U1", "C1", "contact 1 ann@acme.example Ann")
        .await;
    t.discord("G1", "D1", true, "new Guild ticket").await;
    t.discord("G1", "D1", true, "note 1 called the customer")
        .await;
    t.discord("G1", "D1", true, "contact 1 ann@acme.example")
        .await;
    let code = link_code(&t.slack("T1", "U1", "C1", "desk link").await);
    let refused = t
        .discord("G1", "D1", true, &format!("desk join {code}"))
        .await;
    assert!(
        text(&refused).contains("1 ticket(s) of its own"),
        "{}",
        text(&refused)
    );
    let merged = t
        .discord("G1", "D1", true, &format!("desk join {code} merge"))
        .await;
    assert!(
        text(&merged).contains("numbered from #3"),
        "{}",
        text(&merged)
    );
    let shown = t.slack("T1", "U1", "C1", "show 3").await;
    let shown = text(&shown);
    assert!(
        shown.contains("Guild ticket") && shown.contains("called the customer"),
        "{shown}"
    );
    // The shared contact is one individual with both tickets.
    let history = t
        .discord("G1", "D1", true, "history ann@acme.example")
        .await;
    assert!(text(&history).contains("(2)"), "{}", text(&history));
    // New tickets continue after the merged ones.
    let created = t.discord("G1", "D1", true, "new Four").await;
    assert!(text(&created).contains("#4"), "{}", text(&created));
}

/// A desk that workspace T1 shares with guild G1, with ticket #1 made on Slack.
async fn shared_desk() -> TestDesks {
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "new Shared printer").await;
    let code = link_code(&t.slack("T1", "U1", "C1", "desk link").await);
    t.discord("G1", "D1", true, &format!("desk join {code}"))
        .await;
    t
}

#[tokio::test]
async fn a_surface_leaving_a_shared_desk_takes_nothing_from_the_side_that_stays() {
    let t = shared_desk().await;
    // The guild's channel has a digest of the shared desk, and so has the workspace's.
    t.discord("G1", "D1", true, "digest schedule \"0 9 * * *\"")
        .await;
    t.slack("T1", "U1", "C1", "digest schedule \"0 9 * * *\"")
        .await;
    // Another workspace's desk; the guild leaves the shared desk for it, asking to merge.
    t.slack("T2", "V1", "C9", "new Other desk's ticket").await;
    let code = link_code(&t.slack("T2", "V1", "C9", "desk link").await);
    let joined = t
        .discord("G1", "D1", true, &format!("desk join {code} merge"))
        .await;
    assert!(
        text(&joined).contains("shares its desk"),
        "{}",
        text(&joined)
    );
    // The guild sees its new desk; the workspace it left keeps its desk whole.
    let there = text(&t.discord("G1", "D1", true, "show 1").await);
    assert!(there.contains("Other desk's ticket"), "{there}");
    let kept = text(&t.slack("T1", "U1", "C1", "show 1").await);
    assert!(kept.contains("Shared printer"), "{kept}");
    let theirs = text(&t.slack("T2", "V1", "C9", "list all").await);
    assert!(!theirs.contains("Shared printer"), "{theirs}");
    // The guild's digest went with it, to its new desk; the workspace's stayed.
    let schedules = t.store.digest_schedules().await.unwrap();
    let desk_of = |platform: Platform| {
        (schedules.iter())
            .find(|s| s.surface.platform == platform)
            .map(|s| s.desk)
    };
    let t2 = t
        .store
        .desk_of_surface(&SurfaceRef::new(Platform::Slack, "T2"))
        .await;
    assert_eq!(desk_of(Platform::Discord), t2.unwrap());
    assert_eq!(desk_of(Platform::Slack), Some(DeskId(1)));
    // And `digest off` in the guild's channel, asking its new desk, stops it.
    let off = text(&t.discord("G1", "D1", true, "digest off").await);
    assert!(!off.contains("no scheduled"), "{off}");
    let left = t.store.digest_schedules().await.unwrap();
    assert!(
        left.iter().all(|s| s.surface.platform == Platform::Slack),
        "{left:?}"
    );
}

#[tokio::test]
async fn a_flooding_user_is_told_when_to_try_again_while_others_go_on() {
    let mut t = TestDesks::new().await;
    t.desks = t.desks.clone().with_limits(piraja::config::Limits {
        per_user: 100,
        creates_per_user: 3,
        per_desk: 1000,
    });
    for i in 0..3 {
        let r = t.slack("T1", "U1", "C1", &format!("new Flood {i}")).await;
        assert!(matches!(r, Reply::Created { .. }), "{}", text(&r));
    }
    let limited = t.slack("T1", "U1", "C1", "new Flood 4").await;
    assert!(matches!(limited, Reply::Error(_)));
    assert!(
        text(&limited).contains("try again in"),
        "{}",
        text(&limited)
    );
    // Reading still works; another user still creates.
    assert!(matches!(
        t.slack("T1", "U1", "C1", "list").await,
        Reply::List(_)
    ));
    assert!(matches!(
        t.slack("T1", "U2", "C1", "new Other").await,
        Reply::Created { .. }
    ));
    let list = t.slack("T1", "U1", "C1", "list all").await;
    assert!(text(&list).contains("(4)"), "{}", text(&list));
}

#[tokio::test]
async fn a_request_delivered_twice_changes_the_ticket_once_even_after_a_newer_change() {
    use piraja::core::command::{Command, Who};
    use piraja::desk::Invocation;
    let t = TestDesks::new().await;
    t.slack("T1", "U1", "C1", "new the VPN is down").await;
    // A reaction's event, keyed by its id; Slack delivers it again later (a retry).
    let event = Invocation {
        key: Some("slack:event:Ev1".into()),
        keyed_changes: true,
        ..slack_inv("T1", "U1", "C1")
    };
    let me = || Command::Assign {
        no: TicketNo(1),
        who: Who::Me,
    };
    t.desks.execute(&event, me()).await;
    t.slack("T1", "U1", "C1", "assign 1 <@U3>").await;
    let again = t.desks.execute(&event, me()).await;
    assert!(matches!(again, Reply::Card { .. }), "{again:?}");
    let stored = t.first_ticket().await;
    assert_eq!(
        stored.ticket.assignee.unwrap().id,
        "U3",
        "the newer change stands"
    );
    // A command with the same key is not a replay: only requests a platform repeats are keyed.
    let command = Invocation {
        keyed_changes: false,
        ..event
    };
    t.desks.execute(&command, me()).await;
    let stored = t.first_ticket().await;
    assert_eq!(stored.ticket.assignee.unwrap().id, "U1");
}

#[tokio::test]
async fn a_note_on_a_shared_desk_names_on_discord_whom_it_mentions_on_slack() {
    let t = shared_desk().await;
    t.slack("T1", "U1", "C1", "start 1").await;
    // Every queued message (the card posts go first, each refresh waits behind its post).
    let notes: Vec<(Platform, String)> = (t.queued().await.into_iter())
        .filter_map(|m| match m {
            Outgoing::UpdateCards {
                surface,
                note: Some(note),
                ..
            } if note.contains("started") => Some((surface.platform, note)),
            _ => None,
        })
        .collect();
    let on = |p: Platform| {
        (notes.iter())
            .find(|(q, _)| *q == p)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    assert_eq!(on(Platform::Slack), "<@U1> started #1.");
    assert_eq!(on(Platform::Discord), "name-U1 started #1.");
}
