//! The Discord app through the real router, signed with ed25519-dalek as Discord signs, with
//! wiremock standing in for Discord's REST API, using the platform's documented payloads.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::{Signer, SigningKey};
use piraja::discord::{DiscordApp, render};
use piraja::http::{App, AppState};
use piraja::outbox::Worker;
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::TestDesks;

const GUILD: &str = "290926798626357999";
const CHANNEL: &str = "645027906669510667";
const ADMIN: &str = "53908232506183680";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct DiscordTest {
    t: TestDesks,
    mock: MockServer,
    state: AppState,
    worker: Worker,
    key: SigningKey,
    seq: std::sync::atomic::AtomicU64,
}

impl DiscordTest {
    async fn new(bot: bool) -> DiscordTest {
        DiscordTest::with(bot, None).await
    }

    async fn with(bot: bool, budget: Option<Duration>) -> DiscordTest {
        let t = TestDesks::new().await;
        let mock = MockServer::start().await;
        let key = SigningKey::from_bytes(&[7; 32]);
        let settings = piraja::config::DiscordSettings {
            public_key: hex::encode(key.verifying_key().to_bytes()),
            application_id: Some("1111".into()),
            bot_token: bot.then(|| secrecy::SecretString::from("bot-token-value")),
            api_url: mock.uri(),
        };
        let mut app = DiscordApp::new(&settings).unwrap();
        if let Some(b) = budget {
            app.budget = b;
        }
        let app = Arc::new(app);
        let desks = t.desks.clone();
        let worker = Worker::new(
            t.desks.store.clone(),
            t.desks.clock.clone(),
            t.desks.outbox_wake.clone(),
        )
        .with_sender(
            piraja::core::people::Platform::Discord,
            Arc::new(app.sender(t.desks.store.clone())),
        );
        let mut s =
            piraja::config::Settings::load_from(std::path::Path::new("/nonexistent.toml")).unwrap();
        s.discord = Some(settings);
        let state = AppState::from(App {
            desks,
            settings: Arc::new(s),
            metrics: piraja::http::metrics_handle(),
            slack: None,
            discord: Some(app),
            mail: None,
        });
        DiscordTest {
            t,
            mock,
            state,
            worker,
            key,
            seq: Default::default(),
        }
    }

    async fn raw(
        &self,
        body: &[u8],
        ts: Option<String>,
        sig: Option<String>,
    ) -> (StatusCode, String) {
        let mut req =
            Request::post("/discord/interactions").header("content-type", "application/json");
        if let Some(ts) = ts {
            req = req.header("x-signature-timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("x-signature-ed25519", sig);
        }
        let response = piraja::http::router(self.state.clone())
            .oneshot(req.body(Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn sign(&self, ts: &str, body: &[u8]) -> String {
        let mut message = ts.as_bytes().to_vec();
        message.extend_from_slice(body);
        hex::encode(self.key.sign(&message).to_bytes())
    }

    /// Sends a signed interaction; the answer as JSON.
    async fn send(&self, interaction: &Value) -> Value {
        let body = interaction.to_string().into_bytes();
        let ts = self.t.clock.now().timestamp().to_string();
        let sig = self.sign(&ts, &body);
        let (status, text) = self.raw(&body, Some(ts), Some(sig)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The documented application-command payload with our guild, user, permissions and options.
    fn base(&self, kind: u8, user: &str, admin: bool, data: Value) -> Value {
        let mut i: Value =
            serde_json::from_str(&fixture("discord-interaction-application-command.json")).unwrap();
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        i["id"] = json!(format!("9000000000000{n:05}"));
        i["type"] = json!(kind);
        i["application_id"] = json!("1111");
        i["guild_id"] = json!(GUILD);
        i["member"]["user"]["id"] = json!(user);
        i["member"]["permissions"] = json!(if admin { "2147483647" } else { "1024" });
        i["data"] = data;
        i
    }

    /// `/ticket <sub…>` with options, as `user`.
    async fn command(&self, user: &str, path: &[&str], options: Value) -> Value {
        let mut leaf = json!({ "type": 1, "name": path.last().unwrap(), "options": options });
        if path.len() == 2 {
            leaf = json!({ "type": 2, "name": path[0], "options": [leaf] });
        }
        let data =
            json!({ "id": "771825006014889984", "name": "ticket", "type": 1, "options": [leaf] });
        self.send(&self.base(2, user, user == ADMIN, data)).await
    }

    async fn click(&self, user: &str, custom_id: &str, values: Option<Value>) -> Value {
        let mut data = json!({ "custom_id": custom_id, "component_type": if values.is_some() { 3 } else { 2 } });
        if let Some(v) = values {
            data["values"] = v;
        }
        let mut i = self.base(3, user, user == ADMIN, data);
        i["message"] = json!({ "id": "5555", "channel_id": CHANNEL });
        self.send(&i).await
    }

    async fn submit(
        &self,
        user: &str,
        custom_id: &str,
        fields: &[(&str, &str)],
        from_message: bool,
    ) -> Value {
        let rows: Vec<Value> = fields
            .iter()
            .map(|(id, v)| json!({ "type": 1, "components": [{ "type": 4, "custom_id": id, "value": v }] }))
            .collect();
        let mut i = self.base(
            5,
            user,
            user == ADMIN,
            json!({ "custom_id": custom_id, "components": rows }),
        );
        if from_message {
            i["message"] = json!({ "id": "5555" });
        }
        self.send(&i).await
    }

    async fn deliver_all(&self) {
        self.t.deliver_all(&self.worker).await;
    }

    /// Discord posts every message in the channel as 7001 and edits it.
    async fn card_in_channel_is_7001(&self) {
        Mock::given(method("POST"))
            .and(path(format!("/channels/{CHANNEL}/messages")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "id": "7001", "channel_id": CHANNEL })),
            )
            .mount(&self.mock)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex("^/channels/.*/messages/7001$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "7001" })))
            .mount(&self.mock)
            .await;
    }

    /// The requests made so far, once there are at least `n` (a deferred answer is sent after
    /// the acknowledgement); after two seconds, whatever there is.
    async fn requests_awaited(
        &self,
        http_method: &str,
        path_prefix: &str,
        n: usize,
    ) -> Vec<(String, Value)> {
        for _ in 0..100 {
            let made = self.requests(http_method, path_prefix).await;
            if made.len() >= n {
                return made;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.requests(http_method, path_prefix).await
    }

    /// Discord accepts the edit of a deferred answer's placeholder.
    async fn mock_edit_original(&self) {
        Mock::given(method("PATCH"))
            .and(path("/webhooks/1111/A_UNIQUE_TOKEN/messages/@original"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "1" })))
            .mount(&self.mock)
            .await;
    }

    async fn requests(&self, http_method: &str, path_prefix: &str) -> Vec<(String, Value)> {
        self.mock
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == http_method && r.url.path().starts_with(path_prefix))
            .map(|r| {
                (
                    r.url.path().to_owned(),
                    serde_json::from_slice(&r.body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }
}

fn content(answer: &Value) -> String {
    answer["data"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn ephemeral(answer: &Value) -> bool {
    answer["data"]["flags"].as_u64() == Some(64)
}

#[tokio::test]
async fn the_signed_ping_fixture_is_ponged_and_bad_signatures_get_401() {
    let d = DiscordTest::new(false).await;
    let ping = fixture("discord-interaction-ping.json");
    assert_eq!(
        d.send(&serde_json::from_str(&ping).unwrap()).await,
        json!({ "type": 1 })
    );
    // Discord's own probe: a derived fixture signed with another key, long ago.
    let f: Value = serde_json::from_str(&fixture("discord-signed-ping-derived.json")).unwrap();
    let body = f["raw_body"].as_str().unwrap().as_bytes();
    let (status, _) = d
        .raw(
            body,
            f["x_signature_timestamp"].as_str().map(str::to_owned),
            f["x_signature_ed25519"].as_str().map(str::to_owned),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let now = d.t.clock.now().timestamp();
    let stale = (now - 301).to_string();
    let cases = [
        (None, None),
        (Some(now.to_string()), Some("00".repeat(64))),
        (Some(stale.clone()), Some(d.sign(&stale, body))),
        (
            Some(now.to_string()),
            Some(d.sign(&(now + 1).to_string(), body)),
        ),
    ];
    for (ts, sig) in cases {
        let (status, _) = d.raw(body, ts, sig).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Signed but not an interaction.
    let ts = now.to_string();
    for body in [&b"not json"[..], b"{}", br#"{"id":"1","type":0}"#, b"[1]"] {
        let (status, _) = d.raw(body, Some(ts.clone()), Some(d.sign(&ts, body))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    }
}

#[tokio::test]
async fn payloads_without_an_id_or_a_guild_still_get_their_own_answers() {
    let d = DiscordTest::new(false).await;
    // Two creates whose bodies carry no interaction id are two tickets, not one replayed.
    let new = |text: &str| {
        let leaf = json!({ "type": 1, "name": "new", "options": [{ "type": 3, "name": "description", "value": text }] });
        let mut i = d.base(
            2,
            ADMIN,
            true,
            json!({ "id": "771825006014889984", "name": "ticket", "type": 1, "options": [leaf] }),
        );
        i.as_object_mut().unwrap().remove("id");
        i
    };
    let first = d.send(&new("Printer on fire")).await;
    let second = d.send(&new("Coffee machine leaks")).await;
    assert!(content(&first).contains("#1"), "{first}");
    assert!(content(&second).contains("#2"), "{second}");
    // Autocomplete outside a server still answers with choices (none), never a message.
    let mut typed = d.base(4, ADMIN, true, json!({ "id": "771825006014889984", "name": "ticket", "type": 1,
        "options": [{ "type": 1, "name": "show", "options": [{ "type": 4, "name": "ticket", "value": "1", "focused": true }] }] }));
    typed.as_object_mut().unwrap().remove("guild_id");
    typed.as_object_mut().unwrap().remove("member");
    let answer = d.send(&typed).await;
    assert_eq!(answer, json!({ "type": 8, "data": { "choices": [] } }));
}

#[tokio::test]
async fn a_new_ticket_answers_with_its_card_and_buttons_update_it_in_place() {
    let d = DiscordTest::new(false).await;
    let created = d
        .command(ADMIN, &["new"], json!([{ "type": 3, "name": "priority", "value": "high" }, { "type": 3, "name": "description", "value": "low battery on the VPN box" }]))
        .await;
    assert_eq!(created["type"], 4);
    assert!(!ephemeral(&created));
    assert!(content(&created).contains("#1"), "{created}");
    assert!(render::limit_violations(&created["data"]).is_empty());
    let embed = &created["data"]["embeds"][0];
    assert!(embed["title"].as_str().unwrap().contains("low battery"));
    let ids: Vec<&str> = created["data"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["components"].as_array().unwrap())
        .filter_map(|c| c["custom_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "assign_me:1",
            "start:1",
            "complete:1",
            "priority:1",
            "note:1",
            "link:1",
            "close:1"
        ]
    );

    let assigned = d.click(ADMIN, "assign_me:1", None).await;
    assert_eq!(assigned["type"], 7);
    assert!(
        assigned["data"]["embeds"][0]["fields"]
            .to_string()
            .contains(ADMIN),
        "{assigned}"
    );
    let started = d.click(ADMIN, "start:1", None).await;
    assert_eq!(started["type"], 7);
    assert!(
        started["data"]["embeds"][0]["fields"]
            .to_string()
            .contains("in progress")
    );
    let urgent = d.click(ADMIN, "priority:1", Some(json!(["urgent"]))).await;
    assert_eq!(urgent["type"], 7);
    assert!(content(&urgent).contains("urgent"), "{urgent}");
    // A double click changes nothing more.
    let again = d.click(ADMIN, "priority:1", Some(json!(["urgent"]))).await;
    assert_eq!(again["type"], 7);
    let note_form = d.click(ADMIN, "note:1", None).await;
    assert_eq!(note_form["type"], 9);
    // The form carries the id of the click that opened it…
    let form_id = note_form["data"]["custom_id"].as_str().unwrap().to_owned();
    assert!(form_id.starts_with("note:1:"), "{form_id}");
    let noted = d
        .submit(ADMIN, &form_id, &[("text", "Called the customer")], true)
        .await;
    assert_eq!(noted["type"], 7);
    // …so submitting it again (after a slow answer) notes once, and answers the same.
    let again = d
        .submit(ADMIN, &form_id, &[("text", "Called the customer")], true)
        .await;
    assert_eq!(again["type"], 7);
    assert!(!content(&again).contains("Nothing to change"), "{again}");
    let shown = d
        .command(
            ADMIN,
            &["show"],
            json!([{ "type": 4, "name": "ticket", "value": 1 }]),
        )
        .await;
    assert!(ephemeral(&shown));
    let timeline = shown["data"]["embeds"][1]["description"].as_str().unwrap();
    assert!(
        timeline.matches("Called the customer").count() == 1 && timeline.contains("urgent"),
        "{timeline}"
    );
    let completed = d.click(ADMIN, "complete:1", None).await;
    let buttons = completed["data"]["components"][0]["components"].to_string();
    assert!(
        buttons.contains("reopen:1") && !buttons.contains("complete:1"),
        "{buttons}"
    );
    // A button on a ticket that does not exist answers privately.
    let missing = d.click(ADMIN, "start:99", None).await;
    assert_eq!(missing["type"], 4);
    assert!(ephemeral(&missing));
}

#[tokio::test]
async fn the_new_ticket_form_opens_whatever_the_database_is_doing() {
    let d = DiscordTest::new(false).await;
    d.t.rename_table("desks", "desks_away").await;
    let form = d.command(ADMIN, &["new"], json!([])).await;
    assert_eq!(form["type"], 9, "{form}");
}

#[tokio::test]
async fn the_form_creates_a_ticket_and_every_subcommand_runs() {
    let d = DiscordTest::new(false).await;
    let form = d.command(ADMIN, &["new"], json!([])).await;
    assert_eq!(form["type"], 9);
    // The form names the interaction that opened it.
    let form_id = form["data"]["custom_id"].as_str().unwrap().to_owned();
    assert!(form_id.starts_with("new_ticket:9000000000000"), "{form_id}");
    let bad = d
        .submit(
            ADMIN,
            &form_id,
            &[("description", "x"), ("contact", "not-an-email")],
            false,
        )
        .await;
    assert!(ephemeral(&bad) && content(&bad).contains("not an email"));
    let fields = [
        ("description", "Printer jam"),
        ("priority", "urgent"),
        ("contact", "ann@acme.example"),
    ];
    let created = d.submit(ADMIN, &form_id, &fields, false).await;
    assert!(content(&created).contains("#1"), "{created}");
    // The same form submitted again (each submission is an interaction of its own): the
    // ticket is not created twice.
    let again = d.submit(ADMIN, &form_id, &fields, false).await;
    assert!(content(&again).contains("#1"), "{again}");
    let second = d
        .command(
            ADMIN,
            &["show"],
            json!([{ "type": 4, "name": "ticket", "value": 2 }]),
        )
        .await;
    assert!(content(&second).contains("no ticket #2"), "{second}");
    assert!(
        created["data"]["embeds"][0]["fields"]
            .to_string()
            .contains("ann@acme.example"),
        "{created}"
    );
    let t = |n: i64| json!({ "type": 4, "name": "ticket", "value": n });
    let s = |name: &str, v: &str| json!({ "type": 3, "name": name, "value": v });
    let runs: Vec<(&[&str], Value, &str)> = vec![
        (&["list"], json!([]), "Open tickets"),
        (&["list"], json!([s("filter", "urgent")]), "#1"),
        (
            &["assign"],
            json!([t(1), { "type": 6, "name": "user", "value": "80351110224678912" }]),
            "#1",
        ),
        (&["wait"], json!([t(1)]), "waiting"),
        (&["start"], json!([t(1)]), "in progress"),
        (&["priority"], json!([t(1), s("priority", "low")]), "low"),
        (&["note"], json!([t(1), s("text", "on it")]), "#1"),
        (
            &["contact"],
            json!([t(1), s("contact", "Acme Corp")]),
            "Acme Corp",
        ),
        (
            &["history"],
            json!([s("contact", "Acme Corp")]),
            "Acme Corp",
        ),
        (
            &["complete"],
            json!([t(1), s("note", "fixed")]),
            "completed",
        ),
        (&["reopen"], json!([t(1)]), "open"),
        (&["close"], json!([t(1), s("reason", "dup")]), "closed"),
        (&["channel"], json!([]), "New tickets"),
        (&["help"], json!([]), "/ticket new"),
        (&["desk", "link"], json!([]), "one-time code"),
        (
            &["role"],
            json!([{ "type": 6, "name": "user", "value": "42" }, s("role", "agent")]),
            "agent",
        ),
    ];
    for (path, options, want) in runs {
        let answer = d.command(ADMIN, path, options).await;
        let text = answer["data"].to_string();
        assert!(text.contains(want), "{path:?}: {text}");
        assert!(
            render::limit_violations(&answer["data"]).is_empty(),
            "{path:?}"
        );
    }
    // Errors are private and say what to type.
    let err = d.command(ADMIN, &["show"], json!([t(99)])).await;
    assert!(
        ephemeral(&err) && content(&err).contains("/ticket list"),
        "{err}"
    );
    // Members without Manage Guild are not admins.
    let refused = d.command("42424242", &["channel"], json!([])).await;
    assert!(
        ephemeral(&refused) && content(&refused).contains("Only desk admins"),
        "{refused}"
    );
}

#[tokio::test]
async fn autocomplete_offers_open_tickets_most_relevant_first() {
    let d = DiscordTest::new(false).await;
    for (p, text) in [
        ("low", "printer jam"),
        ("urgent", "VPN down"),
        ("medium", "printer toner"),
        ("high", "email bounce"),
    ] {
        d.command(ADMIN, &["new"], json!([{ "type": 3, "name": "priority", "value": p }, { "type": 3, "name": "description", "value": text }])).await;
    }
    for n in 5..=12 {
        d.command(
            ADMIN,
            &["new"],
            json!([{ "type": 3, "name": "description", "value": format!("filler {n}") }]),
        )
        .await;
    }
    d.command(
        ADMIN,
        &["close"],
        json!([{ "type": 4, "name": "ticket", "value": 4 }]),
    )
    .await;
    let complete = |typed: &str| {
        let data = json!({ "name": "ticket", "type": 1, "options": [{ "type": 1, "name": "show", "options": [{ "type": 4, "name": "ticket", "value": typed, "focused": true }] }] });
        d.base(4, ADMIN, true, data)
    };
    let a = d.send(&complete("printer")).await;
    assert_eq!(a["type"], 8);
    let values: Vec<i64> = a["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [3, 1], "medium before low");
    let a = d.send(&complete("1")).await;
    let values: Vec<i64> = a["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values[0], 1, "the exact number first: {values:?}");
    assert!(values.contains(&10) && values.contains(&12));
    let a = d.send(&complete("")).await;
    let choices = a["data"]["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 11, "closed #4 is not offered");
    assert_eq!(choices[0]["value"], 2, "the urgent one first");
    // The documented partial payload (no guild) is answered with choices (none), not a 500 and
    // not a message, which Discord would refuse for an autocomplete.
    let partial: Value =
        serde_json::from_str(&fixture("discord-interaction-autocomplete-partial.json")).unwrap();
    let answer = d.send(&partial).await;
    assert_eq!(answer, json!({ "type": 8, "data": { "choices": [] } }));
}

#[tokio::test]
async fn odd_interactions_get_polite_private_answers() {
    let d = DiscordTest::new(false).await;
    // No guild: a DM.
    let mut dm = d.base(
        2,
        ADMIN,
        true,
        json!({ "name": "ticket", "options": [{ "type": 1, "name": "help" }] }),
    );
    dm.as_object_mut().unwrap().remove("guild_id");
    dm["user"] = dm["member"]["user"].clone();
    dm.as_object_mut().unwrap().remove("member");
    assert!(ephemeral(&d.send(&dm).await));
    // A type Discord may add tomorrow.
    let future = d.base(42, ADMIN, true, json!({}));
    assert!(ephemeral(&d.send(&future).await));
    // A subcommand this server does not know (stale registration).
    let stale = d.command(ADMIN, &["teleport"], json!([])).await;
    assert!(ephemeral(&stale) && content(&stale).contains("discord register"));
    // The documented minimal component payload (someone else's button).
    let minimal: Value = serde_json::from_str(&fixture(
        "discord-interaction-message-component-minimal.json",
    ))
    .unwrap();
    assert!(ephemeral(&d.send(&minimal).await));
    let mut foreign = d.base(
        3,
        ADMIN,
        true,
        json!({ "custom_id": "click_me", "component_type": 2 }),
    );
    foreign["message"] = json!({ "id": "1" });
    assert!(ephemeral(&d.send(&foreign).await));
}

#[tokio::test]
async fn with_a_bot_token_cards_are_posted_edited_and_rate_limits_are_honoured() {
    let d = DiscordTest::new(true).await;
    d.card_in_channel_is_7001().await;
    Mock::given(method("POST"))
        .and(path("/users/@me/channels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "8001" })))
        .mount(&d.mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/channels/8001/messages"))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            serde_json::from_str::<Value>(&fixture("discord-429-user-rate-limit.json")).unwrap(),
        ))
        .mount(&d.mock)
        .await;
    d.command(ADMIN, &["channel"], json!([])).await;
    let created = d
        .command(
            ADMIN,
            &["new"],
            json!([{ "type": 3, "name": "description", "value": "Disk full" }]),
        )
        .await;
    assert!(
        ephemeral(&created) && content(&created).contains("#1"),
        "{created}"
    );
    d.deliver_all().await;
    let posts = d.requests("POST", "/channels/").await;
    assert_eq!(
        posts.len(),
        1,
        "one card in the channel, which is also the notification channel"
    );
    assert!(posts[0].1["content"].as_str().unwrap().contains("#1"));
    assert!(render::limit_violations(&posts[0].1).is_empty());
    let (_, auth) = d
        .mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.url.path().to_owned(),
                r.headers["authorization"].to_str().unwrap().to_owned(),
            )
        })
        .next()
        .unwrap();
    assert_eq!(auth, "Bot bot-token-value");
    // Assigning someone else edits the card and DMs them; the DM is rate limited and retried later.
    d.command(ADMIN, &["assign"], json!([{ "type": 4, "name": "ticket", "value": 1 }, { "type": 6, "name": "user", "value": "80351110224678912" }])).await;
    d.deliver_all().await;
    assert!(!d.requests("PATCH", "/channels/").await.is_empty());
    assert_eq!(d.requests("POST", "/channels/8001/messages").await.len(), 1);
    use piraja::store::OutboxStore as _;
    let stats = d.t.store.outbox_stats(d.t.clock.now()).await.unwrap();
    assert_eq!(stats.pending, 1, "the DM waits for Discord's retry_after");
    // Not retried before 64.57 s have passed.
    d.t.clock.advance(chrono::Duration::seconds(30));
    d.deliver_all().await;
    assert_eq!(d.requests("POST", "/channels/8001/messages").await.len(), 1);
}

#[tokio::test]
async fn slow_work_is_answered_deferred_and_finished_by_a_followup() {
    let d = DiscordTest::with(false, Some(Duration::ZERO)).await;
    d.mock_edit_original().await;
    let answer = d.command(ADMIN, &["list"], json!([])).await;
    assert_eq!(answer["type"], 5);
    assert!(ephemeral(&answer));
    let followups = d.requests_awaited("PATCH", "/webhooks/", 1).await;
    assert_eq!(followups.len(), 1);
    assert!(
        followups[0].1["content"]
            .as_str()
            .unwrap()
            .contains("Open tickets")
    );
    // A command whose answer is the channel's (a digest, a settings change) is deferred in
    // public: the answer that edits the placeholder must not be hidden from the channel.
    for path in [&["digest", "now"][..], &["sla", "hours_off"][..]] {
        let public = d.command(ADMIN, path, json!([])).await;
        assert_eq!(public["type"], 5, "{path:?}");
        assert!(!ephemeral(&public), "{path:?}: {public}");
    }
    Mock::given(method("POST"))
        .and(path("/webhooks/1111/A_UNIQUE_TOKEN"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "2" })))
        .mount(&d.mock)
        .await;
    // There is no ticket #1: the deferred click's error goes privately, as a followup, and
    // the card it was clicked on is left as it was.
    let click = d.click(ADMIN, "start:1", None).await;
    assert_eq!(click["type"], 6, "a deferred update for a button");
    let private = d
        .requests_awaited("POST", "/webhooks/1111/A_UNIQUE_TOKEN", 1)
        .await;
    assert_eq!(private.len(), 1);
    assert_eq!(private[0].1["flags"], 64, "{:?}", private[0].1);
    let said = private[0].1["content"].as_str().unwrap_or_default();
    assert!(said.contains("#1"), "{said}");
    // The list's answer and the two public ones edited their placeholders; the click's error
    // did not touch the card.
    let edits = d.requests_awaited("PATCH", "/webhooks/", 3).await;
    assert_eq!(edits.len(), 3);
}

#[tokio::test]
async fn a_slow_form_or_digest_button_is_answered_deferred_within_the_budget() {
    let d = DiscordTest::with(false, Some(Duration::ZERO)).await;
    d.mock_edit_original().await;
    let edits = |n: usize| d.requests_awaited("PATCH", "/webhooks/", n);
    // The new-ticket form: deferred in public, then the placeholder becomes the card.
    let fields = [("description", "Printer on fire")];
    let form = d
        .submit(ADMIN, "new_ticket:900000000000000042", &fields, false)
        .await;
    assert_eq!(form["type"], 5, "{form}");
    assert!(!ephemeral(&form), "{form}");
    let after = edits(1).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].1.to_string().contains("#1"), "{:?}", after[0].1);
    // A digest's "Assign" button: deferred privately, then "You now have #1".
    let click = d.click(ADMIN, "digest_assign:1", None).await;
    assert_eq!(click["type"], 5, "{click}");
    assert!(ephemeral(&click), "{click}");
    let after = edits(2).await;
    assert_eq!(after.len(), 2);
    let said = after[1].1["content"].as_str().unwrap_or_default();
    assert!(said.starts_with("You now have #1"), "{said}");
}

#[tokio::test]
async fn a_bot_named_in_assign_is_refused_and_nothing_changes() {
    let d = DiscordTest::new(false).await;
    d.command(
        ADMIN,
        &["new"],
        json!([{ "type": 3, "name": "description", "value": "Disk full" }]),
    )
    .await;
    // Discord resolves the user option; this one is an application's bot.
    let leaf = json!({ "type": 1, "name": "assign", "options": [
        { "type": 4, "name": "ticket", "value": 1 },
        { "type": 6, "name": "user", "value": "999000000000000001" },
    ]});
    let data = json!({
        "id": "771825006014889984", "name": "ticket", "type": 1, "options": [leaf],
        "resolved": { "users": { "999000000000000001": {
            "id": "999000000000000001", "username": "helper", "bot": true, "discriminator": "0"
        }}},
    });
    let answer = d.send(&d.base(2, ADMIN, true, data)).await;
    assert!(ephemeral(&answer), "{answer}");
    assert!(
        content(&answer).contains("a bot cannot be assigned"),
        "{answer}"
    );
    let t = d.t.first_ticket().await;
    assert!(t.ticket.assignee.is_none());
}

#[tokio::test]
async fn every_rendered_list_card_and_detail_respects_discords_limits() {
    let t = TestDesks::new().await;
    for i in 0..500 {
        t.discord(
            "G1",
            "D1",
            true,
            &format!("new ticket number {i} {}", "x".repeat(i % 90)),
        )
        .await;
    }
    t.discord("G1", "D1", true, &format!("new {}", "é".repeat(4000)))
        .await;
    for i in 0..60 {
        t.discord(
            "G1",
            "D1",
            true,
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
        "new",
    ] {
        let reply = t.discord("G1", "D1", true, text).await;
        let m = render::message(&reply);
        assert!(
            render::limit_violations(&m.body).is_empty(),
            "{text}: {:?}",
            render::limit_violations(&m.body)
        );
    }
    let m = render::message(&t.discord("G1", "D1", true, "list all").await);
    assert!(m.body.to_string().contains("of 501 shown"));
}

#[tokio::test]
async fn digest_now_is_public_and_its_assign_buttons_answer_privately() {
    let d = DiscordTest::new(false).await;
    d.command(ADMIN, &["new"], json!([{ "type": 3, "name": "priority", "value": "urgent" }, { "type": 3, "name": "description", "value": "Checkout down" }])).await;
    let digest = d.command(ADMIN, &["digest", "now"], json!([])).await;
    assert_eq!(digest["type"], 4);
    assert!(!ephemeral(&digest));
    assert!(render::limit_violations(&digest["data"]).is_empty());
    let ids = digest["data"]["components"].to_string();
    assert!(ids.contains("digest_assign:1"), "{ids}");
    let mine = d.click(ADMIN, "digest_assign:1", None).await;
    assert_eq!(mine["type"], 4);
    assert!(
        ephemeral(&mine) && content(&mine).contains("You now have #1"),
        "{mine}"
    );
    let scheduled = d
        .command(ADMIN, &["digest", "schedule"], json!([{ "type": 3, "name": "cron", "value": "0 9 * * 1-5" }, { "type": 3, "name": "timezone", "value": "Europe/Helsinki" }]))
        .await;
    assert!(
        content(&scheduled).contains("Europe/Helsinki"),
        "{scheduled}"
    );
    let sla = d.command(ADMIN, &["sla", "set"], json!([{ "type": 3, "name": "priority", "value": "urgent" }, { "type": 3, "name": "first_response", "value": "30m" }, { "type": 3, "name": "resolution", "value": "2h" }])).await;
    assert!(content(&sla).contains("30m"), "{sla}");
    let hours = d.command(ADMIN, &["sla", "hours"], json!([{ "type": 3, "name": "days", "value": "Mon-Fri" }, { "type": 3, "name": "hours", "value": "09:00-17:00" }, { "type": 3, "name": "timezone", "value": "America/New_York" }])).await;
    assert!(content(&hours).contains("America/New_York"), "{hours}");
}

/// Fuzzing through the real router: signed random bytes and random interaction-shaped JSON
/// get a 200 or a 400, never a panic or a 500.
#[tokio::test]
async fn signed_random_bodies_never_crash_the_discord_endpoint() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let d = DiscordTest::new(false).await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let bytes = prop::collection::vec(any::<u8>(), 0..600);
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,40}".prop_map(|s| json!(s)),
        Just(json!(true)),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("name".to_owned()),
                    Just("value".to_owned()),
                    Just("options".to_owned()),
                    Just("custom_id".to_owned()),
                    Just("values".to_owned()),
                    Just("components".to_owned()),
                    Just("focused".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    for _ in 0..200 {
        let raw = bytes.new_tree(&mut runner).unwrap().current();
        let data = value.new_tree(&mut runner).unwrap().current();
        let kind = (runner.rng().next_u32() % 7) as u8;
        let mut i = d.base(kind, ADMIN, true, data.clone());
        if kind == 3 && i["data"].is_object() {
            i["data"]["custom_id"] = json!(format!("start:{}", runner.rng().next_u32() % 5));
        }
        for body in [raw, i.to_string().into_bytes()] {
            let ts = d.t.clock.now().timestamp().to_string();
            let sig = d.sign(&ts, &body);
            let (status, text) = d.raw(&body, Some(ts), Some(sig)).await;
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{status} {text} for {data}"
            );
        }
    }
}

#[tokio::test]
async fn a_click_on_a_card_is_answered_in_place_and_the_outbox_only_adds_the_note() {
    let d = DiscordTest::new(true).await;
    d.card_in_channel_is_7001().await;
    d.command(ADMIN, &["channel"], json!([])).await;
    d.command(
        ADMIN,
        &["new"],
        json!([{ "type": 3, "name": "description", "value": "Disk full" }]),
    )
    .await;
    d.deliver_all().await;
    assert_eq!(d.requests("POST", "/channels/").await.len(), 1, "the card");

    // "Start" on the card in the channel: the answer replaces that message.
    let mut on_card = d.base(
        3,
        ADMIN,
        true,
        json!({ "custom_id": "start:1", "component_type": 2 }),
    );
    on_card["message"] = json!({ "id": "7001", "channel_id": CHANNEL });
    let answer = d.send(&on_card).await;
    assert_eq!(answer["type"], 7, "{answer}");
    d.deliver_all().await;
    assert!(
        d.requests("PATCH", "/channels/").await.is_empty(),
        "the clicked card is not edited a second time"
    );
    let posts = d.requests("POST", "/channels/").await;
    assert_eq!(posts.len(), 2, "the note in the card's thread");
    assert_eq!(posts[1].1["message_reference"]["message_id"], "7001");

    // A change made elsewhere (a click on a private copy of the card) edits the card.
    d.click(ADMIN, "complete:1", None).await;
    d.deliver_all().await;
    assert_eq!(d.requests("PATCH", "/channels/").await.len(), 1);
}
