//! Hot load, end to end: plugins dropped into, replaced in and deleted from
//! the plugins directory of a running daemon, with events flowing; every
//! event is traced to the version of the plugin that handled it (the `relay`
//! fixture tags its delivery with its manifest's `label`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

/// A daemon whose log (stderr) is kept, to see what it loaded and how.
struct Daemon {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .args(["serve", "--config"])
            .arg(config)
            .env("FIELDHOOK_LOG", "info,fieldhook=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fieldhook starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        let url = wait_until_listening(&mut child);
        Self { child, url, log }
    }

    /// Log lines containing every one of `needles`.
    fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
            .collect()
    }

    /// Waits until `n` log lines contain every one of `needles`.
    async fn wait_for_log(&self, n: usize, needles: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.lines_with(needles);
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} log lines with {needles:?} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A daemon configuration with one Housecall Pro source and an empty
/// plugins directory.
struct Setup {
    dir: tempfile::TempDir,
    destination: String,
}

impl Setup {
    fn new(destination: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hcp.secret"), SECRET).unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::write(
            dir.path().join("fieldhook.toml"),
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nplugins_dir = \"plugins\"\n\n\
             [delivery]\ntimeout_secs = 5\nmax_attempts = 3\nretry_base_ms = 100\n\n\
             [[sources]]\nname = \"hcp\"\nvendor = \"housecall-pro\"\nsecret_file = \"hcp.secret\"\n",
        )
        .unwrap();
        Self {
            dir,
            destination: destination.to_owned(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    fn relay_dir(&self) -> PathBuf {
        self.dir.path().join("plugins").join("relay")
    }

    /// The relay manifest of one version.
    fn relay_manifest(&self, label: &str, extra_config: &str) -> String {
        format!(
            "name = \"relay\"\nversion = \"{label}\"\n\n[[subscriptions]]\nsource = \"hcp\"\n\n\
             [[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nmethods = [\"GET\", \"POST\"]\n\n\
             [config]\nendpoint = \"{}/relay\"\nlabel = \"{label}\"\n{extra_config}",
            self.destination,
            port = self.destination.rsplit(':').next().unwrap_or_default(),
        )
    }

    /// Installs (or replaces) the relay plugin as a deployment would: the
    /// component, then the manifest, each in several writes.
    fn deploy_relay(&self, label: &str, extra_config: &str) {
        let dir = self.relay_dir();
        std::fs::create_dir_all(&dir).unwrap();
        write_in_chunks(
            &dir.join("plugin.wasm"),
            &std::fs::read(guest("relay")).unwrap(),
        );
        write_in_chunks(
            &dir.join("plugin.toml"),
            self.relay_manifest(label, extra_config).as_bytes(),
        );
    }
}

/// Writes a file in four pieces with pauses, as a slow copy would.
fn write_in_chunks(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in bytes.chunks(bytes.len().div_ceil(4).max(1)) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Posts a signed job-completed webhook unique to `n`; returns its event id.
async fn post_event(daemon: &str, n: usize) -> String {
    let body = format!(
        r#"{{"event":"job.completed","event_occurred_at":"2026-11-20T15:04:{:02}Z","job":{{"id":"job_{n}"}}}}"#,
        n % 60
    );
    let client = reqwest::Client::new();
    let resp = signed_housecall_pro(&client, &format!("{daemon}/hooks/hcp"), SECRET, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    answer["stored"][0]
        .as_str()
        .expect("an event id")
        .to_owned()
}

/// Which label handled each event, from what the destination received.
fn labels_by_event(dest: &FakeDestination) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::BTreeMap::<String, Vec<String>>::new();
    for r in dest.received() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        seen.entry(body["event"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["label"].as_str().unwrap().to_owned());
    }
    seen
}

#[tokio::test]
async fn a_plugin_dropped_in_starts_receiving_events_and_a_deleted_one_stops() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let daemon = Daemon::start(&setup.config());

    let before = post_event(&daemon.url, 1).await;
    setup.deploy_relay("v1", "");
    daemon
        .wait_for_log(1, &["plugin loaded", "plugin=relay"])
        .await;
    let during = post_event(&daemon.url, 2).await;
    dest.wait_for(1, Duration::from_secs(30)).await;

    std::fs::remove_dir_all(setup.relay_dir()).unwrap();
    daemon
        .wait_for_log(1, &["plugin removed", "plugin=relay"])
        .await;
    let after = post_event(&daemon.url, 3).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    daemon.stop();

    let seen = labels_by_event(&dest);
    assert_eq!(seen.get(&during), Some(&vec!["v1".to_owned()]), "{seen:?}");
    assert!(
        !seen.contains_key(&before),
        "an event stored before the plugin existed is not its: {seen:?}"
    );
    assert!(
        !seen.contains_key(&after),
        "a deleted plugin receives nothing: {seen:?}"
    );
}

#[tokio::test]
async fn a_replacement_serves_new_events_while_events_in_flight_finish_on_the_old_version() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    setup.deploy_relay("v1", "busy_ms = \"1500\"\n");
    let daemon = Daemon::start(&setup.config());

    // Still running (busy for 1.5 s) when v2 lands.
    let in_flight = post_event(&daemon.url, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Events keep flowing while the plugin is replaced.
    let flow = {
        let url = daemon.url.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 100..130 {
                ids.push(post_event(&url, n).await);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            ids
        })
    };
    setup.deploy_relay("v2", "");
    daemon
        .wait_for_log(2, &["plugin loaded", "plugin=relay"])
        .await;
    let after_swap = post_event(&daemon.url, 2).await;
    let flowing = flow.await.unwrap();

    let total = flowing.len() + 2;
    dest.wait_for(total, Duration::from_secs(60)).await;
    daemon.stop();

    let seen = labels_by_event(&dest);
    assert_eq!(
        seen.get(&in_flight),
        Some(&vec!["v1".to_owned()]),
        "the running call finished on v1"
    );
    assert_eq!(
        seen.get(&after_swap),
        Some(&vec!["v2".to_owned()]),
        "new events run on v2"
    );
    for id in &flowing {
        let labels = seen
            .get(id)
            .unwrap_or_else(|| panic!("event {id} was never delivered: {seen:?}"));
        assert_eq!(labels.len(), 1, "event {id} handled once: {labels:?}");
        assert!(labels[0] == "v1" || labels[0] == "v2", "{labels:?}");
    }
    assert!(
        flowing.iter().any(|id| seen[id] == ["v2"]),
        "the events flowing after the swap reached v2: {seen:?}"
    );
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_old_version_serving() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    setup.deploy_relay("v1", "");
    let daemon = Daemon::start(&setup.config());
    let dir = setup.relay_dir();

    // Not WebAssembly at all.
    write_in_chunks(&dir.join("plugin.wasm"), b"this is not a component");
    daemon
        .wait_for_log(
            1,
            &["previous version keeps serving", "not a valid component"],
        )
        .await;
    let e1 = post_event(&daemon.url, 1).await;

    // A valid component that is not a fieldhook plugin (the empty component).
    std::fs::write(dir.join("plugin.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    daemon
        .wait_for_log(
            1,
            &[
                "previous version keeps serving",
                "does not export `fieldhook:plugin/handler`",
            ],
        )
        .await;
    let e2 = post_event(&daemon.url, 2).await;

    // A manifest that does not validate, then the real component back.
    std::fs::write(
        dir.join("plugin.toml"),
        setup.relay_manifest("v2", "") + "\n[limits]\nmemory_mb = 0\n",
    )
    .unwrap();
    std::fs::copy(guest("relay"), dir.join("plugin.wasm")).unwrap();
    daemon
        .wait_for_log(1, &["previous version keeps serving", "limits.memory_mb"])
        .await;
    let e3 = post_event(&daemon.url, 3).await;

    dest.wait_for(3, Duration::from_secs(30)).await;
    // Fixed: v2 serves.
    std::fs::write(dir.join("plugin.toml"), setup.relay_manifest("v2", "")).unwrap();
    daemon
        .wait_for_log(2, &["plugin loaded", "plugin=relay"])
        .await;
    let e4 = post_event(&daemon.url, 4).await;
    dest.wait_for(4, Duration::from_secs(30)).await;
    daemon.stop();

    let seen = labels_by_event(&dest);
    for id in [&e1, &e2, &e3] {
        assert_eq!(seen.get(id), Some(&vec!["v1".to_owned()]), "{seen:?}");
    }
    assert_eq!(seen.get(&e4), Some(&vec!["v2".to_owned()]), "{seen:?}");
}

#[tokio::test]
async fn a_restart_or_a_reload_of_an_unchanged_component_does_not_recompile() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    setup.deploy_relay("v1", "");

    let first = Daemon::start(&setup.config());
    first
        .wait_for_log(1, &["plugin loaded", "plugin=relay", "cache=Compiled"])
        .await;
    // Same component, new manifest: reloaded from the cache.
    std::fs::write(
        setup.relay_dir().join("plugin.toml"),
        setup.relay_manifest("v1b", ""),
    )
    .unwrap();
    first
        .wait_for_log(1, &["plugin loaded", "plugin=relay", "cache=Hit"])
        .await;
    first.stop();

    let second = Daemon::start(&setup.config());
    let loaded = second
        .wait_for_log(1, &["plugin loaded", "plugin=relay"])
        .await;
    assert!(
        loaded[0].contains("cache=Hit"),
        "after a restart the compiled code comes from the cache: {loaded:?}"
    );
    let id = post_event(&second.url, 1).await;
    dest.wait_for(1, Duration::from_secs(30)).await;
    second.stop();
    assert_eq!(
        labels_by_event(&dest).get(&id),
        Some(&vec!["v1b".to_owned()])
    );
}

/// Polls `GET /plugins` until `done` holds for it.
async fn wait_for_plugins(
    admin: &AdminApi,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = admin.get_json("/plugins").await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "/plugins never showed {what}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn failure_of<'a>(v: &'a serde_json::Value, dir: &str) -> Option<&'a serde_json::Value> {
    v["failures"]
        .as_array()?
        .iter()
        .find(|f| f["dir"].as_str().is_some_and(|d| d.ends_with(dir)))
}

fn loaded<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v["loaded"].as_array()?.iter().find(|p| p["name"] == name)
}

#[tokio::test]
async fn plugins_shows_every_load_failure_until_its_plugin_is_fixed_or_its_directory_removed() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new(&dest.url);
    let admin = AdminApi::new(setup.dir.path());
    let config = std::fs::read_to_string(setup.config()).unwrap() + &admin.config();
    std::fs::write(setup.config(), config).unwrap();
    setup.deploy_relay("v1", "");
    // Fails from the start.
    let gone = setup.dir.path().join("plugins").join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::write(
        gone.join("plugin.toml"),
        "name = \"Gone\"\nversion = \"1\"\n",
    )
    .unwrap();
    let daemon = Daemon::start(&setup.config());

    let v = wait_for_plugins(&admin, "relay loaded", |v| loaded(v, "relay").is_some()).await;
    let relay = loaded(&v, "relay").unwrap();
    assert_eq!(relay["version"], "v1", "{v:#}");
    assert_eq!(relay["contract"], "fieldhook:plugin@0.3.0", "{v:#}");
    assert_eq!(relay["state"], "loaded", "{v:#}");
    assert!(relay["instances"]["mode"].is_string(), "{v:#}");
    assert!(
        failure_of(&v, "gone").unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("Gone")
    );

    // A start failure goes away with its directory.
    std::fs::remove_dir_all(&gone).unwrap();
    wait_for_plugins(&admin, "`gone` cleared", |v| {
        failure_of(v, "gone").is_none()
    })
    .await;

    // A broken plugin dropped into the running daemon shows, with why.
    let broken = setup.dir.path().join("plugins").join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("plugin.wasm"), b"this is not a component").unwrap();
    std::fs::write(
        broken.join("plugin.toml"),
        "name = \"broken\"\nversion = \"1\"\n",
    )
    .unwrap();
    let v = wait_for_plugins(&admin, "`broken` failing", |v| {
        failure_of(v, "broken").is_some()
    })
    .await;
    let failure = failure_of(&v, "broken").unwrap();
    assert!(
        failure["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid component"),
        "{v:#}"
    );
    assert_eq!(failure["serving"], serde_json::Value::Null, "{v:#}");

    // `fieldhook plugins` shows the same.
    let out = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(["plugins", "--config"])
        .arg(setup.config())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("relay") && text.contains("fieldhook:plugin@0.3.0"),
        "{text}"
    );
    assert!(
        text.contains("FAILED ") && text.contains("broken"),
        "{text}"
    );
    assert!(text.contains("not a valid component"), "{text}");

    // Fixed: it loads and its failure is gone.
    std::fs::copy(guest("relay"), broken.join("plugin.wasm")).unwrap();
    let v = wait_for_plugins(&admin, "`broken` fixed", |v| {
        failure_of(v, "broken").is_none() && loaded(v, "broken").is_some()
    })
    .await;
    assert_eq!(loaded(&v, "broken").unwrap()["state"], "loaded", "{v:#}");

    // A broken new version of a serving plugin shows beside the old one.
    std::fs::write(
        setup.relay_dir().join("plugin.wasm"),
        b"not a component either",
    )
    .unwrap();
    let v = wait_for_plugins(&admin, "relay's new version failing", |v| {
        failure_of(v, "relay").is_some()
    })
    .await;
    assert_eq!(
        failure_of(&v, "relay").unwrap()["serving"],
        "relay",
        "{v:#}"
    );
    let relay = loaded(&v, "relay").unwrap();
    assert_eq!(relay["version"], "v1", "the old version serves: {v:#}");
    assert_eq!(relay["state"], "loaded, new version failing", "{v:#}");

    // Removing its directory removes the plugin and the failure.
    std::fs::remove_dir_all(setup.relay_dir()).unwrap();
    let v = wait_for_plugins(&admin, "relay gone", |v| {
        failure_of(v, "relay").is_none() && loaded(v, "relay").is_none()
    })
    .await;
    assert_eq!(v["failures"], serde_json::json!([]), "{v:#}");
    daemon.stop();
}
