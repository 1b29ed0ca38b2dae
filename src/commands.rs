//! The commands that read the evidence file or ask the running proxy's admin listener:
//! `report`, `escalations` (and its `lift`), `healthcheck`, `accept` and `explain --admin`.
//! Part of the binary, beside the boot script in `main.rs`.

use crate::{load_config, runtime, EXIT_CONFIG, EXIT_DATA, EXIT_RUNTIME};
use inboxguard::admin;
use inboxguard::config::{Config, FriendlyFederatorsConfig};
use inboxguard::federators::{self, EvidenceError};
use inboxguard::policy::{content::ContentRules, Snapshot};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The friendly-federator settings in force and the rules they come from: a rules file's
/// `[friendly_federators]` table overrides the config's kinds and escalation, as it does in
/// the running proxy (whose content rules give their escalation windows); rules that fail to
/// load leave the config's settings.
fn settings_in_force(config: &Config) -> (FriendlyFederatorsConfig, Option<Snapshot>) {
    let snapshot = inboxguard::rules::load(&config.blocklists, &[], &config.policy)
        .map(|(snapshot, _)| snapshot)
        .ok();
    let table = snapshot.as_ref().and_then(|s| s.friendly_federators());
    let settings =
        inboxguard::federators::effective(&config.friendly_federators, table).into_owned();
    (settings, snapshot)
}

/// [`settings_in_force`] for the config at `path`, or the exit code after saying why not.
fn settings_at(path: &Path) -> Result<(FriendlyFederatorsConfig, Option<Snapshot>), ExitCode> {
    Ok(settings_in_force(&load_config(path)?))
}

/// Reads the evidence file named by the config and prints it.
pub(crate) fn report(path: PathBuf, json: bool) -> ExitCode {
    // As the admin endpoint answers before any evidence: an empty report.
    print_evidence(&path, json, federators::report_from_file, empty_report_json)
}

/// `inboxguard escalations`: the list from the evidence file, under the rules' settings.
pub(crate) fn escalations(path: PathBuf, json: bool) -> ExitCode {
    print_evidence(&path, json, federators::escalations_from_file, |_, e| {
        println!("{e}");
        ExitCode::SUCCESS
    })
}

/// What `report` and `escalations` share: `read` the evidence file under the rules' settings
/// and print it as text or JSON. `missing_json` answers `--json` before there is any evidence.
fn print_evidence<T: serde::Serialize + std::fmt::Display>(
    path: &Path,
    json: bool,
    read: fn(&FriendlyFederatorsConfig, u64, Option<&ContentRules>) -> Result<T, EvidenceError>,
    missing_json: impl FnOnce(&FriendlyFederatorsConfig, EvidenceError) -> ExitCode,
) -> ExitCode {
    let (settings, snapshot) = match settings_at(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let content = snapshot.as_ref().map(|s| s.content_rules());
    match read(&settings, federators::unix_now(), content) {
        Ok(found) if json => print_json(&found),
        Ok(found) => {
            print!("{found}");
            ExitCode::SUCCESS
        }
        // The proxy writes the file once there is evidence; none yet is a normal answer.
        Err(e @ EvidenceError::Missing { .. }) if !json => {
            println!("{e}");
            ExitCode::SUCCESS
        }
        Err(e @ EvidenceError::Missing { .. }) => missing_json(&settings, e),
        Err(e @ EvidenceError::NotConfigured) => {
            eprintln!("inboxguard: {}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("inboxguard: {e}");
            ExitCode::from(EXIT_DATA)
        }
    }
}

/// `inboxguard escalations lift`: through the running proxy, or the file with `--offline`.
pub(crate) fn lift(
    path: &Path,
    domain: &str,
    by: &str,
    reason: &str,
    admin_url: Option<&str>,
    offline: bool,
) -> ExitCode {
    let (config, token) = match config_and_token(path) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if offline {
        use inboxguard::federators::{self, LiftError};
        let settings = &config.friendly_federators;
        return match federators::lift_in_file(settings, domain, by, reason, federators::unix_now())
        {
            Ok(_) => {
                println!("lifted {domain} in the evidence file; it applies when the proxy starts");
                ExitCode::SUCCESS
            }
            Err(e @ (LiftError::NotEscalated(_) | LiftError::InvalidDomain(_))) => {
                eprintln!("inboxguard: {e}");
                ExitCode::from(EXIT_DATA)
            }
            Err(e) => {
                eprintln!("inboxguard: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        };
    }
    let base = admin_url.map_or_else(|| admin::base_url(&config.admin), str::to_string);
    let url = format!(
        "{}/admin/escalations/{}/lift?by={}&reason={}",
        base.trim_end_matches('/'),
        admin::percent_encode(domain),
        admin::percent_encode(by),
        admin::percent_encode(reason)
    );
    let timeout = std::time::Duration::from_secs(30);
    ask_proxy(http::Method::POST, &url, token, Vec::new(), timeout)
}

/// The JSON a proxy with no evidence yet serves, built the way the running proxy builds it.
fn empty_report_json(settings: &FriendlyFederatorsConfig, _: EvidenceError) -> ExitCode {
    use inboxguard::federators::Federators;
    let metrics = match inboxguard::metrics::Metrics::new() {
        Ok(m) => std::sync::Arc::new(m),
        Err(e) => {
            eprintln!("inboxguard: cannot build the report: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    print_json(&Federators::new(settings, metrics).report(federators::unix_now(), None, None))
}

fn print_json(found: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string_pretty(found) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("inboxguard: cannot encode the answer: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

pub(crate) fn healthcheck(url: &str, timeout_secs: u64) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    let timeout = std::time::Duration::from_secs(timeout_secs);
    match runtime.block_on(inboxguard::admin::probe(url, timeout)) {
        Ok(status) if status.is_success() => {
            println!("{url}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("inboxguard: {url}: {status}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            eprintln!("inboxguard: {url}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

pub(crate) fn accept(path: PathBuf, source: &str, timeout_secs: u64) -> ExitCode {
    let (config, token) = match config_and_token(&path) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let url = format!(
        "{}/admin/sources/{}/accept",
        admin::base_url(&config.admin),
        admin::percent_encode(source)
    );
    let timeout = std::time::Duration::from_secs(timeout_secs);
    ask_proxy(http::Method::POST, &url, token, Vec::new(), timeout)
}

/// `explain --admin URL`: the running proxy's answer, printed as `explain` prints its own.
pub(crate) fn explain_live(config: Option<PathBuf>, base: &str, subject: &str) -> ExitCode {
    let token = match config.map(|p| config_and_token(&p)) {
        Some(Ok((_, token))) => token,
        Some(Err(code)) => return code,
        None => None,
    };
    // An activity file is read here and sent: the proxy may run elsewhere.
    let (method, body) = if inboxguard::explain::is_activity_file(subject) {
        match inboxguard::explain::read_activity_file(subject) {
            Ok(bytes) => (http::Method::POST, bytes),
            Err(e) => {
                eprintln!("inboxguard: {e}");
                return ExitCode::from(EXIT_DATA);
            }
        }
    } else {
        (http::Method::GET, Vec::new())
    };
    let url = format!(
        "{}/admin/explain?subject={}",
        base.trim_end_matches('/'),
        admin::percent_encode(subject)
    );
    let timeout = std::time::Duration::from_secs(30);
    ask_proxy(method, &url, token, body, timeout)
}

/// The config at `path` and its admin token, or the exit code after saying why not.
fn config_and_token(path: &Path) -> Result<(Config, Option<admin::Token>), ExitCode> {
    let config = Config::load(path).map_err(|e| {
        eprintln!("inboxguard: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let token = config
        .admin
        .token_file
        .as_deref()
        .map(admin::Token::from_file);
    let token = token.transpose().map_err(|e| {
        eprintln!("inboxguard: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok((config, token))
}

/// One call to the running proxy's admin listener: the answer on stdout when 2xx (exit 0);
/// otherwise on stderr, exit 65 for a 400 (a subject that names nothing), 1 for the rest.
fn ask_proxy(
    method: http::Method,
    url: &str,
    token: Option<admin::Token>,
    body: Vec<u8>,
    timeout: std::time::Duration,
) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    match runtime.block_on(admin::call(method, url, token.as_ref(), body, timeout)) {
        Ok((status, body)) if status.is_success() => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((http::StatusCode::BAD_REQUEST, body)) => {
            eprint!("inboxguard: {body}");
            ExitCode::from(EXIT_DATA)
        }
        Ok((status, body)) => {
            eprint!("inboxguard: {status}: {body}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(e) => {
            eprintln!("inboxguard: {url}: {e} (is the proxy running with this config?)");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
