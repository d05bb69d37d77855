//! Piraja's benchmark: a load generator of signed Slack and Discord requests against the real
//! binary and against a floor (a bare axum handler that only verifies the signature), a seeder
//! for large databases, and timings of the queries big desks run. See BENCHMARKS.md.
//!
//!   cargo bench --bench load -- load --target slack-new --concurrency 64 --seconds 30
//!   cargo bench --bench load -- seed --db /tmp/big.db --desks 1000 --tickets 1000000
//!   cargo bench --bench load -- queries --db /tmp/big.db
//!
//! Loopback only: nothing here reaches the network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::{Parser, Subcommand, ValueEnum};
use ed25519_dalek::{Signer, SigningKey};
use piraja::core::ticket::DeskId;
use piraja::store::{ContactStore, SlaStore, SqliteStore, TicketStore};
use serde_json::json;

const SIGNING: &str = "bench-signing-secret";

#[derive(Parser)]
#[command(name = "load", about = "Piraja's benchmark (see BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Signed requests at a concurrency for a time, against the floor and the real server.
    Load {
        #[arg(long, value_enum, default_value_t = Target::SlackNew)]
        target: Target,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Use this database (seeded or not) instead of a fresh one.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Skip the floor run.
        #[arg(long)]
        no_floor: bool,
        /// Build and sign the requests before the clock starts, as the platform does on its own
        /// machines: its signing (Ed25519 for Discord, ~20 µs a request here) then does not
        /// take the shared cores from the server. Up to `PRESIGNED_PER_SECOND` a second of the
        /// run, one set for the floor's run and the server's; any beyond are built during the
        /// run, and counted. Runs of at most `MAX_PRESIGNED_SECONDS`.
        #[arg(long)]
        presign: bool,
    },
    /// Fill a database with desks, tickets with events, contacts and organizations.
    Seed {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 1000)]
        desks: i64,
        #[arg(long, default_value_t = 1_000_000)]
        tickets: i64,
    },
    /// Time one desk's digest, `/ticket list`, and a 10,000-ticket organization's history.
    Queries {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Start-up time and idle memory of the server on a database.
    Startup {
        #[arg(long)]
        db: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Target {
    /// `/ticket new …` from Slack.
    SlackNew,
    /// `/ticket show 1` from Slack.
    SlackShow,
    /// A card button ("Start" / "Reopen") from Slack.
    SlackClick,
    /// `/ticket new` from Discord.
    DiscordNew,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; ignore it.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let cli = Cli::parse_from(args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.command {
            Cmd::Load {
                target,
                concurrency,
                seconds,
                db,
                no_floor,
                presign,
            } => load(target, concurrency, seconds, db, no_floor, presign).await,
            Cmd::Seed { db, desks, tickets } => seed(&db, desks, tickets).await,
            Cmd::Queries { db, runs } => queries(&db, runs).await,
            Cmd::Startup { db } => startup(&db).await,
        }
    })
}

/// The Discord application's key pair. Made once: making a key derives its public half (a
/// scalar multiplication), which per request cost the load generator, and the floor, CPU
/// that the two cores share with the server under test.
fn discord_key() -> &'static SigningKey {
    static KEY: std::sync::LazyLock<SigningKey> =
        std::sync::LazyLock::new(|| SigningKey::from_bytes(&[7; 32]));
    &KEY
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .unwrap_or(0)
}

/// The real binary on `db`, with Slack and Discord on and a local stand-in for their APIs.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(db: &Path, api: &str) -> anyhow::Result<(Server, Duration)> {
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_piraja"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PIRAJA_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env(
            "PIRAJA_SECRET_KEY",
            "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtMzI=",
        )
        .env("SLACK_SIGNING_SECRET", SIGNING)
        .env("SLACK_BOT_TOKEN", "xoxb-bench")
        .env("SLACK_API_URL", api)
        .env(
            "DISCORD_PUBLIC_KEY",
            hex::encode(discord_key().verifying_key().to_bytes()),
        )
        .env("DISCORD_APPLICATION_ID", "1")
        .env("DISCORD_BOT_TOKEN", "bench")
        .env("DISCORD_API_URL", api)
        .env("PIRAJA_RATE_USER", "1000000")
        .env("PIRAJA_RATE_CREATE", "1000000")
        .env("PIRAJA_RATE_DESK", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let server = Server { child, port };
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok((server, started.elapsed()));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A stand-in for Slack's and Discord's APIs: answers every call at once. Returns its address
/// and the count of calls it answered.
async fn stub_api() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    // Every post gets its own message id, as on the real platforms.
    let next = Arc::new(AtomicU64::new(1));
    let calls = next.clone();
    let app = axum::Router::new().fallback(move || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        async move {
            axum::Json(json!({ "ok": true, "ts": format!("1700000000.{n:06}"), "channel": "C1", "id": n.to_string() }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{addr}"), calls))
}

/// The floor: verifies the signature and answers a constant, like the real endpoint's first step.
async fn floor() -> anyhow::Result<u16> {
    async fn slack(headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        match piraja::slack::verify::verify(
            SIGNING.as_bytes(),
            h("x-slack-request-timestamp"),
            h("x-slack-signature"),
            &body,
            chrono::Utc::now(),
        ) {
            Ok(()) => (
                StatusCode::OK,
                "{\"response_type\":\"ephemeral\",\"text\":\"ok\"}",
            ),
            Err(_) => (StatusCode::UNAUTHORIZED, "no"),
        }
    }
    async fn discord(headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let key = discord_key().verifying_key();
        match piraja::discord::verify::verify(
            &key,
            h("x-signature-timestamp"),
            h("x-signature-ed25519"),
            &body,
            chrono::Utc::now(),
        ) {
            Ok(()) => (StatusCode::OK, "{\"type\":4,\"data\":{\"content\":\"ok\"}}"),
            Err(_) => (StatusCode::UNAUTHORIZED, "no"),
        }
    }
    let app = axum::Router::new()
        .route("/slack/commands", post(slack))
        .route("/slack/interactions", post(slack))
        .route("/discord/interactions", post(discord));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

/// One request of `target`, unique per `n`: its path, content type, body and headers.
fn request(target: Target, n: u64) -> Request {
    let ts = chrono::Utc::now().timestamp();
    match target {
        Target::SlackNew | Target::SlackShow => {
            let text = if target == Target::SlackNew {
                format!("new high Printer {n} is on fire")
            } else {
                "show 1".to_owned()
            };
            let team = format!("T{}", n % 100);
            let body = serde_urlencoded::to_string([
                ("team_id", team.as_str()),
                ("user_id", "U1"),
                ("user_name", "bench"),
                ("channel_id", "C1"),
                ("command", "/ticket"),
                ("text", text.as_str()),
                ("trigger_id", &format!("bench.{n}.{ts}")),
                ("response_url", "http://127.0.0.1:9/respond"),
            ])
            .unwrap_or_default()
            .into_bytes();
            let sig = piraja::slack::verify::sign(SIGNING.as_bytes(), ts, &body);
            (
                "/slack/commands",
                "application/x-www-form-urlencoded",
                body,
                vec![
                    ("x-slack-request-timestamp", ts.to_string()),
                    ("x-slack-signature", sig),
                ],
            )
        }
        Target::SlackClick => {
            // Request n clicks ticket #(n / 100 % 10 + 1) of workspace n % 100 (a thousand
            // tickets in all), and each ticket goes round open → in progress → completed →
            // open, so every click is a change the card's buttons allow. (Choosing the button
            // by n's parity alone, on ticket #1 only, gave each workspace one button for good:
            // all but its first click were refused or changed nothing.)
            let ticket = n / 100 % 10 + 1;
            let action = ["start", "complete", "reopen"][(n / 1000 % 3) as usize];
            let payload = json!({
                "type": "block_actions", "team": {"id": format!("T{}", n % 100)}, "user": {"id": "U1", "name": "bench"},
                "channel": {"id": "C1"}, "response_url": "http://127.0.0.1:9/respond",
                // A click on a card in the channel, as Slack describes one.
                "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1", "is_ephemeral": false},
                "actions": [{"action_id": action, "value": ticket.to_string(), "type": "button"}]
            });
            let body = serde_urlencoded::to_string([("payload", payload.to_string())])
                .unwrap_or_default()
                .into_bytes();
            let sig = piraja::slack::verify::sign(SIGNING.as_bytes(), ts, &body);
            (
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                body,
                vec![
                    ("x-slack-request-timestamp", ts.to_string()),
                    ("x-slack-signature", sig),
                ],
            )
        }
        Target::DiscordNew => {
            let body = json!({
                "id": format!("{}", 1_000_000_000 + n), "application_id": "1", "type": 2, "token": "t",
                "guild_id": format!("{}", 900 + n % 100), "channel_id": "5",
                "member": {"user": {"id": "42", "username": "bench"}, "permissions": "32"},
                "data": {"name": "ticket", "options": [{"type": 1, "name": "new", "options": [
                    {"type": 3, "name": "priority", "value": "high"},
                    {"type": 3, "name": "description", "value": format!("Printer {n} is on fire")}
                ]}]}
            })
            .to_string()
            .into_bytes();
            let ts = ts.to_string();
            let mut message = ts.as_bytes().to_vec();
            message.extend_from_slice(&body);
            let sig = hex::encode(discord_key().sign(&message).to_bytes());
            (
                "/discord/interactions",
                "application/json",
                body,
                vec![("x-signature-timestamp", ts), ("x-signature-ed25519", sig)],
            )
        }
    }
}

/// How many requests a second of the run `--presign` builds beforehand: more than any
/// server run here has made (show: ~20,000), and about a Discord floor's.
const PRESIGNED_PER_SECOND: u64 = 25_000;

/// The longest run `--presign` takes: its requests are signed before the floor's run and the
/// server's, and must still be fresh (five minutes) when the server's run ends.
const MAX_PRESIGNED_SECONDS: u64 = 120;

type Request = (
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<(&'static str, String)>,
);

/// Requests `0..count` of `target`, built (and signed) on two threads.
fn presigned(target: Target, count: u64) -> Vec<Request> {
    let half = count / 2;
    std::thread::scope(|s| {
        let first = s.spawn(move || (0..half).map(|n| request(target, n)).collect::<Vec<_>>());
        let second: Vec<Request> = (half..count).map(|n| request(target, n)).collect();
        let mut all = first.join().unwrap_or_default();
        all.extend(second);
        all
    })
}

/// Results of one run.
struct Run {
    /// Requests built during the run (past the presigned ones).
    built_during: u64,
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<u32>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }
}

/// Drives `target` for `seconds`, sending the requests in `ready` first (`--presign`; empty
/// otherwise) and building the rest as it goes.
async fn drive(
    port: u16,
    target: Target,
    concurrency: usize,
    seconds: u64,
    ready: &Arc<Vec<Request>>,
) -> Run {
    let presign = !ready.is_empty();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let built_during = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, counter, errors) = (http.clone(), counter.clone(), errors.clone());
        let (ready, built_during) = (ready.clone(), built_during.clone());
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (path, ct, body, headers) = match ready.get(n as usize) {
                    Some(r) => r.clone(),
                    None => {
                        if presign {
                            built_during.fetch_add(1, Ordering::Relaxed);
                        }
                        request(target, n)
                    }
                };
                let mut rq = http
                    .post(format!("http://127.0.0.1:{port}{path}"))
                    .header("content-type", ct)
                    .body(body);
                for (k, v) in headers {
                    rq = rq.header(k, v);
                }
                let t = Instant::now();
                let ok = match rq.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        });
    }
    let mut latencies = Vec::new();
    while let Some(Ok(l)) = tasks.join_next().await {
        latencies.extend(l);
    }
    latencies.sort_unstable();
    Run {
        built_during: built_during.load(Ordering::Relaxed),
        requests: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        latencies,
    }
}

fn row(name: &str, r: &Run, floor: Option<&Run>) {
    let ratio = floor.map_or("—".to_owned(), |f| {
        format!("{:.0}%", 100.0 * r.rps() / f.rps().max(1.0))
    });
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {ratio} |",
        r.rps(),
        r.pct(0.5),
        r.pct(0.9),
        r.pct(0.99),
        r.pct(1.0),
        r.errors
    );
}

async fn load(
    target: Target,
    concurrency: usize,
    seconds: u64,
    db: Option<PathBuf>,
    no_floor: bool,
    presign: bool,
) -> anyhow::Result<()> {
    // Both platforms refuse a signature more than five minutes old.
    if presign && seconds > MAX_PRESIGNED_SECONDS {
        anyhow::bail!(
            "--presign signs before the floor's run and the server's: keep runs to {MAX_PRESIGNED_SECONDS} s, or the last requests are stale"
        );
    }
    // One set serves the floor's run and the server's: the floor keeps nothing.
    let ready: Arc<Vec<Request>> = Arc::new(if presign {
        tokio::task::spawn_blocking(move || presigned(target, seconds * PRESIGNED_PER_SECOND))
            .await?
    } else {
        Vec::new()
    });
    let dir = tempfile::tempdir()?;
    let db = db.unwrap_or_else(|| dir.path().join("bench.db"));
    let (api, calls) = stub_api().await?;
    println!(
        "target {target:?}, {concurrency} connections, {seconds} s, database {}",
        db.display()
    );
    println!("| run | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | of floor |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let floor_run = if no_floor {
        None
    } else {
        let port = floor().await?;
        let r = drive(port, target, concurrency, seconds, &ready).await;
        row("floor (verify + constant)", &r, None);
        Some(r)
    };
    let (server, _) = start_server(&db, &api).await?;
    if target == Target::SlackShow || target == Target::SlackClick {
        // Tickets #1 to #10 (and more: ~17 a workspace in 1 s here) in each of the 100
        // workspaces the requests use.
        let _ = drive(server.port, Target::SlackNew, 4, 2, &Arc::default()).await;
    }
    let idle = rss_mib(server.child.id());
    let pid = server.child.id();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = (rss_mib(pid) * 1024.0) as u64;
                peak.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let calls_before = calls.load(Ordering::Relaxed);
    let r = drive(server.port, target, concurrency, seconds, &ready).await;
    sampler.abort();
    let made = calls.load(Ordering::Relaxed) - calls_before;
    row("piraja", &r, floor_run.as_ref());
    println!();
    println!(
        "memory: {idle:.1} MiB resident before the load, {:.1} MiB at its peak",
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
    // How far the outbox (cards posted and edited through the stand-in API) kept up.
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut conn =
        sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
            .read_only(true)
            .connect()
            .await?;
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&mut conn)
            .await?;
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!(
        "outbox at the end: {} ({:.0} s of load)",
        states.join(", "),
        r.seconds
    );
    if presign {
        let floor = floor_run.as_ref().map_or(0, |f| f.built_during);
        println!(
            "requests signed before the clock: {}; built during the runs: floor {floor}, piraja {}",
            ready.len(),
            r.built_during
        );
    }
    println!(
        "platform API calls during the load: {made} ({:.2} a request)",
        made as f64 / r.requests.max(1) as f64
    );
    Ok(())
}

async fn seed(db: &Path, desks: i64, tickets: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let url = format!("sqlite://{}", db.display());
    let store = SqliteStore::open(&url).await?;
    store_close(store).await;
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .connect()
        .await?;
    let per_desk = (tickets / desks).max(1);
    let now = chrono::Utc::now().timestamp_millis();
    // Everything is generated inside SQLite (recursive CTEs): one transaction, no round trips.
    let statements = [
        format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {desks})
                 INSERT INTO desks (id, name, next_no, created_at) SELECT n, 'Desk ' || n, {per_desk} + 1, {now} FROM s"),
        format!("INSERT INTO surfaces (platform, external_id, desk_id, name, notify_channel, created_at)
                 SELECT 'slack', 'T' || id, id, name, 'C1', {now} FROM desks"),
        format!("INSERT INTO members (desk_id, user_ref, name, role, created_at)
                 SELECT d.id, 'slack:U' || a.n, 'Agent ' || a.n, CASE a.n WHEN 1 THEN 'admin' ELSE 'agent' END, {now}
                 FROM desks d, (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5) SELECT n FROM s) a"),
        format!("INSERT INTO organizations (desk_id, name, name_key, created_at)
                 SELECT d.id, 'Org ' || o.n, 'org ' || o.n, {now} FROM desks d,
                 (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10) SELECT n FROM s) o"),
        format!("INSERT INTO individuals (desk_id, name, organization_id, created_at)
                 SELECT d.id, 'Customer ' || c.n, (SELECT id FROM organizations o WHERE o.desk_id = d.id AND o.name_key = 'org ' || (1 + c.n % 10)), {now}
                 FROM desks d, (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n FROM s) c"),
        "INSERT INTO individual_emails (desk_id, email, individual_id) SELECT desk_id, 'customer' || id || '@org.example', id FROM individuals".to_owned(),
        // Desk 1's Org 1 gets 10,000 tickets of its own for the history timing.
        format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {tickets})
                 INSERT INTO tickets (desk_id, no, description, priority, status, assignee, reporter, individual_id, organization_id,
                                      source, created_at, updated_at, first_due, resolution_due, first_level, resolution_level)
                 SELECT 1 + (n - 1) / {per_desk}, 1 + (n - 1) % {per_desk},
                        'Customer reports problem number ' || n || ' with the printer on floor ' || (n % 9),
                        CASE n % 4 WHEN 0 THEN 'urgent' WHEN 1 THEN 'high' WHEN 2 THEN 'medium' ELSE 'low' END,
                        CASE WHEN n % 10 < 6 THEN 'closed' WHEN n % 10 = 6 THEN 'in_progress' WHEN n % 10 = 7 THEN 'waiting' ELSE 'open' END,
                        CASE WHEN n % 3 = 0 THEN NULL ELSE 'slack:U' || (1 + n % 5) END,
                        'slack:U9', NULL,
                        NULL,
                        'slack', {now} - (n % 100000) * 60000, {now},
                        {now} + (n % 50 - 10) * 3600000, {now} + (n % 90 - 10) * 3600000,
                        CASE WHEN n % 50 < 10 THEN 'breached' WHEN n % 50 < 14 THEN 'at_risk' ELSE 'ok' END, 'ok'
                 FROM s WHERE 1 + (n - 1) / {per_desk} <= {desks}"),
        // Desk 1 also has an organization with 10,000 tickets, for the history timing.
        format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10000)
                 INSERT INTO tickets (desk_id, no, description, priority, status, reporter, organization_id, source, created_at, updated_at)
                 SELECT 1, {per_desk} + n, 'Acme ticket ' || n, 'medium', CASE WHEN n % 10 < 8 THEN 'closed' ELSE 'open' END,
                        'slack:U9', (SELECT id FROM organizations WHERE desk_id = 1 AND name_key = 'org 1'), 'email',
                        {now} - n * 60000, {now} FROM s"),
        format!("UPDATE desks SET next_no = {per_desk} + 10001 WHERE id = 1"),
        "INSERT INTO events (desk_id, ticket_id, actor, kind, new_value, at)
                 SELECT desk_id, id, reporter, 'created', priority, created_at FROM tickets".to_owned(),
        "INSERT INTO events (desk_id, ticket_id, actor, kind, old_value, new_value, at)
                 SELECT desk_id, id, 'slack:U1', 'status', 'open', status, created_at + 60000 FROM tickets WHERE status <> 'open'".to_owned(),
    ];
    sqlx::query("BEGIN").execute(&mut conn).await?;
    for s in &statements {
        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
            .execute(&mut conn)
            .await?;
    }
    sqlx::query("COMMIT").execute(&mut conn).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    let n: (i64,) = sqlx::query_as("SELECT count(*) FROM tickets")
        .fetch_one(&mut conn)
        .await?;
    println!(
        "seeded {} desks and {} tickets (with events, contacts, organizations) in {:.1} s",
        desks,
        n.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn store_close(store: SqliteStore) {
    use piraja::store::DeskStore;
    store.close().await;
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

async fn queries(db: &Path, runs: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(&format!("sqlite://{}", db.display())).await?;
    let desk = DeskId(1);
    let now = chrono::Utc::now();
    let org = store
        .find_organization(desk, "Org 1")
        .await?
        .ok_or_else(|| anyhow::anyhow!("seed the database first"))?;
    let mut timings: Vec<(&str, Vec<f64>)> = vec![
        ("digest of one desk", vec![]),
        ("/ticket list", vec![]),
        (
            "history of a 10,000-ticket organization (first page)",
            vec![],
        ),
    ];
    for _ in 0..runs {
        let t = Instant::now();
        let _ = store
            .digest(desk, None, now - chrono::TimeDelta::days(1), now)
            .await?;
        timings[0].1.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let _ = store
            .list(
                desk,
                &piraja::store::ListQuery {
                    active_only: true,
                    ..Default::default()
                },
                100,
            )
            .await?;
        timings[1].1.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let (_, total) = store.history_of_organization(desk, org.id, 100).await?;
        timings[2].1.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(total >= 10_000, "the organization has {total} tickets");
    }
    println!("| query | median ms | max ms |");
    println!("| --- | --- | --- |");
    for (name, xs) in timings {
        let max = xs.iter().copied().fold(0.0, f64::max);
        println!("| {name} | {:.2} | {:.2} |", median(xs), max);
    }
    Ok(())
}

async fn startup(db: &Path) -> anyhow::Result<()> {
    let (api, _) = stub_api().await?;
    let (server, took) = start_server(db, &api).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "start-up to a healthy /healthz: {:.0} ms; idle resident memory {:.1} MiB",
        took.as_secs_f64() * 1000.0,
        rss_mib(server.child.id())
    );
    Ok(())
}
