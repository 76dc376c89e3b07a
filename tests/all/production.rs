//! Running fieldhook in production: a starter configuration, checking a
//! configuration, logs as JSON lines.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn fieldhook(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("fieldhook runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `fieldhook init DIR`, with its listeners moved to free ports so tests
/// can run side by side.
fn init(dir: &Path) -> (Output, String) {
    let out = fieldhook(&["init", dir.to_str().unwrap()]);
    let config = dir.join("fieldhook.toml");
    let admin_port = free_port();
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    std::fs::write(
        &config,
        text.replace("127.0.0.1:8080", "127.0.0.1:0")
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{admin_port}")),
    )
    .unwrap_or_default();
    (out, format!("http://127.0.0.1:{admin_port}"))
}

#[tokio::test]
async fn init_writes_a_config_that_checks_serves_and_takes_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("fieldhook");
    let (out, admin_url) = init(&home);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for next in [
        "fieldhook config check",
        "fieldhook serve",
        "fieldhook plugin new",
    ] {
        assert!(said.contains(next), "init names `{next}`: {said}");
    }
    assert!(home.join("plugins").is_dir());
    let secret = std::fs::read_to_string(home.join("secrets/webhooks.secret")).unwrap();
    assert!(
        secret.trim().starts_with("whsec_"),
        "a Standard Webhooks secret"
    );
    let token = std::fs::read_to_string(home.join("secrets/admin.token")).unwrap();
    assert!(token.trim().len() >= 32, "a long random admin token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("secrets/admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secrets are readable by their owner only");
    }
    // A second init elsewhere generates other secrets.
    let (_, _) = init(&dir.path().join("other"));
    let other = std::fs::read_to_string(dir.path().join("other/secrets/webhooks.secret")).unwrap();
    assert_ne!(secret, other);

    let config = home.join("fieldhook.toml");
    let check = fieldhook(&["config", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));

    let daemon = DaemonProcess::start(&config);
    let body = home.join("event.json");
    std::fs::write(&body, r#"{"type":"job.completed","data":{"id":"j-1"}}"#).unwrap();
    let sent = fieldhook(&[
        "send",
        "--config",
        config.to_str().unwrap(),
        "--source",
        "webhooks",
        "--body-file",
        body.to_str().unwrap(),
        "--url",
        &daemon.url,
    ]);
    assert!(
        sent.status.success(),
        "{}{}",
        text(&sent.stdout),
        text(&sent.stderr)
    );
    let events: serde_json::Value = reqwest::Client::new()
        .get(format!("{admin_url}/events"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    daemon.stop();
}

#[test]
fn init_never_overwrites_a_config_or_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = init(dir.path());
    assert!(first.status.success());
    let token = std::fs::read(dir.path().join("secrets/admin.token")).unwrap();
    let again = fieldhook(&["init", dir.path().to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("secrets/admin.token")).unwrap(),
        token
    );
}

#[test]
fn config_check_lists_every_problem_with_its_key_path_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fieldhook.toml");
    std::fs::write(
        &config,
        r#"
listen = "127.0.0.1:0"
worker = 3

[retention]
events_sec = 60

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_env = "FIELDHOOK_TEST_UNSET_SECRET"

[[sources]]
name = "billing"
vendor = "no-such-vendor"
secret_env = "X"

[admin]
listen = "127.0.0.1:0"
"#,
    )
    .unwrap();
    let out = fieldhook(&["config", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let said = text(&out.stderr);
    // The schema first: unknown keys are errors, each with its key path.
    assert!(said.contains("worker: unknown field `worker`"), "{said}");
    assert!(
        said.contains("retention: unknown field `events_sec`"),
        "{said}"
    );
    assert!(said.contains("2 problems"), "{said}");

    // Schema fixed: what is wrong inside each section, all of it.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("worker = 3\n", "")
            .replace("events_sec", "events_secs"),
    )
    .unwrap();
    let out = fieldhook(&["config", "check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    let said = text(&out.stderr);
    assert!(
        said.contains("sources[0] (hcp): ") && said.contains("FIELDHOOK_TEST_UNSET_SECRET"),
        "{said}"
    );
    assert!(
        said.contains("sources[1] (billing): ") && said.contains("housecall-pro"),
        "the known vendors are listed: {said}"
    );
    assert!(
        said.contains("admin: give `token_env` or `token_file`"),
        "{said}"
    );
    assert!(said.contains("3 problems"), "{said}");

    let missing = fieldhook(&["config", "check", "--config", "/nonexistent/fieldhook.toml"]);
    assert_eq!(missing.status.code(), Some(78));
}

#[test]
fn logs_are_json_lines_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fieldhook.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(&mut child);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let logs = text(&out.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "fieldhook listening" && l["level"] == "INFO"),
        "{logs}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "shutting down"),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["timestamp"].is_string() && l["target"].is_string()),
        "{logs}"
    );
}

#[test]
fn a_store_in_a_newer_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fieldhook.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("data/db")).unwrap();
    std::fs::write(
        dir.path().join("data/db/format"),
        "fieldhook-store format 99\n",
    )
    .unwrap();
    let out = fieldhook(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("store format 99")
            && said.contains("run the fieldhook version that wrote it"),
        "{said}"
    );
    let verify = fieldhook(&[
        "store",
        "verify",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(!verify.status.success());
    assert!(
        text(&verify.stderr).contains("store format 99"),
        "{}",
        text(&verify.stderr)
    );
}

#[test]
fn a_new_store_records_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fieldhook.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    DaemonProcess::start(&config).stop();
    let format = std::fs::read_to_string(dir.path().join("data/db/format")).unwrap();
    assert!(format.starts_with("fieldhook-store format "), "{format}");
}

/// A tmpfs of its own, unmounted when dropped. Mounting needs root (CI
/// runs as root); the test says so rather than passing without running.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a small tmpfs needs root: run this test as root (CI does)"
        );
        Self {
            path: path.to_owned(),
        }
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.path.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

const HCP_SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

/// Sends distinct 200 kB webhooks until one is refused (at most `max`);
/// returns the ids of those stored and the refusal's status and time.
async fn fill(
    url: &str,
    from: usize,
    max: usize,
) -> (Vec<String>, Option<(u16, std::time::Duration)>) {
    let client = reqwest::Client::new();
    let pad = "x".repeat(200_000);
    let mut stored = Vec::new();
    for n in from..from + max {
        let body = format!(r#"{{"event":"job.completed","job":{{"id":"j-{n}","pad":"{pad}"}}}}"#);
        let started = std::time::Instant::now();
        let response =
            signed_housecall_pro(&client, &format!("{url}/hooks/hcp"), HCP_SECRET, &body)
                .timeout(std::time::Duration::from_secs(30))
                .send()
                .await
                .expect("every webhook gets an answer");
        let status = response.status().as_u16();
        if status != 200 {
            return (stored, Some((status, started.elapsed())));
        }
        let answer: serde_json::Value = response.json().await.unwrap();
        stored.extend(
            answer["stored"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }
    (stored, None)
}

#[tokio::test]
async fn a_full_disk_gets_fast_503s_and_fieldhook_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "4m");
    std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
    let admin = AdminApi::new(dir.path());
    let config = dir.path().join("fieldhook.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"disk/data\"\n{}\n[[sources]]\nname = \"hcp\"\nvendor = \"housecall-pro\"\nsecret_file = \"hcp.secret\"\n",
            admin.config()
        ),
    )
    .unwrap();
    let daemon = DaemonProcess::start(&config);

    // Full: the vendor is told to retry, at once.
    let (mut acked, refused) = fill(&daemon.url, 0, 200).await;
    let (status, took) = refused.expect("a 4 MB disk fills up");
    assert_eq!(status, 503);
    assert!(
        took < std::time::Duration::from_secs(2),
        "refused in {took:?}"
    );
    assert!(!acked.is_empty());
    let ready = admin.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let said = ready.text().await.unwrap();
    assert!(said.contains("the store cannot write"), "{said}");
    let metrics = admin
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fieldhook_store_writable 0"), "{metrics}");
    let stats = admin.get_json("/stats").await;
    assert_eq!(stats["store"]["writable"], false, "{stats}");

    // Space returns: fieldhook takes webhooks again by itself.
    disk.resize("8m");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (more, refused) = fill(&daemon.url, 1000 + acked.len(), 1).await;
        acked.extend(more);
        if refused.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still refused 20 s after space returned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        admin.get("/readyz").send().await.unwrap().status().as_u16(),
        200
    );
    let metrics = admin
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("fieldhook_store_writable 1"), "{metrics}");

    // Full again, and SIGTERM still stops it.
    let (more, refused) = fill(&daemon.url, 2000, 200).await;
    acked.extend(more);
    assert!(refused.is_some(), "the disk fills up again");
    daemon
        .stop_within(std::time::Duration::from_secs(15))
        .expect("SIGTERM stops fieldhook while its disk is full");

    // Nothing acknowledged was lost, and the store is sound.
    disk.resize("64m");
    let daemon = DaemonProcess::start(&config);
    for id in &acked {
        let event = admin.get(&format!("/events/{id}")).send().await.unwrap();
        assert_eq!(
            event.status().as_u16(),
            200,
            "acknowledged event {id} is stored"
        );
    }
    daemon.stop();
    let verify = fieldhook(&[
        "store",
        "verify",
        "--data-dir",
        disk.path.join("data").to_str().unwrap(),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

fn hcp_config(dir: &Path, admin: &AdminApi, data_dir: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("hcp.secret"), HCP_SECRET).unwrap();
    let config = dir.join(format!("fieldhook-{}.toml", data_dir.replace('/', "-")));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{data_dir}\"\n{}\n[[sources]]\nname = \"hcp\"\nvendor = \"housecall-pro\"\nsecret_file = \"hcp.secret\"\n",
            admin.config()
        ),
    )
    .unwrap();
    config
}

async fn send_hcp(url: &str, n: usize) -> String {
    // Housecall Pro's redeliveries keep company, event, time and record.
    let body = format!(
        r#"{{"event":"job.completed","company_id":"co_1","event_occurred_at":"2026-07-24T05:38:14Z","job":{{"id":"j-{n}"}}}}"#
    );
    let answer: serde_json::Value = signed_housecall_pro(
        &reqwest::Client::new(),
        &format!("{url}/hooks/hcp"),
        HCP_SECRET,
        &body,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    answer["stored"][0]
        .as_str()
        .or(answer["duplicates"][0].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_online_backup_restores_to_a_daemon_with_everything_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let admin = AdminApi::new(dir.path());
    let config = hcp_config(dir.path(), &admin, "data");
    let daemon = DaemonProcess::start(&config);
    let mut before = Vec::new();
    for n in 0..40 {
        before.push(send_hcp(&daemon.url, n).await);
    }
    // Webhooks keep arriving while the backup is taken, and are answered.
    let sender = {
        let url = daemon.url.clone();
        tokio::spawn(async move {
            for n in 40..120 {
                send_hcp(&url, n).await;
            }
        })
    };
    let dest = dir.path().join("backups/today");
    let out = tokio::task::spawn_blocking({
        let (config, dest) = (config.clone(), dest.clone());
        move || {
            fieldhook(&[
                "store",
                "backup",
                "--config",
                config.to_str().unwrap(),
                dest.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("restore:"),
        "says how to restore: {}",
        text(&out.stdout)
    );
    sender.await.unwrap();

    // A second backup into the same place is refused, not mixed in.
    let again = fieldhook(&[
        "store",
        "backup",
        "--config",
        config.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );
    daemon.stop();

    // Restore: the backup is a data directory.
    let verify = fieldhook(&["store", "verify", "--data-dir", dest.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let restored = hcp_config(dir.path(), &admin, "backups/today");
    let daemon = DaemonProcess::start(&restored);
    for id in &before {
        let event = admin.get(&format!("/events/{id}")).send().await.unwrap();
        assert_eq!(
            event.status().as_u16(),
            200,
            "event {id} acknowledged before the backup"
        );
    }
    // Redelivered after the restore: recognised, not stored twice.
    assert_eq!(send_hcp(&daemon.url, 3).await, before[3]);
    daemon.stop();
}

#[test]
fn the_systemd_unit_is_valid_hardened_and_checks_the_config_before_start_and_reload() {
    let unit =
        std::fs::read_to_string(workspace_root().join("packaging/systemd/fieldhook.service"))
            .unwrap();
    for line in [
        "DynamicUser=yes",
        "StateDirectory=fieldhook",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "ExecStartPre=/usr/local/bin/fieldhook config check --config /etc/fieldhook/fieldhook.toml",
        "ExecReload=/usr/local/bin/fieldhook config check --config /etc/fieldhook/fieldhook.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=78",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has `{line}`");
    }
    // wasmtime maps compiled code executable: W^X enforcement would break it.
    assert!(!unit.contains("MemoryDenyWriteExecute=yes"));

    // systemd's own checks, on the unit pointing at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fieldhook.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/fieldhook", env!("CARGO_BIN_EXE_fieldhook")),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        text(&verify.stderr)
    );
    // Exposure 0 (locked down) to 10 (unprotected); systemd calls under 2 "OK".
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        text(&security.stdout)
    );
}

#[tokio::test]
async fn health_answers_for_a_running_daemon_and_fails_for_none() {
    let dir = tempfile::tempdir().unwrap();
    let admin = AdminApi::new(dir.path());
    let config = hcp_config(dir.path(), &admin, "data");
    let none = fieldhook(&["health", "--config", config.to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(1));
    let daemon = DaemonProcess::start(&config);
    let alive = fieldhook(&["health", "--config", config.to_str().unwrap()]);
    assert_eq!(alive.status.code(), Some(0), "{}", text(&alive.stderr));
    let ready = fieldhook(&["health", "--ready", "--config", config.to_str().unwrap()]);
    assert_eq!(ready.status.code(), Some(0), "{}", text(&ready.stderr));
    daemon.stop();
}

#[test]
fn init_for_a_container_listens_on_every_address_and_stores_in_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let out = fieldhook(&[
        "init",
        dir.path().to_str().unwrap(),
        "--listen",
        "0.0.0.0:8080",
        "--data-dir",
        "/var/lib/fieldhook",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(dir.path().join("fieldhook.toml")).unwrap();
    assert!(config.contains("listen = \"0.0.0.0:8080\""), "{config}");
    assert!(
        config.contains("data_dir = \"/var/lib/fieldhook\""),
        "{config}"
    );
    let check = fieldhook(&[
        "config",
        "check",
        "--config",
        dir.path().join("fieldhook.toml").to_str().unwrap(),
    ]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    let containerfile =
        std::fs::read_to_string(workspace_root().join("packaging/container/Containerfile"))
            .unwrap();
    assert!(
        containerfile.contains(
            r#"CMD ["fieldhook", "health", "--config", "/etc/fieldhook/fieldhook.toml"]"#
        )
    );
    assert!(
        containerfile.contains("VOLUME [\"/var/lib/fieldhook\"]")
            && containerfile.contains("USER 10001")
    );
}

/// Polls `/stats` until the configuration generation is `n`.
async fn wait_for_generation(admin: &AdminApi, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stats = admin.get_json("/stats").await;
        if stats["config_generation"] == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "generation {n} never came: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_sources_and_credentials_in_place_and_a_bad_file_changes_nothing() {
    let dest = FakeDestination::start().await;
    let port: u16 = dest.url.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin = AdminApi::new(dir.path());
    std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
    std::fs::write(dir.path().join("books.key"), "key-one").unwrap();
    let config = dir.path().join("fieldhook.toml");
    let write_config = |sources: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n{extra}\n{}\n[delivery]\nretry_base_ms = 50\n{sources}\n\
                 [credentials.books]\nhosts = [\"127.0.0.1\"]\nkind = \"api-key\"\nkey_file = \"books.key\"\ntemplate = \"Token {{key}}\"\n",
                admin.config()
            ),
        )
        .unwrap();
    };
    let hcp = |name: &str, secret_file: &str| {
        format!(
            "[[sources]]\nname = \"{name}\"\nvendor = \"housecall-pro\"\nsecret_file = \"{secret_file}\"\n"
        )
    };
    write_config(&hcp("hcp", "hcp.secret"), "");
    install_plugin(
        &dir.path().join("plugins"),
        "books",
        &guest("hostile"),
        &format!(
            "name = \"books\"\nversion = \"0.0.1\"\n[[subscriptions]]\nsource = \"*\"\n\
             [[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nmethods = [\"POST\"]\npath = \"/books/\"\ncredential = \"books\"\n\
             [config]\nmode = \"deliver\"\nurl = \"{}/books/jobs\"\n",
            dest.url
        ),
    );
    let daemon = DaemonProcess::start(&config);
    let client = reqwest::Client::new();
    let body = r#"{"event":"job.completed","job":{"id":"job_1"}}"#;
    let post = |source: &str, secret: &str| {
        signed_housecall_pro(
            &client,
            &format!("{}/hooks/{source}", daemon.url),
            secret,
            body,
        )
        .send()
    };
    assert_eq!(post("hcp", HCP_SECRET).await.unwrap().status(), 200);
    let got = dest.wait_for(1, std::time::Duration::from_secs(30)).await;
    assert_eq!(got[0].headers["authorization"], "Token key-one");
    assert_eq!(admin.get_json("/stats").await["config_generation"], 1);

    // SIGHUP: the source is renamed with a new secret, the credential's key
    // is rotated.
    let second = "hcp_second_signing_secret_EXAMPLE";
    std::fs::write(dir.path().join("hcp2.secret"), second).unwrap();
    std::fs::write(dir.path().join("books.key"), "key-two").unwrap();
    write_config(&hcp("hcp2", "hcp2.secret"), "");
    daemon.signal("HUP");
    wait_for_generation(&admin, 2).await;
    assert_eq!(
        post("hcp", HCP_SECRET).await.unwrap().status(),
        404,
        "the old source is gone"
    );
    assert_eq!(
        post("hcp2", HCP_SECRET).await.unwrap().status(),
        401,
        "the old secret is not the new source's"
    );
    assert_eq!(post("hcp2", second).await.unwrap().status(), 200);
    let got = dest.wait_for(2, std::time::Duration::from_secs(30)).await;
    assert_eq!(
        got[1].headers["authorization"], "Token key-two",
        "deliveries carry the rotated key"
    );

    // A file with problems changes nothing and says why, every problem.
    write_config(&hcp("hcp3", "missing.secret"), "listen_addr = 1");
    let refused = reqwest::Client::new()
        .post(format!("{}/reload", admin.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["generation"], 2, "{refused}");
    assert!(
        refused["problems"][0]
            .as_str()
            .unwrap()
            .contains("listen_addr"),
        "{refused}"
    );
    assert_eq!(
        post("hcp2", second).await.unwrap().status(),
        200,
        "generation 2 still serves"
    );
    assert_eq!(admin.get_json("/stats").await["config_generation"], 2);

    // Settings bound to sockets and files wait for a restart, and say so.
    write_config(&hcp("hcp2", "hcp2.secret"), "dedupe_window_secs = 60");
    let done: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/reload", admin.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["generation"], 3, "{done}");
    assert_eq!(
        done["at_restart"],
        serde_json::json!(["dedupe_window_secs"])
    );
    daemon.stop();
}
