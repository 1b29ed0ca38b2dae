//! `inboxguard push --config FILE [--dry-run]`: one push cycle from the rules as `check`
//! loads them (local files, the remote sources' cached copies, the escalations in the
//! evidence file; no fetch), printing the diff and, without `--dry-run`, what each write did.

use super::{plan, pushed_sources, Pusher, View};
use crate::config::{Config, PushMode};
use crate::federators::SOURCE_LABEL;
use crate::journal::ChangeLog;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// As `main`'s: BSD EX_USAGE for a config that cannot push, 1 for a cycle that failed.
const EXIT_CONFIG: u8 = 64;
const EXIT_RUNTIME: u8 = 1;

pub fn command(path: &Path, dry_run: bool) -> ExitCode {
    match run(path, dry_run) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("inboxguard: {message}");
            ExitCode::from(code)
        }
    }
}

fn run(path: &Path, dry_run: bool) -> Result<(), (u8, String)> {
    let usage = |m: String| (EXIT_CONFIG, m);
    let config = Config::load(path).map_err(|e| usage(e.to_string()))?;
    let Some(mastodon) = &config.mastodon else {
        return Err(usage(format!(
            "{}: the push needs [mastodon] url and token_file",
            path.display()
        )));
    };
    if !dry_run && mastodon.push != PushMode::On {
        return Err(usage(format!(
            "{}: [mastodon] push is {}; set push = true to write, or run with --dry-run",
            path.display(),
            mastodon.push.as_str()
        )));
    }
    let sources = pushed_sources(&config);
    let offline = crate::explain::load_offline_where(&config, &|r| sources.contains(&*r.source))
        .map_err(|e| usage(format!("blocklist: {e}")))?;
    let mut in_force: std::collections::HashSet<String> = offline
        .cached
        .sources
        .iter()
        .map(|m| m.label.clone())
        .filter(|l| sources.contains(l))
        .collect();
    match &offline.escalations_error {
        None => {
            in_force.insert(SOURCE_LABEL.to_string());
        }
        Some(e) => eprintln!(
            "inboxguard: escalations not read ({e}): blocks pushed for them are left as they are"
        ),
    }
    let view = View {
        wanted: plan::wanted(&offline.listed, &offline.snapshot),
        in_force,
    };
    let metrics = crate::metrics::Metrics::new().map_err(|e| (EXIT_RUNTIME, e.to_string()))?;
    let changes = Arc::new(ChangeLog::new(&config.state));
    let pusher = Pusher::build(&config, mastodon, mastodon.push, changes, &metrics)
        .map_err(|e| (EXIT_RUNTIME, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (EXIT_RUNTIME, format!("cannot start the runtime: {e}")))?;
    let report = runtime
        .block_on(pusher.cycle(&view, !dry_run, 0))
        .map_err(|e| (EXIT_RUNTIME, format!("{}: {e}", pusher.label)))?;
    let mode = if dry_run { " (dry run)" } else { "" };
    println!("push to {}{mode}: {}", pusher.label, report.plan.summary());
    for change in &report.plan.changes {
        let outcome = report
            .done
            .iter()
            .find(|(c, _)| c == change)
            .map(|(_, e)| e);
        match outcome {
            Some(None) => println!("  {change}: done"),
            Some(Some(e)) => println!("  {change}: FAILED: {e}"),
            None if report.written && change.op().is_some() => {
                println!("  {change}: not tried")
            }
            None => println!("  {change}"),
        }
    }
    for (domain, id) in &report.plan.vanished {
        println!("  forget  {domain} id {id}: no longer in Mastodon (deleted there by hand?)");
    }
    for domain in &report.plan.kept {
        println!("  keep    {domain}: its source has no copy in force yet");
    }
    match report.stopped {
        Some(e) => Err((EXIT_RUNTIME, format!("{}: stopped: {e}", pusher.label))),
        None => Ok(()),
    }
}
