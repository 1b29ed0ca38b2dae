//! The watcher over real directories: in-place edits, renames, a ConfigMap symlink swap, SIGHUP.

use super::*;
use crate::rules::testing::{files, reloads, rules_over, suspended};
use std::time::Instant;

/// Generous: these wait on inotify and a debounce, on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls until `done`, re-applying `change` every second: the watcher registers its
/// directories asynchronously, so a change made before that is not seen, and repeating an
/// idempotent edit is what an operator would do too.
async fn eventually(mut change: impl FnMut(), done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut last_change = Instant::now();
    change();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "change not picked up within {DEADLINE:?}"
        );
        if last_change.elapsed() > Duration::from_secs(1) {
            change();
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `Rules::watch` task and the sender that shuts it down.
struct Watching {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Watching {
    fn start(rules: &Arc<Rules>) -> Watching {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rules.clone().watch(async {
            let _ = stopped.await;
        }));
        Watching { stop, task }
    }

    /// Shuts the watcher down and waits for it to return.
    async fn stop(self) {
        self.stop.send(()).expect("watcher alive");
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("watch stops on shutdown")
            .expect("watch task");
    }
}

/// Writes by rename, as editors and `sed -i` do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn event_filter() {
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    let names: HashSet<OsString> = [OsString::from("blocklist.csv")].into();
    let event = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
    let rename = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    assert!(affects_sources(
        &event(rename, "/etc/ig/blocklist.csv"),
        &names
    ));
    assert!(affects_sources(&event(rename, "/etc/ig/..data"), &names));
    assert!(affects_sources(
        &event(EventKind::Create(CreateKind::File), "/etc/ig/blocklist.csv"),
        &names
    ));
    assert!(affects_sources(
        &event(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "/etc/ig/blocklist.csv"
        ),
        &names
    ));
    assert!(!affects_sources(
        &event(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            "/etc/ig/blocklist.csv"
        ),
        &names
    ));
    assert!(!affects_sources(
        &event(rename, "/etc/ig/inboxguard.toml"),
        &names
    ));
    assert!(!affects_sources(
        &event(rename, "/etc/ig/.blocklist.csv.swp"),
        &names
    ));
    assert!(affects_sources(&notify::Event::new(EventKind::Any), &names));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_picks_up_an_edit_and_stops_on_shutdown() {
    let (_dir, [path]) = files([("blocklist.csv", "old.example\n")]);
    let (rules, m) = rules_over(&[&path]);
    let watching = Watching::start(&rules);

    eventually(
        || std::fs::write(&path, "old.example\nnew.example\n").expect("write in place"),
        || suspended(&rules, "new.example"),
    )
    .await;
    eventually(
        || replace(&path, "renamed.example\n"),
        || suspended(&rules, "renamed.example"),
    )
    .await;
    assert!(!suspended(&rules, "old.example"));

    // A broken edit is refused by the watcher's reload too.
    let failures = reloads(&m, "failure");
    eventually(
        || replace(&path, "broken example\n"),
        || reloads(&m, "failure") > failures,
    )
    .await;
    assert!(suspended(&rules, "renamed.example"));

    watching.stop().await;
}

/// Kubernetes mounts a ConfigMap as `dir/blocklist.csv -> ..data/blocklist.csv` and
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory and renames a
/// fresh `..data` symlink over the old one. Nothing named `blocklist.csv` changes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let revision = |name: &str, text: &str| {
        std::fs::create_dir(root.join(name)).expect("revision dir");
        std::fs::write(root.join(name).join("blocklist.csv"), text).expect("write");
    };
    revision("..2026_01_01", "first.example\n");
    symlink("..2026_01_01", root.join("..data")).expect("..data");
    symlink("..data/blocklist.csv", root.join("blocklist.csv")).expect("link");
    let path = root.join("blocklist.csv");
    let (rules, _) = rules_over(&[&path]);
    assert!(suspended(&rules, "first.example"));
    let watching = Watching::start(&rules);

    let mut n = 0;
    eventually(
        || {
            n += 1;
            let name = format!("..2026_01_02_{n}");
            revision(&name, "second.example\n");
            let tmp = root.join("..data_tmp");
            symlink(&name, &tmp).expect("tmp link");
            std::fs::rename(&tmp, root.join("..data")).expect("swap");
        },
        || suspended(&rules, "second.example"),
    )
    .await;
    assert!(!suspended(&rules, "first.example"));
    // The old revision goes away, as the kubelet removes it; the watcher must not care.
    std::fs::remove_dir_all(root.join("..2026_01_01")).expect("cleanup");

    watching.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    // Installing a handler first makes SIGHUP harmless to the test process even if it
    // arrives before `watch` has installed its own.
    let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("sighup handler");
    let (_dir, [path]) = files([("blocklist.txt", "a.example\n")]);
    let (rules, m) = rules_over(&[&path]);
    let watching = Watching::start(&rules);
    // No file changes: only the signal can cause a reload.
    let pid = std::process::id().to_string();
    eventually(
        || {
            let status = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .expect("run kill");
            assert!(status.success());
        },
        || rules.generation() > 0,
    )
    .await;
    assert!(reloads(&m, "success") > 0);
    watching.stop().await;
}
