//! The directories inboxguard must be able to write to: the friendly-federator evidence
//! file's, and `state.dir` (remote sources' last good copies, the Mastodon push's ids). A directory that is missing or
//! refuses a file fails every save at runtime, and after a restart escalated domains and
//! cached lists are gone, so `check` and startup refuse it before anything serves.

use crate::config::Config;
use std::path::Path;

/// Checks every directory `config` writes to. `create`: make a missing `state.dir` (startup,
/// as its doc promises), otherwise only say that `serve` will (`check` changes nothing but a
/// probe file it removes at once). The evidence file's directory is never created: a missing
/// one is more likely a typo than a wish. Returns notes for the operator; `Err` names the key
/// and the directory.
pub fn check(config: &Config, create: bool) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if let Some(file) = &config.friendly_federators.evidence_file {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        usable(dir).map_err(|problem| {
            format!(
                "friendly_federators.evidence_file {}: {problem}; evidence could not be saved and escalations would not survive a restart",
                file.display()
            )
        })?;
    }
    if !config.subscriptions.is_empty() || config.mastodon.is_some() {
        let dir = &config.state.dir;
        if !dir.exists() {
            if !create {
                notes.push(format!(
                    "state.dir {} does not exist yet; serve creates it",
                    dir.display()
                ));
                return Ok(notes);
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("state.dir {}: cannot create it: {e}", dir.display()))?;
            notes.push(format!("created state.dir {}", dir.display()));
        }
        usable(dir).map_err(|problem| {
            format!(
                "state.dir {}: {problem}; remote lists' last good copies could not be kept",
                dir.display()
            )
        })?;
    }
    Ok(notes)
}

/// Replaces `path` with `bytes` so a crash leaves the old file or the new one, never half of
/// one: a temporary file beside it, fsync, rename, then the directory synced where it can be
/// opened (blocking).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Whether `dir` is a directory that takes a new file: one is created and removed, which is
/// what a save does and the only test that also sees read-only mounts and ACLs.
fn usable(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    let probe = dir.join(format!(".inboxguard-write-check.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("directory {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::config::Config;

    /// A config whose `[table]` sets `key` to `path`, followed by `extra`.
    fn config_naming(
        dir: &std::path::Path,
        table: &str,
        key: &str,
        path: &std::path::Path,
        extra: &str,
    ) -> Config {
        let file = dir.join("inboxguard.toml");
        let path = path.display().to_string();
        std::fs::write(
            &file,
            format!(
                "[server]\nlisten = \"127.0.0.1:18080\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n[{table}]\n{key} = {path:?}\n{extra}"
            ),
        )
        .expect("write");
        Config::load(&file).expect("valid")
    }

    #[test]
    fn a_missing_state_dir_is_created_at_startup_and_announced_by_check() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().join("state");
        let subscription = "[[subscriptions]]\nurl = \"https://lists.example/b.csv\"\n";
        let c = config_naming(tmp.path(), "state", "dir", &state, subscription);
        let notes = check(&c, false).expect("check only says so");
        assert!(
            notes[0].contains("does not exist yet; serve creates it"),
            "{notes:?}"
        );
        assert!(!state.exists());
        let notes = check(&c, true).expect("created");
        assert!(notes[0].starts_with("created state.dir"), "{notes:?}");
        assert!(state.is_dir());
        assert!(check(&c, true).expect("usable").is_empty());
        assert_eq!(
            std::fs::read_dir(&state).expect("dir").count(),
            0,
            "the probe is gone"
        );

        // A state.dir that is a file cannot take copies.
        std::fs::remove_dir(&state).expect("rmdir");
        std::fs::write(&state, "").expect("file");
        let e = check(&c, true).expect_err("not a directory");
        assert!(
            e.starts_with("state.dir ") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn an_evidence_file_needs_its_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("missing").join("ff.json");
        let c = config_naming(
            tmp.path(),
            "friendly_federators",
            "evidence_file",
            &file,
            "",
        );
        let e = check(&c, true).expect_err("refused");
        assert!(e.starts_with("friendly_federators.evidence_file "), "{e}");
        assert!(!file.parent().expect("parent").exists(), "never created");
        std::fs::create_dir(file.parent().expect("parent")).expect("mkdir");
        assert!(check(&c, false).expect("usable").is_empty());
    }
}
