//! The boot script: parse the command line, load and validate the config (exit 64 if it is
//! wrong, before binding anything), set up logging, bind, run, exit.

use clap::{Parser, Subcommand};
use commands::{accept, escalations, explain_live, healthcheck, lift, report};
use inboxguard::config::{Config, LogFormat, LoggingConfig};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod commands;

// jemalloc, not the C library's malloc: every rules reload builds a ~20 MB snapshot on a
// blocking thread while the old one still serves, and glibc's per-thread arenas kept the freed
// snapshots resident (RSS grew to ~120 MiB after a few reloads of 100,000 rules, and ~156 MiB
// with 10,000 keys cached); jemalloc reuses and returns them (~65 MiB). It also spares a musl
// static build musl's slow allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for a configuration or blocklist the program refuses (BSD EX_USAGE, as linkerd).
const EXIT_CONFIG: u8 = 64;
/// Exit code for an `explain` argument that names no domain, actor or readable activity
/// (BSD EX_DATAERR).
const EXIT_DATA: u8 = 65;
/// Log lines queued for the writer thread before logging calls wait (a few MiB of lines).
const LOG_QUEUE_LINES: usize = 16_384;
/// Bytes of log lines the writer thread gathers before one `write(2)` (it also writes whenever
/// its queue runs empty, so a quiet proxy's lines are not held back).
const LOG_BATCH_BYTES: usize = 64 * 1024;
/// How long the writer thread rests after it has written everything queued: lines that come
/// meanwhile wait at most this long, and go out together.
const LOG_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
/// Exit code for a failure while running (bind error, runtime error).
const EXIT_RUNTIME: u8 = 1;

#[derive(Parser)]
#[command(
    name = "inboxguard",
    version,
    about = "A verifying, filtering reverse proxy for Mastodon inboxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate the config and every blocklist, print a summary, exit non-zero if invalid.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the decision for a domain, an actor (URI, acct:, @user@host) or an activity JSON
    /// file, and every rule that matched, with its file and line.
    Explain {
        /// Load the config and rules from disk, as `serve` would start.
        #[arg(long, value_name = "FILE", required_unless_present = "admin")]
        config: Option<PathBuf>,
        /// Ask the running proxy instead (`http://127.0.0.1:9100`): the rules in force, even
        /// while a file on disk is broken. With `--config`, its `admin.token_file` is sent.
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// A domain, an actor URI, or the path of an activity JSON file.
        #[arg(value_name = "DOMAIN|ACTOR|ACTIVITY.json")]
        subject: String,
    },
    /// Print the friendly-federator evidence the running proxy saved last (its
    /// `[friendly_federators] evidence_file`): per sending domain, references to limited or
    /// suspended domains by kind, first/last seen, samples, and escalation status.
    Report {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print JSON (as `GET /admin/friendly-federators`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the escalated domains (action, since, cause, counts) and the last lifts, from the
    /// evidence file the running proxy saved; `escalations lift DOMAIN` lifts one.
    Escalations {
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Print JSON (as `GET /admin/escalations`) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<EscalationsCommand>,
    },
    /// Put in force the new version of a rule source that the running proxy holds back
    /// because it would remove too much (`max_shrink`). Asks the proxy on its admin listener
    /// (`[admin] listen` and `token_file` of this config): `POST /admin/sources/<SOURCE>/accept`.
    Accept {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The source's path or URL as configured, or a file's name.
        #[arg(value_name = "SOURCE")]
        source: String,
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout_secs: u64,
    },
    /// GET an admin probe (default `/healthz` on the default admin address) and exit 0 if it
    /// answers 2xx within the timeout, 1 otherwise: a health check for images that have no
    /// shell or HTTP client (the container image's HEALTHCHECK).
    Healthcheck {
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:9100/healthz"
        )]
        url: String,
        #[arg(long, value_name = "SECONDS", default_value_t = 2)]
        timeout_secs: u64,
    },
    /// Bring Mastodon's domain blocks in step with the pushed rules (escalations, subscriptions
    /// with `push = true`) once; with `--dry-run`, only print the diff.
    Push {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a self-contained demonstration: stand-in Mastodon, stand-in remote instances and
    /// the proxy, with a scripted mix of signed traffic.
    Demo,
}

#[derive(Subcommand)]
enum EscalationsCommand {
    /// Lift DOMAIN's escalation. Asks the running proxy on its admin listener (`[admin]
    /// listen` and `token_file` of the config, or `--admin URL`): `POST
    /// /admin/escalations/<DOMAIN>/lift`. The proxy owns the evidence file and rewrites it on
    /// every save, so an edit of the file would be lost; `--offline` edits it only for a
    /// proxy that is stopped.
    Lift {
        #[arg(value_name = "DOMAIN")]
        domain: String,
        /// Who lifts it (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        /// Why, for the record.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        /// The running proxy's admin listener, e.g. `http://127.0.0.1:9100`.
        #[arg(long, value_name = "URL", conflicts_with = "offline")]
        admin: Option<String>,
        /// Edit the evidence file instead: only while no proxy runs with it.
        #[arg(long)]
        offline: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { config } => check(config),
        Command::Explain {
            config,
            admin: Some(url),
            subject,
        } => explain_live(config, &url, &subject),
        Command::Explain {
            config: Some(config),
            admin: None,
            subject,
        } => explain(config, &subject),
        // clap requires one of them.
        Command::Explain { .. } => ExitCode::from(EXIT_CONFIG),
        Command::Report { config, json } => report(config, json),
        Command::Escalations { config: None, .. } => {
            eprintln!("inboxguard: escalations needs --config FILE");
            ExitCode::from(EXIT_CONFIG)
        }
        Command::Escalations {
            config: Some(config),
            json,
            command: None,
        } => escalations(config, json),
        Command::Escalations {
            config: Some(config),
            command:
                Some(EscalationsCommand::Lift {
                    domain,
                    by,
                    reason,
                    admin,
                    offline,
                }),
            ..
        } => {
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".into());
            lift(&config, &domain, &by, &reason, admin.as_deref(), offline)
        }
        Command::Healthcheck { url, timeout_secs } => healthcheck(&url, timeout_secs),
        Command::Accept {
            config,
            source,
            timeout_secs,
        } => accept(config, &source, timeout_secs),
        Command::Push { config, dry_run } => inboxguard::push::command(&config, dry_run),
        Command::Demo => demo(),
    }
}

/// The config at `path`, or the exit code for a bad one (after saying why).
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("inboxguard: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn serve(path: PathBuf) -> ExitCode {
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Dropped when `serve` returns, after the runtime: flushes what the log writer still holds.
    let _log = init_tracing(&config.logging);
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    // Before binding, as every config error: `run` checks again (and logs what it creates).
    if let Err(e) = inboxguard::check_state(&config, true) {
        tracing::error!(error = %e, "cannot start");
        return ExitCode::from(EXIT_CONFIG);
    }
    runtime.block_on(async move {
        let proxy = match tokio::net::TcpListener::bind(config.server.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %config.server.listen, error = %e, "cannot bind the proxy listener");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let admin = match tokio::net::TcpListener::bind(config.admin.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %config.admin.listen, error = %e, "cannot bind the admin listener");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        tracing::info!(admin = %config.admin.listen, upstream = %config.upstream.url, "starting");
        let listeners = inboxguard::Listeners { proxy, admin };
        match inboxguard::run(config, listeners, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ (inboxguard::RunError::Rules(_) | inboxguard::RunError::State(_))) => {
                tracing::error!(error = %e, "cannot start");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

fn check(path: PathBuf) -> ExitCode {
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_notes = match inboxguard::check_state(&config, false) {
        Ok(notes) => notes,
        Err(e) => {
            eprintln!("inboxguard: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // As `serve` would start: remote sources' disk-cached copies, escalations from the
    // evidence file; no network, no writes.
    let relative = relative_paths_note(&config);
    let offline = match inboxguard::explain::load_offline(&config, &[]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("inboxguard: blocklist: {e}");
            if let Some(note) = &relative {
                eprintln!("inboxguard: {note}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (summaries, cached) = (offline.summaries, offline.cached);
    println!("config {} is valid", path.display());
    if let Some(note) = &relative {
        println!("  {note}");
    }
    for note in &state_notes {
        println!("  {note}");
    }
    println!("  listen    {}", config.server.listen);
    println!("  admin     {}", config.admin.listen);
    println!("  upstream  {}", config.upstream.url);
    println!("  tls       {}", config.server.tls_cert_file.is_some());
    println!(
        "  policy    mode={} subscription_threshold={}",
        config.policy.mode.as_str(),
        config.policy.subscription_threshold
    );
    println!("  rule sources:");
    for s in &summaries {
        println!("    {s}");
    }
    if summaries.is_empty() {
        println!("    (none: every verified delivery will be forwarded)");
    }
    for line in &cached.missing {
        println!("    {line}");
    }
    if let Some(e) = &offline.escalations_error {
        println!(
            "    {}: cannot read escalations: {e}",
            inboxguard::federators::SOURCE_LABEL
        );
    }
    if let Some(allows) = &cached.allows {
        println!(
            "  mastodon domain allows (cached, for allowlist mode): {} from {}",
            allows.domains.len(),
            allows.source
        );
    }
    ExitCode::SUCCESS
}

/// Says where relative blocklist paths point, when there are any: they resolve against the
/// working directory, which is not the config file's directory, and a `check` run by hand from
/// elsewhere than the service's `WorkingDirectory` otherwise fails with no clue why.
fn relative_paths_note(config: &Config) -> Option<String> {
    let relative: Vec<String> = config
        .blocklists
        .iter()
        .filter(|b| b.path.is_relative())
        .map(|b| b.path.display().to_string())
        .collect();
    if relative.is_empty() {
        return None;
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|e| format!("(unknown: {e})"));
    Some(format!(
        "relative paths ({}) resolved against the working directory {cwd}",
        relative.join(", ")
    ))
}

/// Loads the config and rules exactly as `check` does (remote sources from their disk cache,
/// escalations from the evidence file), then prints `explain::report`.
fn explain(path: PathBuf, subject: &str) -> ExitCode {
    let config = match load_config(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Parsed first for its hosts (the rules to list), but a broken blocklist is still reported
    // before a bad subject.
    let subject = inboxguard::explain::Subject::parse(subject);
    let hosts = subject
        .as_ref()
        .map(inboxguard::explain::Subject::hosts)
        .unwrap_or_default();
    let offline = match inboxguard::explain::load_offline(&config, &hosts) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("inboxguard: blocklist: {e}");
            if let Some(note) = relative_paths_note(&config) {
                eprintln!("inboxguard: {note}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(e) = &offline.escalations_error {
        eprintln!("inboxguard: friendly-federator escalations not shown: {e}");
    }
    let subject = match subject {
        Ok(s) => s,
        Err(e) => {
            eprintln!("inboxguard: {e}");
            return ExitCode::from(EXIT_DATA);
        }
    };
    print!(
        "{}",
        inboxguard::explain::report(
            &offline.snapshot,
            &offline.listed,
            &config.friendly_federators,
            &subject
        )
    );
    ExitCode::SUCCESS
}

fn demo() -> ExitCode {
    let _log = init_tracing(&LoggingConfig {
        format: LogFormat::Text,
        filter: "warn".into(),
    });
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    match runtime.block_on(inboxguard::demo::run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inboxguard demo failed: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("inboxguard: cannot start the runtime: {e}");
            None
        }
    }
}

/// Logs go to stdout through a writer thread: the request path only queues the formatted line,
/// and the thread writes whole batches, instead of one `write(2)` per access-log line on a
/// worker (a tenth of a suspended request's cost when measured; see BENCHMARKS.md). The thread
/// drains its queue into a buffer and flushes it when the queue is empty: stdout alone is
/// line-buffered, which would still cost one `write(2)` per line, each a context switch when
/// the proxy has one core. After each flush the thread rests (`Paced`). When the
/// queue is full the logging call waits rather than dropping lines, so a log that cannot keep
/// up slows requests instead of losing records. The returned guard flushes at exit.
fn init_tracing(cfg: &LoggingConfig) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("inboxguard-log")
        .finish(Paced(std::io::BufWriter::with_capacity(
            LOG_BATCH_BYTES,
            std::io::stdout(),
        )));
    // Colour codes only for a person at a terminal: under systemd or with output redirected,
    // escape sequences would land in the journal or file, and writing them costs every
    // request's access-log line several extra formatting calls.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// The log writer thread's output: after a flush (the queue ran empty) the thread rests for
/// `LOG_PAUSE` before it takes the next line. Without the rest, a proxy below saturation has
/// an empty queue at almost every line, so each access-log line woke the thread and cost a
/// `write(2)`: measured at half load on one core, 12,000 wake-ups a second, each one
/// preempting the request path for the length of a write.
struct Paced<W>(W);

impl<W: std::io::Write> std::io::Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.0.flush();
        std::thread::sleep(LOG_PAUSE);
        flushed
    }
}

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
        _ = ctrl_c => {},
        _ = term => {},
    }
}
