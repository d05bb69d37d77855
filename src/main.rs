//! The `piraja` binary: `serve`, `migrate`, `export`.
//!
//! Settings come from the environment (and `piraja.toml`); a missing or invalid one stops the
//! binary with one line naming the variable and exit code 2.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use piraja::config::{LogFormat, Settings};
use piraja::core::people::{Platform, SurfaceRef};
use piraja::core::ticket::DeskId;
use piraja::export;
use piraja::store::{DeskStore, SqliteStore, TicketStore};

/// mimalloc instead of the system allocator: under load a fifth of the server's time was in
/// glibc's malloc and free (many small JSON maps per request, on two threads); see BENCHMARKS.md.
/// With the `override` feature it is also the C `malloc` SQLite allocates with (every value
/// sqlx copies out of a row is a `sqlite3_value_dup`, freed on another thread): glibc's
/// `malloc`, `free` and `malloc_consolidate` were 6% of a click's samples.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Piraja Tickets: a support desk that lives in Slack and Discord.
///
/// Settings are environment variables (see the README); a piraja.toml in the working
/// directory may set the same keys in lower case.
#[derive(Debug, Parser)]
#[command(name = "piraja", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the background jobs; migrates the database first.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Slack helpers.
    Slack {
        #[command(subcommand)]
        command: SlackCommand,
    },
    /// Discord helpers.
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
    /// Validate every setting and say which integrations are on; with --online, reach each
    /// configured API once. Exits 1 when a check fails.
    Check {
        #[arg(long)]
        online: bool,
    },
    /// Write a consistent copy of the database to PATH (a new file), while the server runs.
    Backup { path: std::path::PathBuf },
    /// Write a desk's tickets, with contacts and timeline, to stdout.
    Export {
        /// The desk: its number, or a surface such as slack:T0123 or discord:80351110224678912.
        #[arg(long)]
        desk: String,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum SlackCommand {
    /// Print the Slack app manifest for PIRAJA_PUBLIC_URL.
    Manifest,
}

#[derive(Debug, Subcommand)]
enum DiscordCommand {
    /// Bulk-overwrite the application's commands (global, or one guild, where changes show at
    /// once) with /ticket. Needs DISCORD_PUBLIC_KEY, DISCORD_APPLICATION_ID, DISCORD_BOT_TOKEN.
    Register {
        /// Register in this guild only.
        #[arg(long)]
        guild: Option<String>,
        /// Print the commands (manifests/discord-commands.json) instead of registering them.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("piraja: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format, &settings.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("piraja: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("piraja: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    // The filter was checked with the other settings.
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            if let Err(e) = settings.load_secret_key() {
                eprintln!("piraja: {e}");
                return Ok(ExitCode::from(2));
            }
            for line in settings.integrations() {
                tracing::info!("{line}");
            }
            let bind = settings.bind;
            let state = piraja::server::state(settings).await?;
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} (PIRAJA_BIND)"))?;
            tracing::info!(address = %bind, "Piraja is listening.");
            piraja::server::serve(listener, state, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Slack {
            command: SlackCommand::Manifest,
        } => {
            print!("{}", piraja::slack::manifest::render(&settings.public_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Discord {
            command: DiscordCommand::Register { guild, print },
        } => {
            if print {
                print!("{}", piraja::discord::commands::manifest());
                return Ok(ExitCode::SUCCESS);
            }
            let missing = |var: &str| {
                eprintln!("piraja: invalid {var}: is required to register commands");
                Ok(ExitCode::from(2))
            };
            // Registering needs the application and its bot token, not the endpoint's key.
            let discord = &settings.discord_api;
            let Some(application) = &discord.application_id else {
                return missing("DISCORD_APPLICATION_ID");
            };
            if discord.bot_token.is_none() {
                return missing("DISCORD_BOT_TOKEN");
            }
            let rest = piraja::discord::api::Rest::new(&discord.api_url, discord.bot_token.clone());
            let commands = serde_json::json!([piraja::discord::commands::definition()]);
            let registered = rest
                .register(application, guild.as_deref(), &commands)
                .await
                .context("Discord refused the commands")?;
            let names: Vec<&str> = registered
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            let place = guild.map_or("globally".to_owned(), |g| format!("in guild {g}"));
            println!("Registered /{} {place}.", names.join(", /"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { online } => {
            let mut lines = piraja::check::offline(&settings);
            if online {
                lines.extend(piraja::check::online(&settings).await);
            }
            for line in &lines {
                println!("{line}");
            }
            Ok(if lines.iter().all(|l| l.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Backup { path } => {
            SqliteStore::backup(&settings.database_url, &path)
                .await
                .context("cannot back up the database (DATABASE_URL)")?;
            println!(
                "Wrote a consistent copy of the database to {}.",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            SqliteStore::migrate(&settings.database_url)
                .await
                .context("cannot migrate the database (DATABASE_URL)")?;
            tracing::info!("The database is up to date.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { desk, format } => {
            let store = SqliteStore::open(&settings.database_url)
                .await
                .context("cannot open the database (DATABASE_URL)")?;
            let Some(desk) = find_desk(&store, &desk).await? else {
                eprintln!(
                    "piraja: no desk {desk:?}; give a desk number or a surface like slack:T0123"
                );
                return Ok(ExitCode::from(2));
            };
            let tickets = store.export(desk).await?;
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json => export::write_json(&mut out, &tickets)?,
                Format::Csv => export::write_csv(&mut out, &tickets)?,
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A desk by its number, `slack:T…` / `discord:<guild id>`, or a bare Slack team id (`T…`,
/// `E…`) or Discord guild id (a snowflake: 17 digits or more, far above any desk number).
async fn find_desk(store: &SqliteStore, spec: &str) -> anyhow::Result<Option<DeskId>> {
    let spec = spec.trim();
    let bare = |platform: &str| (platform.to_owned(), spec.to_owned());
    let (platform, id) = match spec.split_once(':') {
        Some((p, id)) => (p.to_owned(), id.to_owned()),
        None if spec.len() >= 17 && spec.bytes().all(|b| b.is_ascii_digit()) => bare("discord"),
        None => {
            if let Ok(n) = spec.parse::<i64>() {
                return Ok(store.desk_exists(DeskId(n)).await?.then_some(DeskId(n)));
            }
            if !spec.starts_with(['T', 'E']) || !spec.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(None);
            }
            bare("slack")
        }
    };
    let (platform, id) = (platform.as_str(), id.as_str());
    let Some(platform) = Platform::parse(platform) else {
        return Ok(None);
    };
    let surface = SurfaceRef::new(platform, id);
    let desk = store.desk_of_surface(&surface).await?;
    Ok(desk)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
