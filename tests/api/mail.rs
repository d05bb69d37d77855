//! Mailboxes through the real router and desk, with wiremock standing in for Google's OAuth and
//! Gmail, and Microsoft's identity platform and Graph, built from the fixtures.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use piraja::core::command::Provider;
use piraja::core::outgoing::Outgoing;
use piraja::core::ticket::{DeskId, Source, Status};
use piraja::desk::Reply;
use piraja::http::{App, AppState};
use piraja::mail::MailApp;
use piraja::store::{MailStore, TicketStore};
use serde_json::{Value, json};
use tower::ServiceExt;
use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDesks, text};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct MailTest {
    t: TestDesks,
    mock: MockServer,
    app: Arc<MailApp>,
    state: AppState,
    /// The browser's cookie, as the connect page set it.
    cookie: std::sync::Mutex<Option<String>>,
}

impl MailTest {
    async fn new() -> MailTest {
        let mut t = TestDesks::new().await;
        let mock = MockServer::start().await;
        let mut settings =
            piraja::config::Settings::load_from(std::path::Path::new("/nonexistent.toml")).unwrap();
        settings.public_url = "https://desk.example.com".into();
        let provider = |p: &str| piraja::config::MailProviderSettings {
            client_id: format!("{p}-client"),
            client_secret: format!("{p}-secret").into(),
            auth_url: format!("{}/{p}/authorize", mock.uri()),
            token_url: format!("{}/{p}/token", mock.uri()),
            api_url: mock.uri(),
        };
        settings.google = Some(provider("google"));
        settings.microsoft = Some(provider("microsoft"));
        let app = Arc::new(MailApp::new(&settings, piraja::secret::Sealer::new(&[9; 32])).unwrap());
        t.desks = t.desks.clone().with_mail(app.clone());
        let _ = app.desks.set(t.desks.clone());
        let state = AppState::from(App {
            desks: t.desks.clone(),
            settings: Arc::new(settings),
            metrics: piraja::http::metrics_handle(),
            slack: None,
            discord: None,
            mail: Some(app.clone()),
        });
        MailTest {
            t,
            mock,
            app,
            state,
            cookie: std::sync::Mutex::new(None),
        }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Option<String>, String) {
        let mut request = Request::get(uri);
        if let Some(c) = self.cookie.lock().unwrap().clone() {
            request = request.header("cookie", c);
        }
        let response = piraja::http::router(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Lax"),
                "{set}"
            );
            *self.cookie.lock().unwrap() = set.split(';').next().map(str::to_owned);
        }
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            location,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// `/ticket mailbox connect <p>`: the private link, as a path and query.
    async fn connect_link(&self, p: &str) -> String {
        let reply = self
            .t
            .slack("T1", "U1", "C1", &format!("mailbox connect {p}"))
            .await;
        let t = text(&reply);
        let at = t
            .find("https://desk.example.com")
            .unwrap_or_else(|| panic!("{t}"));
        t[at + "https://desk.example.com".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }

    /// Runs the whole connect flow for `p`; returns the provider's `state`.
    async fn connect(&self, p: &str) -> String {
        let link = self.connect_link(p).await;
        let (status, location, body) = self.get(&link).await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        let url = url::Url::parse(&location.unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), format!("/{p}/authorize"));
        assert_eq!(q["client_id"], format!("{p}-client"));
        assert_eq!(
            q["redirect_uri"],
            format!("https://desk.example.com/mail/{p}/callback")
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!q["code_challenge"].is_empty());
        if p == "google" {
            assert_eq!(q["scope"], "https://www.googleapis.com/auth/gmail.readonly");
            assert_eq!(
                (q["access_type"].as_str(), q["prompt"].as_str()),
                ("offline", "consent")
            );
        } else {
            assert_eq!(
                q["scope"],
                "offline_access https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read"
            );
        }
        q["state"].clone()
    }

    async fn ok(&self, m: &str, p: &str, body: Value) {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.mock)
            .await;
    }

    async fn google_connected(&self) {
        self.ok(
            "POST",
            "/google/token",
            serde_json::from_str(&fixture("google-oauth-token-response.json")).unwrap(),
        )
        .await;
        self.ok(
            "GET",
            "/gmail/v1/users/me/profile",
            json!({"emailAddress": "Support@Desk.example", "historyId": "1000"}),
        )
        .await;
        let state = self.connect("google").await;
        let (status, _, page) = self
            .get(&format!(
                "/mail/google/callback?code=the-code&state={state}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }

    /// support@contoso.example connected through Microsoft, notifying in C1.
    async fn outlook_connected(&self) {
        self.t.slack("T1", "U1", "C1", "channel").await;
        self.ok(
            "POST",
            "/microsoft/token",
            serde_json::from_str(&fixture("microsoft-oauth-token-response.json")).unwrap(),
        )
        .await;
        self.ok("GET", "/me", json!({"mail": "support@contoso.example"}))
            .await;
        let state = self.connect("microsoft").await;
        let (status, _, page) = self
            .get(&format!("/mail/microsoft/callback?code=c&state={state}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }

    async fn mailbox(&self) -> piraja::store::Mailbox {
        self.t
            .store
            .mailboxes_of(DeskId(1))
            .await
            .unwrap()
            .remove(0)
    }

    /// Serves Gmail message `id` in `thread` with these RFC 822 bytes.
    /// Gmail's history from `start` to `next`: the messages added, as (id, thread).
    /// Mocks a page of Graph's delta of mail folder `folder`, answered to requests that carry
    /// the query parameter `query` (name, value) when one is given, at wiremock's `priority`
    /// (1 is tried first, 5 is its default).
    async fn graph_delta(
        &self,
        folder: &str,
        query: Option<(&str, &str)>,
        priority: u8,
        page: Value,
    ) {
        let mut mock = Mock::given(method("GET"))
            .and(path(format!("/me/mailFolders/{folder}/messages/delta")));
        if let Some((name, value)) = query {
            mock = mock.and(query_param(name, value));
        }
        mock.respond_with(ResponseTemplate::new(200).set_body_json(page))
            .with_priority(priority)
            .mount(&self.mock)
            .await;
    }

    async fn gmail_history(&self, start: &str, next: &str, added: &[(&str, &str)]) {
        let added: Vec<Value> = (added.iter())
            .map(|(id, thread)| json!({"message": {"id": id, "threadId": thread}}))
            .collect();
        Mock::given(method("GET"))
            .and(path("/gmail/v1/users/me/history"))
            .and(query_param("startHistoryId", start))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "history": [{"id": next, "messagesAdded": added}],
                "historyId": next
            })))
            .mount(&self.mock)
            .await;
    }

    async fn gmail_message(&self, id: &str, thread: &str, raw: &str) {
        self.ok(
            "GET",
            &format!("/gmail/v1/users/me/messages/{id}"),
            json!({"id": id, "threadId": thread, "raw": URL_SAFE_NO_PAD.encode(raw.replace('\n', "\r\n"))}),
        )
        .await;
    }
}

fn forwarded(id: &str) -> String {
    format!(
        "Message-ID: <{id}@agent.example>\nFrom: Agent Smith <agent@desk.example>\nTo: support@desk.example\n\
         Subject: Fwd: Printer on fire\nDate: Tue, 1 Dec 2026 09:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n\
         Please look at this.\n\n---------- Forwarded message ---------\nFrom: Jane Customer <jane@acme.example>\n\
         Date: Mon, 30 Nov 2026 at 10:12\nSubject: Printer on fire\nTo: <agent@desk.example>\n\n\
         Our printer on floor 3 is on fire again.\n"
    )
}

fn reply(id: &str, from: &str, subject: &str, in_reply_to: &str, body: &str) -> String {
    format!(
        "Message-ID: <{id}>\nFrom: {from}\nTo: support@desk.example\nSubject: {subject}\n\
         In-Reply-To: <{in_reply_to}>\nReferences: <{in_reply_to}>\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}\n\nOn Mon, 30 Nov 2026, Support wrote:\n> old text\n"
    )
}

#[tokio::test]
async fn connecting_gmail_stores_sealed_tokens_and_refuses_tampered_replayed_or_expired_links() {
    let m = MailTest::new().await;
    m.t.slack("T1", "U1", "C1", "channel").await;
    m.google_connected().await;
    let mb = m.mailbox().await;
    assert_eq!(mb.address, "support@desk.example");
    assert_eq!(mb.cursor.as_deref(), Some("1000"));
    assert!(!mb.tokens.windows(8).any(|w| w == b"1/fFAGRN"), "sealed");
    // The exchange carried the PKCE verifier.
    let exchange = m
        .mock
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/google/token")
        .unwrap();
    let form = String::from_utf8_lossy(&exchange.body).into_owned();
    assert!(
        form.contains("code_verifier=") && form.contains("code=the-code"),
        "{form}"
    );
    // The client's id and secret in the form, as Google's documentation sends them.
    assert!(
        form.contains("client_id=google-client") && form.contains("client_secret=google-secret"),
        "{form}"
    );
    // The channel is told.
    let outbox = piraja::store::OutboxStore::outbox_due(
        &*m.t.store,
        m.t.clock.now() + Duration::days(1),
        100,
    )
    .await
    .unwrap();
    assert!(
        outbox
            .iter()
            .any(|i| format!("{:?}", i.message).contains("support@desk.example is connected"))
    );

    // A tampered link, a replayed callback and an expired link change nothing.
    let link = m.connect_link("google").await;
    let (status, _, _) = m.get(&link.replace("state=", "state=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let state = m.connect("google").await;
    let (status, _, _) = m
        .get(&format!("/mail/google/callback?code=c&state={state}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = m
        .get(&format!("/mail/google/callback?code=c&state={state}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed");
    // A sign-in that comes back to another browser (without this one's cookie) is refused.
    let state = m.connect("google").await;
    *m.cookie.lock().unwrap() = None;
    let (status, _, _) = m
        .get(&format!("/mail/google/callback?code=c&state={state}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another browser");
    let link = m.connect_link("google").await;
    m.t.clock.advance(Duration::minutes(11));
    let (status, _, _) = m.get(&link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "expired");
    assert_eq!(m.t.store.mailboxes_of(DeskId(1)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn forwarded_gmail_becomes_a_ticket_of_the_original_sender_and_replies_follow() {
    let m = MailTest::new().await;
    m.t.slack("T1", "U1", "C1", "channel").await;
    m.google_connected().await;
    m.gmail_history("1000", "1001", &[("m1", "t1")]).await;
    m.gmail_message("m1", "t1", &forwarded("fwd1")).await;
    let taken = m.app.poll_all(&m.t.desks).await;
    assert_eq!(taken, 1);
    let t = m.t.first_ticket().await.ticket;
    assert_eq!(t.source, Source::Email);
    assert!(
        t.description.starts_with("Printer on fire"),
        "{}",
        t.description
    );
    assert!(
        t.contact
            .as_ref()
            .unwrap()
            .label()
            .contains("jane@acme.example"),
        "{:?}",
        t.contact
    );
    assert_eq!(m.mailbox().await.cursor.as_deref(), Some("1001"));
    // Polling the same history again adds nothing.
    m.app.poll_all(&m.t.desks).await;
    let shown = text(&m.t.slack("T1", "U1", "C1", "show 1").await);
    assert_eq!(shown.matches("email:").count(), 1, "{shown}");

    // The customer replies in the thread after the ticket was completed: it reopens.
    m.t.slack("T1", "U1", "C1", "assign 1 <@U7>").await;
    m.t.slack("T1", "U7", "C1", "complete 1").await;
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/history"))
        .and(query_param("startHistoryId", "1001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "history": [{"id": "1002", "messagesAdded": [
                {"message": {"id": "m2", "threadId": "t1"}},
                {"message": {"id": "m3", "threadId": "t9"}},
                {"message": {"id": "m4", "threadId": "t1", "labelIds": ["DRAFT"]}}
            ]}],
            "historyId": "1002"
        })))
        .mount(&m.mock)
        .await;
    m.gmail_message(
        "m2",
        "t1",
        &reply(
            "r1@acme.example",
            "Jane Customer <jane@acme.example>",
            "Re: Printer on fire",
            "fwd1@agent.example",
            "It is burning again!",
        ),
    )
    .await;
    // Another email, tagged with the ticket's number in another thread.
    m.gmail_message(
        "m3",
        "t9",
        &reply(
            "r2@acme.example",
            "Bob <bob@acme.example>",
            "[#1] same printer",
            "unknown@x",
            "Me too.",
        ),
    )
    .await;
    // An agent's unsent draft in the thread is not mail.
    m.gmail_message(
        "m4",
        "t1",
        &reply(
            "d1@agent.example",
            "Agent <fwd1@agent.example>",
            "Re: Printer on fire",
            "jane@acme.example",
            "Half-written draft.",
        ),
    )
    .await;
    m.app.poll_all(&m.t.desks).await;
    let t = m.t.first_ticket().await.ticket;
    assert_eq!(t.status, Status::Open, "reopened by the customer's reply");
    // One message to the assignee, and one note in the card's thread, for the reply.
    let queued = m.t.queued().await;
    let told = (queued.iter())
        .filter(
            |o| matches!(o, Outgoing::DirectMessage { text, .. } if text.contains("open again")),
        )
        .count();
    assert_eq!(told, 1, "{queued:?}");
    let noted = (queued.iter())
        .filter(|o| matches!(o, Outgoing::UpdateCards { note: Some(n), .. } if n.contains("open again")))
        .count();
    assert_eq!(noted, 1, "{queued:?}");
    let shown = text(&m.t.slack("T1", "U1", "C1", "show 1").await);
    assert!(
        shown.contains("It is burning again!") && shown.contains("Me too."),
        "{shown}"
    );
    assert!(!shown.contains("Half-written"), "{shown}");
    assert!(
        !shown.contains("old text"),
        "quoted history is trimmed: {shown}"
    );
    let list = text(&m.t.slack("T1", "U1", "C1", "list all").await);
    assert!(list.contains("(1)"), "no new tickets: {list}");

    // Gmail forgets the cursor (404): recent mail is read again without duplicates.
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/history"))
        .and(query_param("startHistoryId", "1002"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&m.mock)
        .await;
    m.ok(
        "GET",
        "/gmail/v1/users/me/messages",
        json!({"messages": [{"id": "m3"}, {"id": "m2"}, {"id": "m1"}]}),
    )
    .await;
    m.app.poll_all(&m.t.desks).await;
    let shown = text(&m.t.slack("T1", "U1", "C1", "show 1").await);
    assert_eq!(shown.matches("email:").count(), 3, "{shown}");
}

#[tokio::test]
async fn an_access_token_refused_before_it_expires_is_refreshed_and_the_poll_goes_on() {
    let m = MailTest::new().await;
    m.t.slack("T1", "U1", "C1", "channel").await;
    m.google_connected().await;
    // Gmail refuses the (unexpired) token once; the token endpoint gives a new one.
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/history"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&m.mock)
        .await;
    m.ok(
        "GET",
        "/gmail/v1/users/me/history",
        json!({"history": [], "historyId": "1001"}),
    )
    .await;
    m.app.poll_all(&m.t.desks).await;
    assert!(m.mailbox().await.connected, "refreshed, not disconnected");
    let requests = m.mock.received_requests().await.unwrap_or_default();
    let refreshes = (requests.iter())
        .filter(|r| r.url.path() == "/google/token")
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count();
    assert_eq!(refreshes, 1);
    let histories = (requests.iter())
        .filter(|r| r.url.path() == "/gmail/v1/users/me/history")
        .count();
    assert_eq!(histories, 2);
}

#[tokio::test]
async fn a_revoked_grant_disconnects_the_mailbox_and_tells_the_desk_once() {
    let m = MailTest::new().await;
    m.t.slack("T1", "U1", "C1", "channel").await;
    m.google_connected().await;
    Mock::given(method("POST"))
        .and(path("/google/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})))
        .with_priority(1)
        .mount(&m.mock)
        .await;
    m.t.clock.advance(Duration::hours(2));
    m.app.poll_all(&m.t.desks).await;
    m.app.poll_all(&m.t.desks).await;
    let mb = m.mailbox().await;
    assert!(!mb.connected);
    let outbox = piraja::store::OutboxStore::outbox_due(
        &*m.t.store,
        m.t.clock.now() + Duration::days(1),
        100,
    )
    .await
    .unwrap();
    let told = outbox
        .iter()
        .filter(|i| format!("{:?}", i.message).contains("was disconnected"))
        .count();
    assert!(told <= 1);
    let connect = text(&m.t.slack("T1", "U1", "C1", "mailbox connect google").await);
    assert!(connect.contains("/mail/google/connect"), "{connect}");
}

#[tokio::test]
async fn outlook_connects_and_its_inbox_delta_becomes_tickets_with_the_rotated_token_kept() {
    let m = MailTest::new().await;
    m.outlook_connected().await;
    assert!(m.mailbox().await.cursor.unwrap().starts_with("since:"));
    let base = m.mock.uri();
    let mut first: Value =
        serde_json::from_str(&fixture("msgraph-messages-delta-first-page.json")).unwrap();
    first["@odata.nextLink"] = json!(format!(
        "{base}/me/mailFolders/inbox/messages/delta?$skiptoken=page2"
    ));
    let mut last: Value =
        serde_json::from_str(&fixture("msgraph-messages-delta-final-page.json")).unwrap();
    last["@odata.deltaLink"] = json!(format!(
        "{base}/me/mailFolders/inbox/messages/delta?$deltatoken=round2"
    ));
    m.graph_delta("inbox", Some(("$skiptoken", "page2")), 5, last)
        .await;
    m.graph_delta("inbox", None, 10, first).await;
    // The delta pages carry no bodies: each message is read whole.
    let message: Value = serde_json::from_str(&fixture("msgraph-message-get.json")).unwrap();
    for (i, id) in [
        "AAMkADNkNAAASq35xAAA=",
        "AQMkADNkNAAAVRMKAAAAA==",
        "AAMkADk0MGFkODE3LWEAAA=",
    ]
    .iter()
    .enumerate()
    {
        let mut msg = message.clone();
        msg["id"] = json!(id);
        msg["conversationId"] = json!(format!("conv-{i}"));
        msg["internetMessageId"] = json!(format!("<graph-{i}@contoso.example>"));
        m.ok("GET", &format!("/me/messages/{id}"), msg).await;
    }
    let taken = m.app.poll_all(&m.t.desks).await;
    assert_eq!(taken, 3);
    let list = text(&m.t.slack("T1", "U1", "C1", "list all").await);
    assert!(list.contains("(3)"), "{list}");
    let t = m.t.first_ticket().await.ticket;
    assert!(
        t.contact
            .unwrap()
            .label()
            .contains("adelev@contoso.onmicrosoft.com")
    );
    let cursor = m.mailbox().await.cursor.unwrap();
    let cursor: Value = serde_json::from_str(&cursor).unwrap();
    assert!(
        cursor["inbox"]
            .as_str()
            .unwrap()
            .ends_with("$deltatoken=round2"),
        "{cursor}"
    );
    // A link to another host is never followed with the token.
    let mut evil: Value =
        serde_json::from_str(&fixture("msgraph-messages-delta-final-page.json")).unwrap();
    evil["@odata.nextLink"] = json!("https://attacker.example/steal");
    m.graph_delta("inbox", Some(("$deltatoken", "round2")), 5, evil)
        .await;
    m.app.poll_all(&m.t.desks).await;
    assert_eq!(
        m.mailbox().await.cursor.unwrap(),
        serde_json::to_string(&cursor).unwrap(),
        "the cursor stays"
    );
    // The delta token expires (410): the folder is read again over the last two days, so mail
    // that came meanwhile is not lost, and the new delta goes on from there.
    Mock::given(method("GET"))
        .and(path("/me/mailFolders/inbox/messages/delta"))
        .and(query_param("$deltatoken", "round2"))
        .respond_with(ResponseTemplate::new(410))
        .with_priority(1)
        .mount(&m.mock)
        .await;
    let mut again: Value =
        serde_json::from_str(&fixture("msgraph-messages-delta-final-page.json")).unwrap();
    again["value"] = json!([{ "id": "while-expired" }]);
    again["@odata.deltaLink"] = json!(format!(
        "{base}/me/mailFolders/inbox/messages/delta?$deltatoken=round3"
    ));
    Mock::given(method("GET"))
        .and(path("/me/mailFolders/inbox/messages/delta"))
        .and(wiremock::matchers::query_param_contains(
            "$filter",
            "receivedDateTime ge",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(again))
        .with_priority(1)
        .mount(&m.mock)
        .await;
    let mut meanwhile = message.clone();
    meanwhile["id"] = json!("while-expired");
    meanwhile["conversationId"] = json!("conv-meanwhile");
    meanwhile["internetMessageId"] = json!("<meanwhile@contoso.example>");
    m.ok("GET", "/me/messages/while-expired", meanwhile).await;
    assert_eq!(
        m.app.poll_all(&m.t.desks).await,
        1,
        "the mail that came meanwhile"
    );
    let cursor: Value = serde_json::from_str(&m.mailbox().await.cursor.unwrap()).unwrap();
    assert!(
        cursor["inbox"]
            .as_str()
            .unwrap()
            .ends_with("$deltatoken=round3"),
        "{cursor}"
    );
}

#[tokio::test]
async fn outlook_replies_sent_from_the_mailbox_join_their_tickets_timeline_once() {
    let m = MailTest::new().await;
    m.outlook_connected().await;
    let base = m.mock.uri();
    let message: Value = serde_json::from_str(&fixture("msgraph-message-get.json")).unwrap();
    // The customer writes in: a ticket. The support team answers from Outlook; the answer is
    // in Sent Items, and a copy the team sent to itself is in the inbox as well.
    let mut asked = message.clone();
    asked["id"] = json!("in-1");
    asked["conversationId"] = json!("conv-1");
    asked["internetMessageId"] = json!("<ask@contoso.example>");
    asked["receivedDateTime"] = json!("2026-12-05T09:00:00Z");
    let mut answered = message.clone();
    answered["id"] = json!("sent-1");
    answered["conversationId"] = json!("conv-1");
    answered["internetMessageId"] = json!("<answer@contoso.example>");
    answered["receivedDateTime"] = json!("2026-12-05T09:05:00Z");
    answered["sentDateTime"] = json!("2026-12-05T09:05:00Z");
    answered["from"] =
        json!({"emailAddress": {"name": "Support", "address": "support@contoso.example"}});
    answered["body"] = json!({"contentType": "text", "content": "We are on it."});
    let mut copy = answered.clone();
    copy["id"] = json!("in-2");
    let delta = |folder: &str, items: Vec<Value>| {
        json!({
            "value": items,
            "@odata.deltaLink": format!("{base}/me/mailFolders/{folder}/messages/delta?$deltatoken={folder}2"),
        })
    };
    // First poll: the question in the inbox, the answer in Sent Items.
    m.graph_delta("inbox", None, 10, delta("inbox", vec![asked]))
        .await;
    m.graph_delta("sentitems", None, 10, delta("sentitems", vec![answered]))
        .await;
    m.app.poll_all(&m.t.desks).await;
    let shown = text(&m.t.slack("T1", "U1", "C1", "show 1").await);
    assert_eq!(shown.matches("We are on it.").count(), 1, "{shown}");
    assert!(shown.contains("support@contoso.example · email"), "{shown}");
    let t = m.t.first_ticket().await.ticket;
    assert!(
        t.first_response_at.is_some(),
        "the emailed answer is the first response"
    );
    // Next poll: the copy in the inbox is the same email, already in the timeline.
    m.graph_delta(
        "inbox",
        Some(("$deltatoken", "inbox2")),
        5,
        delta("inbox", vec![copy]),
    )
    .await;
    m.graph_delta(
        "sentitems",
        Some(("$deltatoken", "sentitems2")),
        5,
        delta("sentitems", vec![]),
    )
    .await;
    m.app.poll_all(&m.t.desks).await;
    let shown = text(&m.t.slack("T1", "U1", "C1", "show 1").await);
    assert_eq!(shown.matches("We are on it.").count(), 1, "{shown}");
    let list = text(&m.t.slack("T1", "U1", "C1", "list all").await);
    assert!(
        list.contains("(1)"),
        "our own answer makes no ticket: {list}"
    );
    let cursor: Value = serde_json::from_str(&m.mailbox().await.cursor.unwrap()).unwrap();
    assert!(
        cursor["sent"]
            .as_str()
            .unwrap()
            .ends_with("$deltatoken=sentitems2"),
        "{cursor}"
    );
    assert!(
        cursor["inbox"]
            .as_str()
            .unwrap()
            .ends_with("$deltatoken=inbox2"),
        "{cursor}"
    );
}

#[tokio::test]
async fn an_outlook_backlog_of_more_pages_than_one_poll_reads_goes_on_at_the_next_poll() {
    let m = MailTest::new().await;
    m.outlook_connected().await;
    let base = m.mock.uri();
    // Every page of the inbox's delta says there is another (a long backlog).
    let more = json!({
        "value": [],
        "@odata.nextLink": format!("{base}/me/mailFolders/inbox/messages/delta?$skiptoken=more"),
    });
    m.graph_delta("inbox", None, 5, more).await;
    let done = json!({
        "value": [],
        "@odata.deltaLink": format!("{base}/me/mailFolders/sentitems/messages/delta?$deltatoken=s2"),
    });
    m.graph_delta("sentitems", None, 5, done).await;
    m.app.poll_all(&m.t.desks).await;
    // The next poll starts after the pages read, not again from the first.
    let cursor: Value = serde_json::from_str(&m.mailbox().await.cursor.unwrap()).unwrap();
    assert!(
        cursor["inbox"]
            .as_str()
            .unwrap()
            .ends_with("$skiptoken=more"),
        "{cursor}"
    );
}

#[tokio::test]
async fn a_gmail_message_too_large_to_read_whole_becomes_a_ticket_from_its_text() {
    let m = MailTest::new().await;
    m.google_connected().await;
    m.gmail_history("1000", "1001", &[("big", "t7")]).await;
    // Eleven megabytes whole (a log file attached)…
    let raw = format!(
        "Message-ID: <big@acme.example>\nFrom: Jane Customer <jane@acme.example>\nTo: support@desk.example\n\
         Subject: Printer log\nDate: Tue, 1 Dec 2026 09:00:00 +0000\nContent-Type: text/plain\n\n{}\n",
        "x".repeat(11 * 1024 * 1024)
    );
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/messages/big"))
        .and(query_param("format", "raw"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "big", "threadId": "t7", "raw": URL_SAFE_NO_PAD.encode(raw)}),
        ))
        .mount(&m.mock)
        .await;
    // …and as Gmail's `full` form gives it: headers, the text decoded, the attachment by id.
    let text = URL_SAFE_NO_PAD.encode("The printer log is attached; it stops at page 3.");
    let full = json!({"id": "big", "threadId": "t7", "payload": {
        "mimeType": "multipart/mixed",
        "headers": [
            {"name": "Message-ID", "value": "<big@acme.example>"},
            {"name": "From", "value": "Jane Customer <jane@acme.example>"},
            {"name": "To", "value": "support@desk.example"},
            {"name": "Subject", "value": "Printer log\r\nBcc: injected@x"},
            {"name": "Date", "value": "Tue, 1 Dec 2026 09:00:00 +0000"},
            {"name": "Content-Type", "value": "multipart/mixed; boundary=b"}
        ],
        "parts": [
            {"mimeType": "text/plain", "filename": "", "body": {"data": text}},
            {"mimeType": "text/plain", "filename": "printer.log", "body": {"attachmentId": "a1", "size": 11534336}}
        ]
    }});
    Mock::given(method("GET"))
        .and(path("/gmail/v1/users/me/messages/big"))
        .and(query_param("format", "full"))
        .respond_with(ResponseTemplate::new(200).set_body_json(full))
        .mount(&m.mock)
        .await;
    assert_eq!(m.app.poll_all(&m.t.desks).await, 1);
    let t = m.t.first_ticket().await;
    assert!(
        t.ticket.description.contains("stops at page 3"),
        "{}",
        t.ticket.description
    );
    assert!(
        t.ticket
            .contact
            .unwrap()
            .label()
            .contains("jane@acme.example")
    );
}

#[tokio::test]
async fn a_forward_sent_from_the_support_mailbox_itself_makes_no_ticket() {
    let m = MailTest::new().await;
    m.google_connected().await;
    m.gmail_history("1000", "1001", &[("m1", "t1")]).await;
    // An agent forwards a vendor's email from the support mailbox (in its Sent mail).
    let ours = forwarded("fwd9").replace(
        "From: Agent Smith <agent@desk.example>",
        "From: Support <Support@Desk.example>",
    );
    m.gmail_message("m1", "t1", &ours).await;
    m.app.poll_all(&m.t.desks).await;
    let list = text(&m.t.slack("T1", "U1", "C1", "list all").await);
    assert!(list.contains("(0)"), "{list}");
}

#[tokio::test]
async fn linking_a_thread_to_a_resolved_ticket_neither_reopens_it_nor_pings_anyone() {
    let m = MailTest::new().await;
    m.google_connected().await;
    m.t.slack("T1", "U1", "C1", "new Printer trouble").await;
    m.t.slack("T1", "U1", "C1", "assign 1 <@U7>").await;
    m.t.slack("T1", "U7", "C1", "complete 1").await;
    m.ok(
        "GET",
        "/gmail/v1/users/me/threads/18c2b1a0f3e4d5c6",
        json!({"id": "18c2b1a0f3e4d5c6", "messages": [{"id": "g1"}]}),
    )
    .await;
    let customer = reply(
        "g1@acme.example",
        "Jane Customer <jane@acme.example>",
        "Printer",
        "none@x",
        "The printer jams.",
    );
    m.gmail_message("g1", "18c2b1a0f3e4d5c6", &customer).await;
    let linked = m.t.slack("T1", "U7", "C1", "link 1 18c2b1a0f3e4d5c6").await;
    assert!(text(&linked).contains("1 message(s)"), "{}", text(&linked));
    // The customer's old message is history, not a new reply: the ticket stays completed.
    let t = m.t.first_ticket().await;
    assert_eq!(t.ticket.status, Status::Completed);
    let pinged = (m.t.queued().await.into_iter())
        .filter(
            |o| matches!(o, Outgoing::DirectMessage { text, .. } if text.contains("open again")),
        )
        .count();
    assert_eq!(pinged, 0);
}

#[tokio::test]
async fn link_attaches_a_gmail_thread_by_url_and_an_outlook_conversation_and_refuses_other_forms() {
    let m = MailTest::new().await;
    m.google_connected().await;
    m.t.slack("T1", "U1", "C1", "new Printer trouble").await;
    m.ok(
        "GET",
        "/gmail/v1/users/me/threads/18c2b1a0f3e4d5c6",
        json!({"id": "18c2b1a0f3e4d5c6", "messages": [{"id": "g1"}, {"id": "g2"}]}),
    )
    .await;
    m.gmail_message(
        "g1",
        "18c2b1a0f3e4d5c6",
        &reply(
            "g1@acme.example",
            "Jane Customer <jane@acme.example>",
            "Printer",
            "none@x",
            "The printer jams.",
        ),
    )
    .await;
    m.gmail_message(
        "g2",
        "18c2b1a0f3e4d5c6",
        &reply(
            "g2@desk.example",
            "Support <support@desk.example>",
            "Re: Printer",
            "g1@acme.example",
            "We are on it.",
        ),
    )
    .await;
    let linked =
        m.t.slack(
            "T1",
            "U1",
            "C1",
            "link 1 https://mail.google.com/mail/u/0/#inbox/18c2b1a0f3e4d5c6",
        )
        .await;
    assert!(text(&linked).contains("2 message(s)"), "{}", text(&linked));
    let t = m.t.first_ticket().await.ticket;
    assert!(t.contact.unwrap().label().contains("jane@acme.example"));
    // The reply from the support mailbox counted as a response.
    assert!(t.first_response_at.is_some());
    // Linking again adds nothing.
    let again = text(&m.t.slack("T1", "U1", "C1", "link 1 18c2b1a0f3e4d5c6").await);
    assert!(again.contains("0 new"), "{again}");
    let bad = m.t.slack("T1", "U1", "C1", "link 1 not-a-thread").await;
    assert!(matches!(bad, Reply::Error(_)));
    assert!(text(&bad).contains("Message-ID"), "{}", text(&bad));
    assert!(text(&bad).starts_with("#1: "), "{}", text(&bad));
    // No Outlook mailbox on this desk: the conversation form says to connect one.
    let outlook = text(&m.t.slack("T1", "U1", "C1", "link 1 AAQkADOUpag6yWs=").await);
    assert!(outlook.contains("mailbox connect"), "{outlook}");
    assert!(outlook.starts_with("#1: "), "{outlook}");
    let _ = Provider::Google;
}

#[tokio::test]
async fn link_takes_outlook_web_links_as_graph_ids_for_a_message_or_a_conversation() {
    let m = MailTest::new().await;
    m.outlook_connected().await;
    m.t.slack("T1", "U1", "C1", "new Printer trouble").await;
    m.t.slack("T1", "U1", "C1", "new Scanner trouble").await;
    // Outlook on the web shows EWS ids (`/`, `+`); Graph answers to the URL-safe form only.
    m.ok(
        "GET",
        "/me/messages/AAMkADk0MGFk-ODE3_LWEAAA=",
        json!({"id": "AAMkADk0MGFk-ODE3_LWEAAA=", "conversationId": "AAQkADOUpag6-yWs="}),
    )
    .await;
    let message: Value = serde_json::from_str(&fixture("msgraph-message-get.json")).unwrap();
    for (conversation, n) in [("AAQkADOUpag6-yWs=", 1), ("AAQkADOUpag6_zZz=", 2)] {
        let mut msg = message.clone();
        msg["id"] = json!(format!("AAMkADmsg{n}="));
        msg["conversationId"] = json!(conversation);
        msg["internetMessageId"] = json!(format!("<graph-link-{n}@contoso.example>"));
        Mock::given(method("GET"))
            .and(path("/me/messages"))
            .and(query_param(
                "$filter",
                format!("conversationId eq '{conversation}'"),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [msg]})))
            .mount(&m.mock)
            .await;
    }
    // A message's link (ItemID): its conversation is looked up, then read.
    let item = text(
        &m.t.slack(
            "T1",
            "U1",
            "C1",
            "link 1 https://outlook.office365.com/owa/?ItemID=AAMkADk0MGFk%2FODE3%2BLWEAAA%3D&exvsurl=1&viewmodel=ReadMessageItem",
        )
        .await,
    );
    assert!(item.contains("1 message(s)"), "{item}");
    // A conversation's link (the new Outlook's `/id/AAQk…`): read at once.
    let conversation = text(
        &m.t.slack(
            "T1",
            "U1",
            "C1",
            "link 2 https://outlook.office.com/mail/inbox/id/AAQkADOUpag6%2BzZz%3D",
        )
        .await,
    );
    assert!(conversation.contains("1 message(s)"), "{conversation}");
}

#[tokio::test]
async fn a_hostile_email_is_skipped_and_the_next_one_still_arrives() {
    let m = MailTest::new().await;
    m.google_connected().await;
    m.ok("GET", "/gmail/v1/users/me/history", json!({
        "history": [{"id": "1001", "messagesAdded": [
            {"message": {"id": "huge"}}, {"message": {"id": "deep"}}, {"message": {"id": "fine"}}
        ]}],
        "historyId": "1001"
    }))
    .await;
    let huge = format!(
        "From: a@b.example\nSubject: big\n\n{}",
        "x".repeat(11 * 1024 * 1024)
    );
    m.gmail_message("huge", "t1", &huge).await;
    let mut deep = String::from(
        "From: evil@b.example\nSubject: deep\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n",
    );
    for i in 0..300 {
        deep.push_str(&format!(
            "--b{i}\nContent-Type: multipart/mixed; boundary=\"b{}\"\n\n",
            i + 1
        ));
    }
    m.gmail_message("deep", "t2", &deep).await;
    m.gmail_message(
        "fine",
        "t3",
        &reply(
            "ok@acme.example",
            "Jane <jane@acme.example>",
            "Still here",
            "none@x",
            "Hello <@U1> and <!channel>, see <https://evil.example|your invoice>.",
        ),
    )
    .await;
    m.app.poll_all(&m.t.desks).await;
    let list = text(&m.t.slack("T1", "U1", "C1", "list all").await);
    assert!(list.contains("#"), "{list}");
    let all =
        m.t.store
            .list(DeskId(1), &Default::default(), 100)
            .await
            .unwrap()
            .0;
    let fine = all
        .iter()
        .find(|r| r.ticket.description.starts_with("Still here"))
        .unwrap_or_else(|| panic!("{all:?}"));
    // The sender's markup is shown, not acted on: no mention, no disguised link.
    let d = &fine.ticket.description;
    assert!(
        d.contains("‹@U1>") && d.contains("‹!channel>") && d.contains("‹https://evil"),
        "{d}"
    );
    assert_eq!(m.mailbox().await.cursor.as_deref(), Some("1001"));
}

/// Fuzzing the MIME intake: random bytes and MIME-shaped text never panic the parser.
#[test]
fn random_and_mime_shaped_bytes_never_panic_the_parser() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let bytes = prop::collection::vec(any::<u8>(), 0..2000);
    let line = prop_oneof![
        Just("From: \"A, B\" <a@b.example>".to_owned()),
        Just("Subject: =?UTF-8?B?w6k=?= [#3]".to_owned()),
        Just("Content-Type: multipart/alternative; boundary=x".to_owned()),
        Just("Content-Type: text/html; charset=iso-8859-1".to_owned()),
        Just("Content-Type: message/rfc822".to_owned()),
        Just("Content-Transfer-Encoding: quoted-printable".to_owned()),
        Just("Content-Transfer-Encoding: base64".to_owned()),
        Just("--x".to_owned()),
        Just("---------- Forwarded message ---------".to_owned()),
        Just("On Mon, 1 Dec 2026, Bob wrote:".to_owned()),
        Just("".to_owned()),
        "\\PC{0,60}",
    ];
    let text = prop::collection::vec(line, 0..60).prop_map(|l| l.join("\r\n"));
    for _ in 0..300 {
        let raw = bytes.new_tree(&mut runner).unwrap().current();
        let _ = piraja::core::mail::parse_raw(&raw);
        let mime = text.new_tree(&mut runner).unwrap().current();
        let _ = piraja::core::mail::parse_raw(mime.as_bytes());
        let _ = piraja::core::mail::parse_thread_ref(&mime);
        let _ = piraja::core::mail::ticket_tag(&mime);
    }
}
