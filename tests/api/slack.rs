//! The Slack app through the real router, signed as Slack signs, with wiremock standing in for
//! the Web API and for `response_url`, using the platform's own fixtures.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use piraja::core::ticket::{DeskId, TicketNo};
use piraja::http::{App, AppState};
use piraja::outbox::Worker;
use piraja::slack::{SlackApp, render, verify};
use piraja::store::{DeskStore, TicketStore};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{ManualClock, TestDesks};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct SlackTest {
    t: TestDesks,
    mock: MockServer,
    state: AppState,
    worker: Worker,
}

impl SlackTest {
    /// Single-workspace mode: `SLACK_BOT_TOKEN` is set.
    async fn new() -> SlackTest {
        SlackTest::with(false).await
    }

    /// With `oauth`, workspaces install through OAuth v2 and no bot token is configured.
    async fn with(oauth: bool) -> SlackTest {
        let t = TestDesks::new().await;
        let mock = MockServer::start().await;
        let desks = t.desks.clone();
        let slack_settings = piraja::config::SlackSettings {
            signing_secret: SecretString::from(SECRET),
            bot_token: (!oauth).then(|| SecretString::from("xoxb-test-token")),
            client_id: oauth.then(|| "12345.67890".to_owned()),
            client_secret: oauth.then(|| SecretString::from("client-secret-value")),
            api_url: mock.uri(),
        };
        let sealer = oauth.then(|| piraja::secret::Sealer::new(&[42; 32]));
        let slack = Arc::new(SlackApp::new(
            &slack_settings,
            sealer,
            t.desks.store.clone(),
        ));
        let mut settings =
            piraja::config::Settings::load_from(std::path::Path::new("/nonexistent.toml")).unwrap();
        settings.database_url = "sqlite::memory:".into();
        settings.public_url = "https://desk.example.com".into();
        settings.slack = Some(slack_settings);
        let worker = Worker::new(
            t.desks.store.clone(),
            t.desks.clock.clone(),
            t.desks.outbox_wake.clone(),
        )
        .with_sender(
            piraja::core::people::Platform::Slack,
            Arc::new(slack.sender()),
        );
        let state = AppState::from(App {
            desks,
            settings: Arc::new(settings),
            metrics: piraja::http::metrics_handle(),
            slack: Some(slack),
            discord: None,
            mail: None,
        });
        SlackTest {
            t,
            mock,
            state,
            worker,
        }
    }

    /// A GET through the router, with the given cookie; the status, headers and body.
    async fn get(
        &self,
        uri: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut req = Request::get(uri);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let response = piraja::http::router(self.state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn clock(&self) -> &ManualClock {
        &self.t.clock
    }

    async fn post_signed(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let ts = self.clock().now().timestamp();
        let sig = verify::sign(SECRET.as_bytes(), ts, &body);
        self.post(path, content_type, body, Some((ts.to_string(), sig)))
            .await
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        signed: Option<(String, String)>,
    ) -> (StatusCode, String) {
        let mut req = Request::post(path).header("content-type", content_type);
        if let Some((ts, sig)) = signed {
            req = req
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig);
        }
        let response = piraja::http::router(self.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A slash command from the bolt fixture with our text and user, in its channel.
    async fn command(&self, user: &str, text: &str) -> (StatusCode, String) {
        self.command_in(user, None, text).await
    }

    /// A slash command from the bolt fixture with our text, user and (if given) channel.
    async fn command_in(
        &self,
        user: &str,
        channel: Option<&str>,
        text: &str,
    ) -> (StatusCode, String) {
        let mut form: Vec<(String, String)> =
            serde_urlencoded::from_str(&fixture("slack-slash-command-bolt.txt")).unwrap();
        for (k, v) in form.iter_mut() {
            match k.as_str() {
                "text" => *v = text.to_owned(),
                "user_id" => *v = user.to_owned(),
                "channel_id" => *v = channel.map_or(v.clone(), str::to_owned),
                "response_url" => *v = format!("{}/respond", self.mock.uri()),
                "trigger_id" => *v = format!("trigger-{text}-{user}"),
                _ => {}
            }
        }
        let body = serde_urlencoded::to_string(&form).unwrap();
        self.post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await
    }

    async fn interaction(&self, payload: &Value) -> (StatusCode, String) {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await
    }

    async fn event(&self, envelope: &Value) -> (StatusCode, String) {
        self.post_signed(
            "/slack/events",
            "application/json",
            envelope.to_string().into_bytes(),
        )
        .await
    }

    async fn mock_ok(&self, api_method: &str, response: Value) {
        Mock::given(method("POST"))
            .and(path(format!("/{api_method}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(response))
            .mount(&self.mock)
            .await;
    }

    /// Slack answers `views.open` as its docs show.
    async fn mock_views_open(&self) {
        let opened = serde_json::from_str(&fixture("slack-web-views.open-ok.json")).unwrap();
        self.mock_ok("views.open", opened).await;
    }

    /// The `views.open` calls made, once the first has come: a modal opens after the
    /// acknowledgement.
    async fn opened_views(&self) -> Vec<Value> {
        for _ in 0..50 {
            if !self.calls("/views.open").await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.calls("/views.open").await
    }

    async fn deliver_all(&self) {
        self.t.deliver_all(&self.worker).await;
    }

    async fn calls(&self, api_path: &str) -> Vec<Value> {
        self.mock
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == api_path)
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }
}

fn posted(channel: &str, ts: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(&fixture("slack-web-chat.postMessage-ok.json")).unwrap();
    v["channel"] = json!(channel);
    v["ts"] = json!(ts);
    v
}

#[tokio::test]
async fn slacks_example_request_is_refused_as_stale_today_and_bad_signatures_get_401() {
    let s = SlackTest::new().await;
    let vector: Value = serde_json::from_str(&fixture("slack-signature-test-vector.json")).unwrap();
    let body = fixture("slack-signature-test-vector-body.txt").into_bytes();
    let signed = Some((
        vector["x_slack_request_timestamp"]
            .as_str()
            .unwrap()
            .to_owned(),
        vector["x_slack_signature"].as_str().unwrap().to_owned(),
    ));
    let (status, _) = s
        .post(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            signed,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s
        .post(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.clone(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let ts = s.clock().now().timestamp().to_string();
    let (status, _) = s
        .post(
            "/slack/events",
            "application/json",
            b"{}".to_vec(),
            Some((ts, "v0=00".into())),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing was created by any of them.
    assert!(
        s.t.store
            .desk_of_surface(&piraja::core::people::SurfaceRef::new(
                piraja::core::people::Platform::Slack,
                "T1DC2JH3J"
            ))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_body_slack_would_not_send_gets_400_and_an_oversized_one_413() {
    let s = SlackTest::new().await;
    let (status, body) = s
        .post_signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            b"payload=not-json".to_vec(),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "the payload is not JSON of an interaction\n"
        )
    );
    let (status, _) = s
        .post_signed("/slack/events", "application/json", b"[1,2".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Well-formed JSON or forms that are still not what Slack sends.
    for (path, kind, body) in [
        ("/slack/events", "application/json", &b"{}"[..]),
        (
            "/slack/events",
            "application/json",
            br#"{"type":"url_verification"}"#,
        ),
        (
            "/slack/events",
            "application/json",
            br#"{"type":"event_callback"}"#,
        ),
        (
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            b"payload=%7B%7D",
        ),
        (
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            b"nothing=here",
        ),
        (
            "/slack/commands",
            "application/x-www-form-urlencoded",
            b"text=new+x",
        ),
    ] {
        let (status, body) = s.post_signed(path, kind, body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}");
    }
    // An envelope Slack sends without an event is acknowledged.
    let (status, _) = s
        .post_signed(
            "/slack/events",
            "application/json",
            br#"{"type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820}"#
                .to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            vec![b'a'; 1024 * 1024 + 10],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_slash_command_creates_a_ticket_whose_card_is_posted_then_edited_in_place_by_a_button() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1700000000.000100"))
        .await;
    s.mock_ok(
        "chat.update",
        serde_json::from_str(&fixture("slack-web-chat.update-ok.json")).unwrap(),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/respond"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&s.mock)
        .await;

    let (status, body) = s
        .command("W111", "new high VPN is down for &lt;everyone&gt;")
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["response_type"], "ephemeral");
    // `text` is escaped as Slack asks (it shows as "<everyone>"), like the blocks.
    assert_eq!(
        reply["text"],
        "Created #1 · high · open · VPN is down for &lt;everyone&gt;"
    );

    s.deliver_all().await;
    let posts = s.calls("/chat.postMessage").await;
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0]["channel"], "C111");
    assert_eq!(
        posts[0]["text"],
        "#1 · high · open · VPN is down for &lt;everyone&gt;"
    );
    assert_eq!(
        posts[0]["blocks"][0]["text"]["text"],
        "*#1* VPN is down for &lt;everyone&gt;"
    );
    assert!(render::limit_violations(posts[0]["blocks"].as_array().unwrap()).is_empty());

    // "Start" on the posted card: the click answers at once; the card is edited in place
    // with chat.update (once: not through response_url as well), and the thread hears what
    // happened.
    let mut click: Value = serde_json::from_str(&fixture("slack-block-actions.json")).unwrap();
    click["actions"][0]["action_id"] = json!("start");
    click["actions"][0]["value"] = json!("1");
    click["container"]["message_ts"] = json!("1700000000.000100");
    // Without `is_ephemeral` the message is known by what was stored: the posted card, edited
    // by the outbox alone (no response_url answer: the one counted below is the next click's).
    click["container"]
        .as_object_mut()
        .unwrap()
        .remove("is_ephemeral");
    click["response_url"] = json!(format!("{}/respond", s.mock.uri()));
    let (status, _) = s.interaction(&click).await;
    assert_eq!(status, StatusCode::OK);
    let t = s.t.first_ticket().await;
    assert_eq!(t.ticket.status, piraja::core::ticket::Status::InProgress);
    s.deliver_all().await;
    let updates = s.calls("/chat.update").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["ts"], "1700000000.000100");
    assert_eq!(
        updates[0]["text"],
        "#1 · high · in progress · VPN is down for &lt;everyone&gt;"
    );
    let thread = s.calls("/chat.postMessage").await;
    assert_eq!(thread.last().unwrap()["thread_ts"], "1700000000.000100");
    assert_eq!(thread.last().unwrap()["text"], "<@W111> started #1.");

    // "Complete" on an ephemeral reply (`/ticket show`'s card): only response_url can replace
    // it, and it does; the posted card is edited as well.
    click["actions"][0]["action_id"] = json!("complete");
    click["container"]["message_ts"] = json!("1700000000.000200");
    click["container"]["is_ephemeral"] = json!(true);
    s.interaction(&click).await;
    let mut responded = Vec::new();
    for _ in 0..50 {
        responded = s.calls("/respond").await;
        if !responded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(responded.len(), 1, "{responded:#?}");
    assert_eq!(responded[0]["replace_original"], true);
    assert_eq!(
        responded[0]["text"],
        "#1 · high · completed · VPN is down for &lt;everyone&gt;"
    );
    s.deliver_all().await;
    let updates = s.calls("/chat.update").await;
    // Completing also settles the SLA, whose refresh edits the card once more.
    assert!(updates.len() > 1, "{updates:#?}");
    assert!(updates.iter().all(|u| u["ts"] == "1700000000.000100"));
    assert_eq!(
        updates.last().unwrap()["text"],
        "#1 · high · completed · VPN is down for &lt;everyone&gt;"
    );

    // The priority select and the overflow's Close work the same way.
    click["actions"][0] = json!({"action_id": "priority", "block_id": "actions:1", "type": "static_select", "selected_option": {"value": "urgent"}});
    s.interaction(&click).await;
    click["actions"][0] =
        json!({"action_id": "menu", "type": "overflow", "selected_option": {"value": "close:1"}});
    s.interaction(&click).await;
    let t = s.t.first_ticket().await;
    assert_eq!(
        (t.ticket.priority.as_str(), t.ticket.status.as_str()),
        ("urgent", "closed")
    );
    // Both changes were queued before the outbox ran: the card is edited once, to its latest
    // state, and the thread hears both, in order, in one message.
    let (edits, notes) = (updates.len(), s.calls("/chat.postMessage").await.len());
    s.deliver_all().await;
    let updates = s.calls("/chat.update").await;
    assert_eq!(updates.len(), edits + 1, "{updates:#?}");
    assert_eq!(
        updates.last().unwrap()["text"],
        "#1 · urgent · closed · VPN is down for &lt;everyone&gt;"
    );
    let thread = s.calls("/chat.postMessage").await;
    assert_eq!(thread.len(), notes + 1, "{thread:#?}");
    let said = thread.last().unwrap()["text"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert!(
        lines[0].contains("urgent") && lines[1].contains("closed"),
        "{said}"
    );
}

#[tokio::test]
async fn new_without_a_description_opens_the_modal_and_its_submission_creates_the_ticket() {
    let s = SlackTest::new().await;
    s.mock_views_open().await;
    let (status, body) = s.command("W111", "new urgent").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let opened = s.opened_views().await;
    assert_eq!(opened[0]["trigger_id"], "trigger-new urgent-W111");
    assert_eq!(opened[0]["view"]["callback_id"], "new_ticket");
    assert_eq!(
        opened[0]["view"]["blocks"][1]["element"]["initial_option"]["value"],
        "urgent"
    );

    let mut submit: Value = serde_json::from_str(&fixture("slack-view-submission.json")).unwrap();
    submit["view"]["callback_id"] = json!("new_ticket");
    submit["view"]["private_metadata"] = json!("C111");
    submit["view"]["state"]["values"] = json!({
        "description": {"value": {"type": "plain_text_input", "value": "  "}},
        "priority": {"value": {"type": "static_select", "selected_option": {"value": "urgent"}}},
        "contact": {"value": {"type": "email_text_input", "value": "jane@acme.com"}},
        "assignee": {"value": {"type": "users_select", "selected_user": "U777"}}
    });
    let (status, body) = s.interaction(&submit).await;
    assert_eq!(status, StatusCode::OK);
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors["response_action"], "errors");
    assert_eq!(
        errors["errors"]["description"],
        "The description is not valid: the text is empty."
    );

    submit["view"]["state"]["values"]["description"]["value"]["value"] = json!("Printer on fire");
    let (status, body) = s.interaction(&submit).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    // A second submission of the same view (a double click) creates nothing more.
    s.interaction(&submit).await;
    let (all, total) =
        s.t.store
            .list(DeskId(1), &Default::default(), 10)
            .await
            .unwrap();
    assert_eq!(total, 1);
    let t = &all[0].ticket;
    assert_eq!(
        (t.description.as_str(), t.priority.as_str()),
        ("Printer on fire", "urgent")
    );
    assert_eq!(
        t.assignee.as_ref().map(|a| a.to_string()).as_deref(),
        Some("slack:U777")
    );
    assert_eq!(t.contact.as_ref().unwrap().label(), "jane@acme.com");
}

#[tokio::test]
async fn the_new_ticket_form_opens_whatever_the_database_is_doing() {
    let s = SlackTest::new().await;
    s.mock_views_open().await;
    // Nothing about the desk can be read: the form still opens, within the trigger's life.
    s.t.rename_table("desks", "desks_away").await;
    let (status, body) = s.command("W111", "new").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let opened = s.opened_views().await;
    assert_eq!(opened[0]["view"]["callback_id"], "new_ticket");
}

#[tokio::test]
async fn a_member_cannot_set_the_forms_contact_or_assignee_and_then_nothing_is_created() {
    let s = SlackTest::new().await;
    s.command("W111", "role <@W333> agent").await;
    let mut submit: Value = serde_json::from_str(&fixture("slack-view-submission.json")).unwrap();
    submit["user"]["id"] = json!("W222");
    submit["view"]["callback_id"] = json!("new_ticket");
    submit["view"]["private_metadata"] = json!("C111");
    submit["view"]["state"]["values"] = json!({
        "description": {"value": {"type": "plain_text_input", "value": "VPN is down"}},
        "contact": {"value": {"type": "email_text_input", "value": "jane@acme.com"}},
    });
    let (_, body) = s.interaction(&submit).await;
    let errors: Value = serde_json::from_str(&body).unwrap();
    let said = errors["errors"]["contact"].as_str().unwrap();
    assert!(
        said.starts_with("Only agents can use /ticket contact"),
        "{said}"
    );
    let listed = s.t.store.list(DeskId(1), &Default::default(), 10).await;
    assert_eq!(listed.unwrap().1, 0, "nothing was created");
    // Without the contact, the member's ticket is made.
    submit["view"]["state"]["values"]["contact"] = json!({});
    let (_, body) = s.interaction(&submit).await;
    assert_eq!(body, "");
    assert!(s.t.first_ticket().await.ticket.contact.is_none());
}

#[tokio::test]
async fn a_note_form_keeps_its_text_as_typed_and_a_second_submit_notes_once() {
    let s = SlackTest::new().await;
    s.command("W111", "new the note form's ticket").await;
    let mut submit: Value = serde_json::from_str(&fixture("slack-view-submission.json")).unwrap();
    submit["view"]["callback_id"] = json!("add_note");
    submit["view"]["private_metadata"] = json!("1|C111");
    let typed = "\"Refund approved\" for AT&amp;T <n>";
    submit["view"]["state"]["values"] = json!({
        "text": {"value": {"type": "plain_text_input", "value": typed}},
    });
    for _ in 0..2 {
        let (status, body) = s.interaction(&submit).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    }
    let (_, events) =
        s.t.store
            .ticket_with_timeline(DeskId(1), TicketNo(1))
            .await
            .unwrap()
            .unwrap();
    let notes: Vec<_> = (events.iter())
        .filter(|e| e.kind.as_str() == "note")
        .map(|e| e.note.clone().unwrap_or_default())
        .collect();
    assert_eq!(notes, [typed]);
}

#[tokio::test]
async fn reactions_on_a_card_work_the_ticket_and_a_retried_event_counts_once() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1599529504.000400"))
        .await;
    s.mock_ok(
        "chat.update",
        serde_json::from_str(&fixture("slack-web-chat.update-ok.json")).unwrap(),
    )
    .await;
    s.command("W111", "new the card to react on").await;
    s.deliver_all().await;

    let verification: Value =
        serde_json::from_str(&fixture("slack-url-verification.json")).unwrap();
    let (_, body) = s.event(&verification).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["challenge"],
        verification["challenge"]
    );

    let mut reaction: Value =
        serde_json::from_str(&fixture("slack-event-reaction-added.json")).unwrap();
    reaction["event"]["reaction"] = json!("eyes");
    let (status, _) = s.event(&reaction).await;
    assert_eq!(status, StatusCode::OK);
    let t = s.t.first_ticket().await;
    assert_eq!(
        t.ticket.assignee.map(|a| a.to_string()).as_deref(),
        Some("slack:W111")
    );

    // Slack retries the same event: it is not applied twice.
    reaction["event"]["reaction"] = json!("white_check_mark");
    let (status, _) = s.event(&reaction).await;
    assert_eq!(status, StatusCode::OK);
    let t = s.t.first_ticket().await;
    assert_eq!(t.ticket.status.as_str(), "open");
    reaction["event_id"] = json!("Ev222");
    s.event(&reaction).await;
    reaction["event_id"] = json!("Ev333");
    reaction["event"]["reaction"] = json!("rotating_light");
    s.event(&reaction).await;
    let t = s.t.first_ticket().await;
    assert_eq!(
        (t.ticket.status.as_str(), t.ticket.priority.as_str()),
        ("completed", "urgent")
    );
    // A reaction its reactor may not make (a member, once the desk has an agent) is refused
    // privately, by direct message.
    s.command("W111", "role <@W333> agent").await;
    reaction["event_id"] = json!("Ev444");
    reaction["event"]["user"] = json!("W222");
    reaction["event"]["reaction"] = json!("eyes");
    s.event(&reaction).await;
    s.deliver_all().await;
    let told: Vec<Value> = (s.calls("/chat.postMessage").await.into_iter())
        .filter(|c| c["channel"] == "W222")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    let text = told[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Your :eyes: on #1 did nothing: Only agents"),
        "{text}"
    );
    assert_eq!(s.t.first_ticket().await.ticket.assignee.unwrap().id, "W111");
}

#[tokio::test]
async fn an_event_that_fails_in_the_store_is_retried_by_slack_and_then_takes_effect() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1599529504.000400"))
        .await;
    s.command("W111", "new the card to react on").await;
    s.deliver_all().await;
    let mut reaction: Value =
        serde_json::from_str(&fixture("slack-event-reaction-added.json")).unwrap();
    reaction["event"]["reaction"] = json!("eyes");

    // The store fails while the event is handled: the cards cannot be read.
    s.t.rename_table("card_messages", "card_messages_away")
        .await;
    let (status, _) = s.event(&reaction).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(s.t.first_ticket().await.ticket.assignee.is_none());

    // Slack's retry of the same event, once the store is back, takes effect…
    s.t.rename_table("card_messages_away", "card_messages")
        .await;
    let (status, _) = s.event(&reaction).await;
    assert_eq!(status, StatusCode::OK);
    let t = s.t.first_ticket().await;
    assert_eq!(t.ticket.assignee.unwrap().id, "W111");
    // …and is then remembered: a further delivery of it does nothing.
    reaction["event"]["reaction"] = json!("white_check_mark");
    let (status, _) = s.event(&reaction).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.t.first_ticket().await.ticket.status.as_str(), "open");
}

#[tokio::test]
async fn a_deleted_card_is_skipped_and_the_change_is_not_dead_lettered() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    s.mock_ok(
        "chat.update",
        json!({"ok": false, "error": "message_not_found"}),
    )
    .await;
    s.command("W111", "new a card someone will delete").await;
    s.deliver_all().await;
    s.command("W111", "start 1").await;
    s.deliver_all().await;
    assert_eq!(s.calls("/chat.update").await.len(), 1);
    let stats = piraja::store::OutboxStore::outbox_stats(s.t.store.as_ref(), s.clock().now())
        .await
        .unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
    // No note was posted under the deleted message.
    let notes = (s.calls("/chat.postMessage").await.into_iter())
        .filter(|c| c.get("thread_ts").is_some())
        .count();
    assert_eq!(notes, 0);
}

#[tokio::test]
async fn a_refresh_retried_after_one_copy_failed_says_its_note_once_in_each_thread() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    s.mock_ok("chat.update", json!({"ok": true})).await;
    s.command_in("W111", Some("CNOTIFY"), "channel").await;
    s.command("W111", "new a card in two channels").await;
    s.deliver_all().await;
    // Notes in the cards' threads: the first is said, the second fails for now (Slack's 500),
    // then every one is said.
    let thread_note = || {
        Mock::given(method("POST"))
            .and(path("/chat.postMessage"))
            .and(wiremock::matchers::body_partial_json(
                json!({"thread_ts": "1.1"}),
            ))
    };
    thread_note()
        .respond_with(ResponseTemplate::new(200).set_body_json(posted("C111", "2.1")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.mock)
        .await;
    thread_note()
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&s.mock)
        .await;
    thread_note()
        .respond_with(ResponseTemplate::new(200).set_body_json(posted("C111", "2.2")))
        .with_priority(3)
        .mount(&s.mock)
        .await;
    s.command("W111", "note 1 called the customer back").await;
    s.deliver_all().await;
    s.clock().advance(chrono::Duration::hours(1));
    s.deliver_all().await;
    let noted: Vec<String> = (s.calls("/chat.postMessage").await.into_iter())
        .filter(|c| c["thread_ts"] == "1.1")
        .map(|c| c["channel"].as_str().unwrap_or_default().to_owned())
        .collect();
    // Three tries: the first copy's note, the second's that failed, and the second's again.
    // The retry skipped the copy it had finished (before, it said that note twice).
    let tries = |channel: &str| noted.iter().filter(|c| *c == channel).count();
    let mut per_channel = [tries("C111"), tries("CNOTIFY")];
    per_channel.sort();
    assert_eq!(per_channel, [1, 2], "{noted:?}");
    assert_eq!(
        piraja::store::OutboxStore::outbox_stats(&*s.t.store, s.clock().now())
            .await
            .unwrap()
            .pending,
        0
    );
}

#[tokio::test]
async fn a_card_copy_in_an_archived_channel_is_skipped_and_the_other_copy_still_changes() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    // The notification channel gets a copy of every card; then it is archived.
    s.command_in("W111", Some("CNOTIFY"), "channel").await;
    s.command("W111", "new a card in two channels").await;
    s.deliver_all().await;
    Mock::given(method("POST"))
        .and(path("/chat.update"))
        .and(wiremock::matchers::body_partial_json(
            json!({"channel": "CNOTIFY"}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "is_archived"})),
        )
        .with_priority(1)
        .mount(&s.mock)
        .await;
    s.mock_ok("chat.update", json!({"ok": true})).await;
    s.command("W111", "start 1").await;
    s.deliver_all().await;
    let updated: Vec<String> = (s.calls("/chat.update").await.into_iter())
        .map(|c| c["channel"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(updated.len(), 2, "{updated:?}");
    assert!(updated.contains(&"CNOTIFY".to_owned()), "{updated:?}");
    // The change went out to the other copy and nothing is dead or waiting.
    let stats = piraja::store::OutboxStore::outbox_stats(s.t.store.as_ref(), s.clock().now())
        .await
        .unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn changes_within_a_second_refresh_the_card_at_once_then_once_more_with_their_notes_joined() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    s.mock_ok("chat.update", json!({"ok": true})).await;
    s.command("W111", "new Printer on fire").await;
    s.deliver_all().await;
    // Three changes in the same second: the first edits the card at once.
    s.command("W111", "start 1").await;
    assert_eq!(s.worker.tick().await, 1);
    assert_eq!(s.calls("/chat.update").await.len(), 1);
    s.command("W111", "priority 1 urgent").await;
    s.command("W111", "note 1 called the vendor").await;
    assert_eq!(
        s.worker.tick().await,
        0,
        "the others wait for the second to end"
    );
    // Then one edit shows the card as it is now, and one message in its thread says both.
    s.clock().advance(chrono::Duration::seconds(1));
    assert_eq!(s.worker.tick().await, 1);
    assert_eq!(s.worker.tick().await, 0);
    let updates = s.calls("/chat.update").await;
    assert_eq!(updates.len(), 2);
    assert!(
        updates[1]["text"].as_str().unwrap().contains("urgent"),
        "{:#?}",
        updates[1]
    );
    let notes: Vec<String> = (s.calls("/chat.postMessage").await.into_iter())
        .filter(|c| c["thread_ts"] == "1.1")
        .map(|c| c["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(
        notes[1].contains("urgent") && notes[1].contains("called the vendor"),
        "{notes:#?}"
    );
    let stats = piraja::store::OutboxStore::outbox_stats(s.t.store.as_ref(), s.clock().now())
        .await
        .unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn a_retry_after_holds_back_the_whole_workspace_without_counting_attempts() {
    let s = SlackTest::new().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.mock)
        .await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    s.command("W111", "new first").await;
    assert_eq!(s.worker.tick().await, 1);
    assert_eq!(s.calls("/chat.postMessage").await.len(), 1, "refused");
    // Another ticket's card for the same workspace waits with it: no call is made.
    s.command("W111", "new second").await;
    assert_eq!(s.worker.tick().await, 1);
    assert_eq!(s.calls("/chat.postMessage").await.len(), 1, "held");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.clock().advance(chrono::Duration::seconds(2));
    s.deliver_all().await;
    assert_eq!(s.calls("/chat.postMessage").await.len(), 3);
    let stats = piraja::store::OutboxStore::outbox_stats(s.t.store.as_ref(), s.clock().now())
        .await
        .unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 0));
}

#[tokio::test]
async fn revoked_user_tokens_leave_the_bot_posting() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    let revoked = json!({"type": "event_callback", "team_id": "T111", "event_id": "EvR",
        "event": {"type": "tokens_revoked", "tokens": {"oauth": ["W111"], "bot": []}}});
    s.event(&revoked).await;
    s.command("W111", "new after a user token went").await;
    s.deliver_all().await;
    assert_eq!(s.calls("/chat.postMessage").await.len(), 1);
}

#[tokio::test]
async fn an_uninstall_stops_posting_to_the_workspace() {
    let s = SlackTest::new().await;
    s.mock_ok("chat.postMessage", posted("C111", "1.1")).await;
    s.command("W111", "new before").await;
    let uninstalled = json!({"type": "event_callback", "team_id": "T111", "event_id": "EvU", "event": {"type": "app_uninstalled"}});
    s.event(&uninstalled).await;
    s.deliver_all().await;
    assert!(s.calls("/chat.postMessage").await.is_empty());
    let stats = piraja::store::OutboxStore::outbox_stats(s.t.store.as_ref(), s.clock().now())
        .await
        .unwrap();
    assert_eq!(stats.dead, 1);
}

#[tokio::test]
async fn every_rendered_list_card_and_detail_respects_slacks_limits() {
    let t = TestDesks::new().await;
    for i in 0..500 {
        t.slack(
            "T1",
            "U1",
            "C1",
            &format!("new ticket number {i} {}", "x".repeat(i % 90)),
        )
        .await;
    }
    let long = format!("new {}", "é".repeat(4000));
    t.slack("T1", "U1", "C1", &long).await;
    for i in 0..60 {
        t.slack(
            "T1",
            "U1",
            "C1",
            &format!("note 501 {} {}", i, "n".repeat(3900)),
        )
        .await;
    }
    for text in [
        "list all",
        "list",
        "show 501",
        "show 1",
        "history nobody@x.org",
        "help",
    ] {
        let reply = t.slack("T1", "U1", "C1", text).await;
        let m = render::message(&reply);
        assert!(
            render::limit_violations(&m.blocks).is_empty(),
            "{text}: {:?}",
            render::limit_violations(&m.blocks)
        );
        assert!(m.text.contains('#') || !matches!(reply, piraja::desk::Reply::Detail(_)));
    }
    let reply = t.slack("T1", "U1", "C1", "list all").await;
    let m = render::message(&reply);
    let last = serde_json::to_string(m.blocks.last().unwrap()).unwrap();
    assert!(last.contains("of 501 shown"), "{last}");
}

/// Starts an install; the state from the authorize redirect and the cookie that binds it.
async fn start_install(s: &SlackTest) -> (String, String) {
    let (status, headers, _) = s.get("/slack/install", None).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = url::Url::parse(headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/oauth/v2/authorize");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "12345.67890");
    assert_eq!(
        q["redirect_uri"],
        "https://desk.example.com/slack/oauth/callback"
    );
    assert!(q["scope"].contains("chat:write") && q["scope"].contains("users:read.email"));
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Max-Age=600"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    (q["state"].clone(), cookie)
}

#[tokio::test]
async fn an_oauth_install_stores_the_sealed_token_makes_the_installer_admin_and_posts_with_it() {
    let s = SlackTest::with(true).await;
    s.mock_ok(
        "oauth.v2.access",
        serde_json::from_str(&fixture("slack-web-oauth.v2.access-ok.json")).unwrap(),
    )
    .await;
    let (state, cookie) = start_install(&s).await;
    let uri = format!("/slack/oauth/callback?code=the-code&state={state}");
    let (status, _, page) = s.get(&uri, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Slack Softball Team"), "{page}");

    // The code was exchanged with our redirect URI and client credentials.
    let exchange = s.mock.received_requests().await.unwrap();
    let form = String::from_utf8_lossy(&exchange[0].body).into_owned();
    assert!(form.contains("code=the-code") && form.contains("client_id=12345.67890"));

    // The token is stored sealed, never in the clear.
    use piraja::store::{DeskStore as _, InstallStore as _};
    let install = s.t.store.slack_install("T9TK3CUKW").await.unwrap().unwrap();
    let plain = b"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
    assert!(!install.bot_token.windows(plain.len()).any(|w| w == plain));
    let db = std::fs::read(s.t._dir.path().join("test.db")).unwrap_or_default();
    let wal = std::fs::read(s.t._dir.path().join("test.db-wal")).unwrap_or_default();
    assert!(!db.windows(plain.len()).any(|w| w == plain));
    assert!(!wal.windows(plain.len()).any(|w| w == plain));

    // The installer is the desk's admin: they may set the notification channel.
    let desk =
        s.t.store
            .desk_of_surface(&piraja::core::people::SurfaceRef::new(
                piraja::core::people::Platform::Slack,
                "T9TK3CUKW",
            ))
            .await
            .unwrap()
            .unwrap();
    let membership =
        s.t.store
            .see_member(
                desk,
                &piraja::core::people::UserRef::slack("U1234"),
                None,
                true,
                s.clock().now(),
            )
            .await
            .unwrap();
    assert_eq!(membership.role, piraja::core::people::Role::Admin);

    // Posting in that workspace uses its own token.
    s.mock_ok(
        "chat.postMessage",
        json!({"ok": true, "channel": "C1", "ts": "1700000000.000100"}),
    )
    .await;
    let mut form: Vec<(String, String)> =
        serde_urlencoded::from_str(&fixture("slack-slash-command-bolt.txt")).unwrap();
    for (k, v) in form.iter_mut() {
        match k.as_str() {
            "team_id" => *v = "T9TK3CUKW".into(),
            "user_id" => *v = "U1234".into(),
            "text" => *v = "new The printer is on fire".into(),
            _ => {}
        }
    }
    let body = serde_urlencoded::to_string(&form).unwrap();
    let (status, _) = s
        .post_signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.deliver_all().await;
    let posts: Vec<_> = s
        .mock
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/chat.postMessage")
        .collect();
    assert!(!posts.is_empty());
    assert_eq!(
        posts[0].headers["authorization"],
        "Bearer xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
    );
}

#[tokio::test]
async fn a_bad_missing_or_replayed_state_installs_nothing() {
    let s = SlackTest::with(true).await;
    s.mock_ok(
        "oauth.v2.access",
        serde_json::from_str(&fixture("slack-web-oauth.v2.access-ok.json")).unwrap(),
    )
    .await;
    let (state, cookie) = start_install(&s).await;
    let (other_state, other_cookie) = start_install(&s).await;
    let good = format!("/slack/oauth/callback?code=c&state={state}");
    // No state, no cookie, another browser's cookie, a forged cookie.
    for (uri, cookie) in [
        (
            "/slack/oauth/callback?code=c".to_owned(),
            Some(cookie.as_str()),
        ),
        (good.clone(), None),
        (good.clone(), Some(other_cookie.as_str())),
        (
            good.clone(),
            Some("piraja_slack_state=abc.99999999999999.AAAA"),
        ),
    ] {
        let (status, _, page) = s.get(&uri, cookie).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {cookie:?}: {page}");
    }
    // The good one once; its replay is refused.
    let (status, _, _) = s.get(&good, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, page) = s.get(&good, Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");
    // A state that expired is refused too.
    s.clock().advance(chrono::Duration::minutes(11));
    let late = format!("/slack/oauth/callback?code=c&state={other_state}");
    let (status, _, _) = s.get(&late, Some(&other_cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let exchanges = s
        .mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/oauth.v2.access")
        .count();
    assert_eq!(exchanges, 1);
}

#[tokio::test]
async fn a_refused_code_exchange_or_a_cancelled_install_installs_nothing() {
    let s = SlackTest::with(true).await;
    s.mock_ok(
        "oauth.v2.access",
        serde_json::from_str(&fixture("slack-web-oauth.v2.access-error.json")).unwrap(),
    )
    .await;
    let (state, cookie) = start_install(&s).await;
    let (status, _, page) = s
        .get(
            &format!("/slack/oauth/callback?code=c&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{page}");
    let (state, cookie) = start_install(&s).await;
    let (status, _, page) = s
        .get(
            &format!("/slack/oauth/callback?error=access_denied&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("cancelled"), "{page}");
    use piraja::store::InstallStore as _;
    assert!(
        s.t.store
            .slack_install("T9TK3CUKW")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn in_single_workspace_mode_the_install_page_says_how_to_turn_it_on() {
    let s = SlackTest::new().await;
    let (status, _, page) = s.get("/slack/install", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("SLACK_CLIENT_ID"));
}

#[tokio::test]
async fn names_and_emails_come_from_users_info() {
    let s = SlackTest::new().await;
    s.mock_ok(
        "users.info",
        serde_json::from_str(&fixture("slack-web-users.info-ok.json")).unwrap(),
    )
    .await;
    s.mock_ok(
        "chat.postMessage",
        json!({"ok": true, "channel": "C1", "ts": "1700000000.000100"}),
    )
    .await;
    let (status, _) = s.command("W012A3CDE", "new Lost my keys").await;
    assert_eq!(status, StatusCode::OK);
    let who = piraja::core::people::UserRef::slack("W012A3CDE");
    let mut name = None;
    for _ in 0..100 {
        name = s.t.store.member_name(DeskId(1), &who).await.unwrap();
        if name.as_deref() == Some("spengler") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(name.as_deref(), Some("spengler"));
    let lookups = s.calls("/users.info").await.len();
    // A second command within the hour does not look the user up again.
    s.command("W012A3CDE", "list").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.calls("/users.info").await.len(), lookups);
}

#[tokio::test]
async fn workspace_admins_are_desk_admins_and_other_members_are_refused_settings() {
    let s = SlackTest::new().await;
    // users.info: W333 is a plain member; everyone else answers as the docs' admin example.
    let mut member: Value = serde_json::from_str(&fixture("slack-web-users.info-ok.json")).unwrap();
    member["user"]["is_admin"] = json!(false);
    Mock::given(method("POST"))
        .and(path("/users.info"))
        .and(wiremock::matchers::body_string_contains("user=W333"))
        .respond_with(ResponseTemplate::new(200).set_body_json(member))
        .with_priority(1)
        .mount(&s.mock)
        .await;
    s.mock_ok(
        "users.info",
        serde_json::from_str(&fixture("slack-web-users.info-ok.json")).unwrap(),
    )
    .await;
    // W111 is the desk's first user (its admin); the others are members.
    s.command("W111", "new Printer on fire").await;
    let text = |body: &str| serde_json::from_str::<Value>(body).unwrap()["text"].to_string();
    let (_, refused) = s.command("W333", "sla high 2h 2d").await;
    assert!(text(&refused).contains("Only desk admins"), "{refused}");
    let (_, set) = s.command("W222", "sla high 2h 2d").await;
    assert!(!text(&set).contains("Only desk admins"), "{set}");
    let (_, shown) = s.command("W333", "sla").await;
    assert!(text(&shown).contains("2h"), "{shown}");
    // Known for the hour: no second lookup of W222 (its background profile lookup may run
    // once more beside the first).
    let of_w222 = || async {
        let requests = s.mock.received_requests().await.unwrap_or_default();
        (requests.iter())
            .filter(|r| r.url.path() == "/users.info")
            .filter(|r| String::from_utf8_lossy(&r.body).contains("W222"))
            .count()
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = of_w222().await;
    let (_, channel) = s.command("W222", "channel").await;
    assert!(!text(&channel).contains("Only desk admins"), "{channel}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(of_w222().await, before);
}

#[tokio::test]
async fn digest_now_posts_in_the_channel_and_its_assign_button_answers_privately() {
    let s = SlackTest::new().await;
    s.mock_ok("respond", json!({"ok": true})).await;
    s.command("W111", "new urgent Checkout is down").await;
    let (status, body) = s.command("W111", "digest now").await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response_type"], "in_channel");
    assert!(render::limit_violations(answer["blocks"].as_array().unwrap()).is_empty());
    let mut click: Value = serde_json::from_str(&fixture("slack-block-actions.json")).unwrap();
    click["actions"][0] = json!({"action_id": "digest_assign", "type": "button", "value": "1"});
    click["response_url"] = json!(format!("{}/respond", s.mock.uri()));
    let (status, _) = s.interaction(&click).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.t.first_ticket().await.ticket.assignee.unwrap().id,
        click["user"]["id"].as_str().unwrap()
    );
    let mut responded = Vec::new();
    for _ in 0..50 {
        responded = s.calls("/respond").await;
        if !responded.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(responded[0]["replace_original"], false);
    assert_eq!(responded[0]["response_type"], "ephemeral");
    assert!(
        responded[0]["text"]
            .as_str()
            .unwrap()
            .contains("You now have #1")
    );
}

/// Fuzzing through the real router: signed bodies of random bytes, random form fields and
/// random JSON payloads; every answer is a 200 or a 400, never a panic or a 500.
#[tokio::test]
async fn signed_random_bodies_never_crash_the_slack_endpoints() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let s = SlackTest::new().await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let bytes = prop::collection::vec(any::<u8>(), 0..600);
    let text = "\\PC{0,300}";
    let json_like = prop::collection::vec(
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("\"type\":".to_owned()),
            Just("\"block_actions\"".to_owned()),
            Just("\"view_submission\"".to_owned()),
            Just("\"event_callback\"".to_owned()),
            Just("\"actions\":[{\"action_id\":\"start\",\"value\":\"1\"}]".to_owned()),
            Just("\"team\":{\"id\":\"T1\"},\"user\":{\"id\":\"U1\"}".to_owned()),
            Just(",".to_owned()),
            "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat());
    for _ in 0..150 {
        let raw = bytes.new_tree(&mut runner).unwrap().current();
        let words = text.new_tree(&mut runner).unwrap().current();
        let payload = json_like.new_tree(&mut runner).unwrap().current();
        let form = serde_urlencoded::to_string([
            ("team_id", "T1"),
            ("user_id", "U1"),
            ("channel_id", "C1"),
            ("text", words.as_str()),
        ])
        .unwrap();
        let interaction = serde_urlencoded::to_string([("payload", payload.as_str())]).unwrap();
        for (path, body) in [
            ("/slack/commands", raw.clone()),
            ("/slack/commands", form.into_bytes()),
            ("/slack/interactions", interaction.into_bytes()),
            ("/slack/interactions", raw.clone()),
            ("/slack/events", payload.clone().into_bytes()),
            ("/slack/events", raw.clone()),
        ] {
            let (status, body) = s
                .post_signed(path, "application/x-www-form-urlencoded", body)
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{path}: {status} {body}"
            );
        }
    }
}
