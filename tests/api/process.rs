//! The real binary, as an operator runs it: `kill -9` in the middle of a burst loses no
//! acknowledged ticket; SIGTERM exits 0; secrets never reach logs, metrics or error pages;
//! `piraja backup` copies a live database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use piraja::slack::verify;
use serde_json::Value;

const SIGNING: &str = "signing-secret-4b1d9e7c2f";
const BOT: &str = "xoxb-bot-token-8c3e5a1f9d";
const CLIENT_SECRET: &str = "client-secret-0a9b8c7d6e";
const DISCORD_BOT: &str = "discord-bot-token-5e4d3c2b1a";
const GOOGLE_SECRET: &str = "google-secret-1f2e3d4c5b";
const KEY: &str = "bWFzdGVyLWtleS10aGF0LWlzLTMyLWJ5dGVzLWxvbmc=";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with a clean environment and every secret set.
fn piraja(dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_piraja"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PIRAJA_BIND", format!("127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("piraja.db").display()),
        )
        .env("PIRAJA_SECRET_KEY", KEY)
        .env("SLACK_SIGNING_SECRET", SIGNING)
        .env("SLACK_BOT_TOKEN", BOT)
        .env("SLACK_CLIENT_ID", "1.2")
        .env("SLACK_CLIENT_SECRET", CLIENT_SECRET)
        // Nothing listens there: deliveries fail and are retried, which must not leak tokens.
        .env("SLACK_API_URL", "http://127.0.0.1:9/api")
        .env(
            "DISCORD_PUBLIC_KEY",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        )
        .env("DISCORD_APPLICATION_ID", "1111")
        .env("DISCORD_BOT_TOKEN", DISCORD_BOT)
        .env("DISCORD_API_URL", "http://127.0.0.1:9")
        .env("GOOGLE_CLIENT_ID", "google-id")
        .env("GOOGLE_CLIENT_SECRET", GOOGLE_SECRET)
        .env("PIRAJA_RATE_USER", "1000000")
        .env("PIRAJA_RATE_CREATE", "1000000")
        .env("PIRAJA_RATE_DESK", "1000000")
        .env("RUST_LOG", "debug");
    cmd
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

async fn start(dir: &Path, name: &str) -> Server {
    let port = free_port();
    let log = dir.join(format!("{name}.log"));
    let child = piraja(dir, port)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, port, log }
}

/// A signed `/ticket <text>` as Slack sends it.
async fn command(
    http: &reqwest::Client,
    port: u16,
    text: &str,
    trigger: &str,
) -> Result<String, reqwest::Error> {
    let body = serde_urlencoded::to_string([
        ("team_id", "T1"),
        ("user_id", "U1"),
        ("user_name", "ann"),
        ("channel_id", "C1"),
        ("command", "/ticket"),
        ("text", text),
        ("trigger_id", trigger),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp();
    let sig = verify::sign(SIGNING.as_bytes(), ts, body.as_bytes());
    http.post(format!("http://127.0.0.1:{port}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", sig)
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_acknowledged_ticket_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "first").await;
    let http = reqwest::Client::new();
    let port = server.port;
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..300 {
        let http = http.clone();
        burst.spawn(async move {
            let answer = command(
                &http,
                port,
                &format!("new Burst ticket {i}"),
                &format!("trigger-{i}"),
            )
            .await;
            (i, answer)
        });
    }
    // Kill it while the burst is under way.
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let mut killed = false;
    while let Some(done) = burst.join_next().await {
        let (i, answer) = done.unwrap();
        if let Ok(text) = answer {
            let v: Value = serde_json::from_str(&text).unwrap();
            let t = v["text"].as_str().unwrap();
            assert!(t.starts_with("Created #"), "{t}");
            let no: i64 = t["Created #".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            acked.push((i, no));
        }
        if !killed && acked.len() >= 40 {
            server.child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    server.child.wait().unwrap();
    assert!(killed && acked.len() >= 40, "acknowledged {}", acked.len());

    // Restarted on the same database: every acknowledged ticket is there, numbered without
    // gaps or duplicates.
    let mut again = start(dir.path(), "second").await;
    let export = piraja(dir.path(), 0)
        .args(["export", "--desk", "slack:T1", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    // The bare team id names the same desk.
    let bare = piraja(dir.path(), 0)
        .args(["export", "--desk", "T1", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(bare.stdout, export.stdout);
    let tickets: Value = serde_json::from_slice(&export.stdout).unwrap();
    let tickets = tickets.as_array().unwrap();
    let nos: Vec<i64> = tickets
        .iter()
        .map(|t| t["ticket"]["no"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=tickets.len() as i64).collect();
    assert_eq!(nos, expected, "numbers run 1..n without gaps");
    let mut descriptions: Vec<&str> = tickets
        .iter()
        .map(|t| t["ticket"]["description"].as_str().unwrap())
        .collect();
    descriptions.sort_unstable();
    let before = descriptions.len();
    descriptions.dedup();
    assert_eq!(descriptions.len(), before, "no duplicates");
    for (i, no) in &acked {
        let t = &tickets[(*no - 1) as usize];
        assert_eq!(t["ticket"]["description"], format!("Burst ticket {i}"));
    }
    // A Slack retry of an acknowledged command (same trigger id) does not create another.
    let (i, no) = acked[0];
    let retried = command(
        &http,
        again.port,
        &format!("new Burst ticket {i}"),
        &format!("trigger-{i}"),
    )
    .await
    .unwrap();
    assert!(retried.contains(&format!("#{no}")), "{retried}");

    // SIGTERM: stop accepting, finish, exit 0.
    sigterm(&again.child);
    let status = wait_exit(&mut again.child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&again.log).unwrap();
    assert!(log.contains("Stopped."), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_metrics_or_error_pages_and_backup_copies_a_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "secrets").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut seen = String::new();
    // Good and bad requests, error pages, the install page, metrics.
    for i in 0..5 {
        seen.push_str(
            &command(
                &http,
                server.port,
                &format!("new Secret test {i}"),
                &format!("s-{i}"),
            )
            .await
            .unwrap(),
        );
    }
    seen.push_str(
        &command(&http, server.port, "channel", "s-channel")
            .await
            .unwrap(),
    );
    let bad = http
        .post(format!("{base}/slack/commands"))
        .header("x-slack-request-timestamp", "1")
        .header("x-slack-signature", format!("v0={BOT}"))
        .header("authorization", format!("Bearer {BOT}"))
        .body(format!("token={BOT}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    seen.push_str(&bad.text().await.unwrap());
    for path in [
        "/nope",
        "/slack/install",
        "/slack/oauth/callback?state=x&code=y",
        "/metrics",
    ] {
        seen.push_str(
            &http
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let d = http
        .post(format!("{base}/discord/interactions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 401);
    seen.push_str(&d.text().await.unwrap());
    // Let the outbox fail a delivery or two against the dead API.
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A backup of the live database holds the same tickets.
    let copy = dir.path().join("copy.db");
    let out = piraja(dir.path(), 0)
        .arg("backup")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = piraja(dir.path(), 0)
        .arg("backup")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    let restored = piraja::store::SqliteStore::open(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    use piraja::store::{DeskStore as _, TicketStore as _};
    let desk = restored
        .desk_of_surface(&piraja::core::people::SurfaceRef::new(
            piraja::core::people::Platform::Slack,
            "T1",
        ))
        .await
        .unwrap()
        .unwrap();
    let (tickets, total) = restored.list(desk, &Default::default(), 100).await.unwrap();
    assert_eq!(total, 5);
    assert!(
        tickets
            .iter()
            .any(|t| t.ticket.description == "Secret test 4")
    );

    // `piraja check` prints which integrations are on, and no secret.
    let check = piraja(dir.path(), 0).arg("check").output().unwrap();
    assert!(check.status.success());
    seen.push_str(&String::from_utf8_lossy(&check.stdout));
    seen.push_str(&String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("Slack is on"));

    sigterm(&server.child);
    assert!(wait_exit(&mut server.child, Duration::from_secs(20)).success());
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug logs were on"
    );
    seen.push_str(&log);
    for secret in [SIGNING, BOT, CLIENT_SECRET, DISCORD_BOT, GOOGLE_SECRET, KEY] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn discord_register_needs_no_public_key_and_waits_out_a_429() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let mock = MockServer::start().await;
    let commands = "/applications/1111/commands";
    Mock::given(method("PUT"))
        .and(path(commands))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            serde_json::json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(method("PUT"))
        .and(path(commands))
        .and(header(
            "authorization",
            format!("Bot {DISCORD_BOT}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!([{"name": "ticket"}])),
        )
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_piraja"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("p.db").display()),
        )
        .env("DISCORD_APPLICATION_ID", "1111")
        .env("DISCORD_BOT_TOKEN", DISCORD_BOT)
        .env("DISCORD_API_URL", mock.uri())
        .current_dir(dir.path())
        .args(["discord", "register"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "Registered /ticket globally.");
    let puts = mock.received_requests().await.unwrap_or_default().len();
    assert_eq!(puts, 2, "one 429, then the registration");
}
