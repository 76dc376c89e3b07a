//! `fieldhook plugin check|run|new|versions`, run as a plugin author would.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

fn fieldhook(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .output()
        .expect("fieldhook runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const MANIFEST: &str = r#"
name = "relay"
version = "2"
[[subscriptions]]
source = "hcp"
[limits]
memory_mb = 32
timeout_ms = 2000
[config]
endpoint = "https://books.example.com/relay"
label = "local"
fetch = "https://api.example.com/jobs/job_7f3e"
[[http]]
host = "api.example.com"
path = "/jobs/"
[[http]]
host = "books.example.com"
methods = ["POST"]
path = "/relay"
"#;

/// The relay's manifest granting its fetch but not its delivery.
const FETCH_ONLY: &str = r#"
name = "relay"
version = "2"
[[subscriptions]]
source = "hcp"
[config]
endpoint = "https://books.example.com/relay"
fetch = "https://api.example.com/jobs/job_7f3e"
[[http]]
host = "api.example.com"
path = "/jobs/"
"#;

#[test]
fn versions_lists_every_contract_version_served_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fieldhook(&["plugin", "versions"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        served,
        [
            "fieldhook:plugin@0.3.0",
            "fieldhook:plugin@0.2.0",
            "fieldhook:plugin@0.1.0"
        ]
    );
}

#[test]
fn check_accepts_a_plugin_and_names_what_is_wrong_with_one_that_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = guest("relay");
    std::fs::write(tmp.path().join("plugin.toml"), MANIFEST).unwrap();

    let ok = fieldhook(
        &[
            "plugin",
            "check",
            relay.to_str().unwrap(),
            "--manifest",
            "plugin.toml",
        ],
        tmp.path(),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let out = stdout(&ok);
    assert!(
        out.contains("ok: relay 2 targets fieldhook:plugin@0.3.0"),
        "{out}"
    );
    assert!(
        out.contains("exports    fieldhook:plugin/handler@0.3.0"),
        "{out}"
    );
    assert!(
        out.contains("limits     memory 32 MiB, time 2000 ms"),
        "{out}"
    );
    assert!(
        out.contains(
            "grants     [[http]] rule 2: scheme = \"https\", host = \"books.example.com\""
        ),
        "{out}"
    );
    assert!(!out.contains("warning"), "every endpoint is granted: {out}");

    std::fs::write(tmp.path().join("empty.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    let bad = fieldhook(&["plugin", "check", "empty.wasm"], tmp.path());
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("does not export `fieldhook:plugin/handler`"),
        "{}",
        stderr(&bad)
    );

    std::fs::write(
        tmp.path().join("bad.toml"),
        "name = \"relay\"\nversion = \"1\"\n[limits]\ntimeout_ms = 0\n",
    )
    .unwrap();
    let bad = fieldhook(
        &[
            "plugin",
            "check",
            relay.to_str().unwrap(),
            "--manifest",
            "bad.toml",
        ],
        tmp.path(),
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("limits.timeout_ms"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn run_answers_outbound_requests_from_canned_responses_and_prints_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = guest("relay");
    std::fs::write(tmp.path().join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(
        tmp.path().join("event.json"),
        r#"{"source":"hcp","kind":"job.completed","body":{"job":{"id":"job_7f3e"}}}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("responses.json"),
        r#"[{"method":"GET","url":"https://api.example.com/jobs/*","status":203,"body":{"id":"job_7f3e"}}]"#,
    )
    .unwrap();
    let args = [
        "plugin",
        "run",
        relay.to_str().unwrap(),
        "--manifest",
        "plugin.toml",
        "--event",
        "event.json",
    ];

    let answered = fieldhook(
        &[&args[..], &["--responses", "responses.json"]].concat(),
        tmp.path(),
    );
    assert!(answered.status.success(), "{}", stderr(&answered));
    let out = stdout(&answered);
    assert!(
        out.contains("GET https://api.example.com/jobs/job_7f3e -> answered 203 (canned)"),
        "{out}"
    );
    assert!(out.contains("decision: deliver 1 request(s)"), "{out}");
    assert!(
        out.contains("POST https://books.example.com/relay"),
        "{out}"
    );
    assert!(out.contains("\"fetched\":203"), "{out}");
    assert!(
        out.contains("info  relay local: evt_"),
        "the plugin's logs are shown: {out}"
    );
    assert!(
        out.contains("of 2000 ms") && out.contains("of 32 MiB"),
        "use against limits: {out}"
    );

    std::fs::write(tmp.path().join("responses.json"), "[]").unwrap();
    let denied = fieldhook(
        &[&args[..], &["--responses", "responses.json"]].concat(),
        tmp.path(),
    );
    assert!(!denied.status.success(), "a plugin error fails the run");
    let out = stdout(&denied);
    assert!(
        out.contains("-> denied: no canned response for GET https://api.example.com/jobs/job_7f3e"),
        "{out}"
    );
}

#[test]
fn new_scaffolds_a_rust_plugin_that_plugin_build_builds_and_that_runs_granted_on_its_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let created = fieldhook(
        &["plugin", "new", "job-notes", "--lang", "rust"],
        tmp.path(),
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let dir = tmp.path().join("job-notes");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "plugin.toml",
        "sample-event.json",
        "README.md",
        "sdk/Cargo.toml",
        "sdk/src/lib.rs",
        "wit/0.3/plugin.wit",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_no_checkout_paths(&dir);
    // Shared with the other guest builds, so the SDK compiles once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("guests");
    let built = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(["plugin", "build"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(
        stdout(&built).contains("built ") && stdout(&built).contains("job_notes.wasm"),
        "{}",
        stdout(&built)
    );
    let component = "target/wasm32-wasip2/release/job_notes.wasm";
    assert!(dir.join(component).is_file(), "where plugin.toml says");
    let run = fieldhook(
        &["plugin", "run", component, "--event", "sample-event.json"],
        &dir,
    );
    assert!(
        run.status.success(),
        "the scaffold grants its delivery: {}",
        stderr(&run)
    );
    let out = stdout(&run);
    assert!(out.contains("decision: deliver 1 request(s)"), "{out}");
    assert!(out.contains("allowed by [[http]] rule 1"), "{out}");
    assert!(out.contains("\"job_id\":\"job_7f3e\""), "{out}");
    let check = fieldhook(&["plugin", "check", component], &dir);
    assert!(!stdout(&check).contains("warning"), "{}", stdout(&check));
}

/// A scaffold names nothing of the machine that built fieldhook.
fn assert_no_checkout_paths(dir: &Path) {
    let checkout = workspace_root().canonicalize().unwrap();
    let checkout = checkout.to_string_lossy();
    for entry in walk(dir) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            !text.contains(checkout.as_ref()),
            "{} names the build machine's {checkout}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") {
                out.extend(walk(&p));
            }
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn new_scaffolds_js_and_python_plugins_whose_build_says_what_to_install() {
    let tmp = tempfile::tempdir().unwrap();
    let no_tools = tmp.path().join("empty-path");
    std::fs::create_dir_all(&no_tools).unwrap();
    for (lang, files, missing) in [
        (
            "js",
            &[
                "plugin.js",
                "plugin.test.mjs",
                "package.json",
                "sdk/build.mjs",
                "sdk/testing.js",
            ][..],
            "node is not installed",
        ),
        (
            "python",
            &[
                "app.py",
                "test_app.py",
                "sdk/build.py",
                "sdk/fieldhook/__init__.py",
            ][..],
            "pip install componentize-py==0.25.0",
        ),
    ] {
        let name = format!("notes-{lang}");
        let created = fieldhook(&["plugin", "new", &name, "--lang", lang], tmp.path());
        assert!(created.status.success(), "{}", stderr(&created));
        let dir = tmp.path().join(&name);
        for f in files.iter().chain(&["plugin.toml", "wit/0.2/plugin.wit"]) {
            assert!(dir.join(f).is_file(), "{lang}: {f} missing");
        }
        assert_no_checkout_paths(&dir);
        let manifest =
            fieldhook_policy::manifest::Manifest::load(&dir.join("plugin.toml")).unwrap();
        let target =
            fieldhook_policy::grants::Target::parse("POST", &manifest.config["endpoint"]).unwrap();
        assert!(
            manifest.http.check(&target).is_ok(),
            "{lang}: the sample's delivery is granted"
        );

        let build = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .args(["plugin", "build"])
            .current_dir(&dir)
            .env("PATH", &no_tools)
            .output()
            .unwrap();
        assert!(!build.status.success());
        assert!(
            stderr(&build).contains(missing),
            "{lang}: {}",
            stderr(&build)
        );
    }
}

#[test]
fn check_warns_about_configured_endpoints_no_grant_covers_with_the_rule_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = guest("relay");
    std::fs::write(tmp.path().join("plugin.toml"), FETCH_ONLY).unwrap();
    let out = fieldhook(
        &[
            "plugin",
            "check",
            relay.to_str().unwrap(),
            "--manifest",
            "plugin.toml",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "warnings only: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "warning    config.endpoint = https://books.example.com/relay is covered by no [[http]] rule"
        ),
        "{text}"
    );
    assert!(
        text.contains("host = \"books.example.com\"") && text.contains("path = \"/relay\""),
        "the rule to add: {text}"
    );
    assert!(
        !text.contains("config.fetch"),
        "the granted fetch URL is not warned about: {text}"
    );
}

#[test]
fn run_says_for_each_request_and_delivery_whether_the_manifest_grants_it() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = guest("relay");
    std::fs::write(tmp.path().join("plugin.toml"), FETCH_ONLY).unwrap();
    std::fs::write(
        tmp.path().join("event.json"),
        r#"{"source":"hcp","kind":"job.completed","body":{"job":{"id":"job_7f3e"}}}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("responses.json"),
        r#"[{"url":"https://api.example.com/*","status":200,"body":{}},
            {"url":"https://books.example.com/*","status":200,"body":{}}]"#,
    )
    .unwrap();
    let run = |manifest: &str, extra: &[&str]| {
        std::fs::write(tmp.path().join("plugin.toml"), manifest).unwrap();
        fieldhook(
            &[
                &[
                    "plugin",
                    "run",
                    relay.to_str().unwrap(),
                    "--manifest",
                    "plugin.toml",
                    "--event",
                    "event.json",
                    "--responses",
                    "responses.json",
                ][..],
                extra,
            ]
            .concat(),
            tmp.path(),
        )
    };

    let out = run(FETCH_ONLY, &[]);
    assert!(
        !out.status.success(),
        "a delivery the daemon would refuse fails the run"
    );
    let text = stdout(&out);
    assert!(
        text.contains("GET https://api.example.com/jobs/job_7f3e -> answered 200 (canned)\n      allowed by [[http]] rule 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "[0] POST https://books.example.com/relay\n      NOT GRANTED: the daemon would refuse it"
        ),
        "{text}"
    );
    assert!(
        text.contains("        [[http]]\n        scheme = \"https\"\n        host = \"books.example.com\"\n        methods = [\"POST\"]\n        path = \"/relay\""),
        "the exact rule to add: {text}"
    );
    assert!(
        stderr(&out).contains("would refuse 1 of the 1 deliveries"),
        "{}",
        stderr(&out)
    );

    let json = run(FETCH_ONLY, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report["outbound"][0]["grant"]["allowed"], true,
        "{report:#}"
    );
    assert_eq!(report["outbound"][0]["grant"]["rule"], 1, "{report:#}");
    let delivery = &report["decision"]["requests"][0]["grant"];
    assert_eq!(delivery["allowed"], false, "{report:#}");
    assert!(
        delivery["toml"]
            .as_str()
            .unwrap()
            .contains("host = \"books.example.com\"")
    );

    // A canned answer does not make an ungranted request pass: the daemon
    // would refuse it before any connection.
    let no_grants = "name = \"relay\"\nversion = \"2\"\n[config]\nendpoint = \"https://books.example.com/relay\"\nfetch = \"https://api.example.com/jobs/job_7f3e\"\n";
    let text = stdout(&run(no_grants, &[]));
    assert!(
        text.contains("GET https://api.example.com/jobs/job_7f3e -> denied: not granted by plugin.toml's [[http]] rules"),
        "{text}"
    );
    assert!(
        text.contains("host = \"api.example.com\"\n        methods = [\"GET\"]\n        path = \"/jobs/job_7f3e\""),
        "{text}"
    );
}

#[test]
fn run_takes_the_vendor_and_source_of_a_raw_body_from_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let relay = guest("relay");
    std::fs::write(tmp.path().join("plugin.toml"), MANIFEST).unwrap();
    std::fs::write(
        tmp.path().join("body.json"),
        r#"{"event":"job.completed","job":{"id":"job_7f3e"}}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("responses.json"),
        r#"[{"url":"https://*","status":200}]"#,
    )
    .unwrap();
    let args = [
        "plugin",
        "run",
        relay.to_str().unwrap(),
        "--manifest",
        "plugin.toml",
        "--event",
        "body.json",
        "--json",
    ];
    let out = fieldhook(
        &[&args[..], &["--vendor", "housecall-pro", "--source", "hcp"]].concat(),
        tmp.path(),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["event"]["vendor"], "housecall-pro", "{report:#}");
    assert_eq!(report["event"]["source"], "hcp", "{report:#}");
    assert_eq!(report["event"]["kind"], "job.completed", "{report:#}");
    assert_eq!(report["event"]["subscribed"], true, "{report:#}");

    let unknown = fieldhook(
        &[&args[..], &["--vendor", "housecallpro"]].concat(),
        tmp.path(),
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown)
            .contains("--vendor `housecallpro` is not a vendor fieldhook knows; use one of:")
            && stderr(&unknown).contains("housecall-pro"),
        "{}",
        stderr(&unknown)
    );
}

/// What a new JS or Python plugin author does on a fresh machine with the
/// language's tool chain: scaffold, install the build tool, run the
/// scaffold's own unit tests, build, and run the component on its sample.
#[test]
fn js_and_python_scaffolds_pass_their_own_tests_build_and_run_granted_on_their_sample() {
    let tmp = tempfile::tempdir().unwrap();
    // componentize-py as the test harness pins it (on PATH, or its venv).
    let py_tool = componentize_py();
    let path = match py_tool.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(bin) => format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
        None => std::env::var("PATH").unwrap_or_default(),
    };
    let run = |program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("PATH", &path)
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}{}",
            dir.display(),
            stdout(&out),
            stderr(&out)
        );
        out
    };
    let bin = env!("CARGO_BIN_EXE_fieldhook");
    for lang in ["js", "python"] {
        let name = format!("leads-{lang}");
        run(
            bin,
            &["plugin", "new", &name, "--lang", lang],
            tmp.path(),
            &[],
        );
        let dir = tmp.path().join(&name);
        match lang {
            "js" => {
                run(
                    "npm",
                    &["install", "--no-audit", "--no-fund", "--loglevel=error"],
                    &dir,
                    &[],
                );
                let tests = run("npm", &["test"], &dir, &[]);
                assert!(stdout(&tests).contains("pass 2"), "{}", stdout(&tests));
            }
            _ => {
                let tests = run(
                    "python3",
                    &["-m", "unittest", "-v"],
                    &dir,
                    &[("PYTHONPATH", "sdk")],
                );
                assert!(stderr(&tests).contains("Ran 2 tests"), "{}", stderr(&tests));
            }
        }
        run(bin, &["plugin", "build"], &dir, &[]);
        let manifest =
            fieldhook_policy::manifest::Manifest::load(&dir.join("plugin.toml")).unwrap();
        assert!(
            manifest.component.is_file(),
            "{lang}: built where plugin.toml says"
        );
        let ran = run(
            bin,
            &[
                "plugin",
                "run",
                manifest.component.to_str().unwrap(),
                "--event",
                "sample-event.json",
            ],
            &dir,
            &[],
        );
        let out = stdout(&ran);
        assert!(
            out.contains("decision: deliver 1 request(s)"),
            "{lang}: {out}"
        );
        assert!(out.contains("allowed by [[http]] rule 1"), "{lang}: {out}");
    }
}

/// The edit-try loop: `plugin build --watch --install` puts every saved
/// version into a running daemon's plugins directory, which loads it
/// without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn build_watch_installs_every_saved_version_into_a_running_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        fieldhook(
            &["plugin", "new", "notes-loop", "--lang", "rust"],
            tmp.path()
        )
        .status
        .success()
    );
    let dir = tmp.path().join("notes-loop");
    let admin = AdminApi::new(tmp.path());
    let config = tmp.path().join("fieldhook.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\n{}", admin.config()),
    )
    .unwrap();
    let daemon = DaemonProcess::start(&config);

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("guests");
    let mut watcher = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .args(["plugin", "build", "--watch", "--install"])
        .arg(tmp.path().join("plugins/notes-loop"))
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let version_loaded = |want: &'static str| {
        let admin = &admin;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
            loop {
                let v = admin.get_json("/plugins").await;
                let loaded = v["loaded"].as_array().cloned().unwrap_or_default();
                if loaded
                    .iter()
                    .any(|p| p["name"] == "notes-loop" && p["version"] == want)
                {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "version {want} never loaded: {v}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let first = fieldhook_policy::manifest::Manifest::load(&dir.join("plugin.toml"))
        .unwrap()
        .version;
    assert_eq!(first, "0.1.0", "the scaffold's version");
    version_loaded("0.1.0").await;

    // Save a new version: it is built and loaded with no other step.
    std::fs::write(
        dir.join("plugin.toml"),
        manifest.replace("version = \"0.1.0\"", "version = \"0.1.1\""),
    )
    .unwrap();
    version_loaded("0.1.1").await;
    let _ = watcher.kill();
    let _ = watcher.wait();
    daemon.stop();
}

/// The poller, on a schedule `reconcile` emitting into source `hcp`.
const POLLER: &str = r#"
name = "poller"
version = "1"
[[schedules]]
name = "reconcile"
every = "5m"
source = "hcp"
[config]
api = "https://api.example.com"
[[http]]
host = "api.example.com"
path = "/jobs"
"#;

#[test]
fn run_schedule_runs_the_scheduled_entry_point_and_shows_the_events_it_emitted_unstored() {
    let tmp = tempfile::tempdir().unwrap();
    let poller = guest("poller");
    std::fs::write(tmp.path().join("plugin.toml"), POLLER).unwrap();
    std::fs::write(
        tmp.path().join("responses.json"),
        r#"[{"method":"GET","url":"https://api.example.com/jobs*","status":200,
             "body":[{"key":"job_1@t1","id":"job_1"},{"key":"job_2@t1","id":"job_2"},
                     {"key":"job_1@t1","id":"job_1"}]}]"#,
    )
    .unwrap();
    let args = |extra: &[&'static str]| -> Vec<String> {
        [
            &[
                "plugin",
                "run",
                poller.to_str().unwrap(),
                "--manifest",
                "plugin.toml",
                "--responses",
                "responses.json",
            ][..],
            extra,
        ]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let fieldhook = |args: Vec<String>, dir: &Path| {
        fieldhook(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir)
    };

    let ran = fieldhook(args(&["--schedule", "reconcile"]), tmp.path());
    assert!(ran.status.success(), "{}", stderr(&ran));
    let out = stdout(&ran);
    assert!(
        out.contains("schedule reconcile (emits into source hcp)"),
        "{out}"
    );
    assert!(
        out.contains(
            "GET https://api.example.com/jobs?schedule=reconcile -> answered 200 (canned)"
        ),
        "{out}"
    );
    assert!(
        out.contains("emitted events (recorded, not stored):"),
        "{out}"
    );
    assert!(
        out.contains("[0] job.updated job/job_1 key job_1@t1 -> stored"),
        "{out}"
    );
    assert!(
        out.contains("[1] job.updated job/job_2 key job_2@t1 -> stored"),
        "{out}"
    );
    assert!(
        out.contains("[2] job.updated job/job_1 key job_1@t1 -> duplicate"),
        "a key emitted twice in one run is a duplicate, as the store says: {out}"
    );
    assert!(out.contains("decision: drop: 2 of 3 jobs new"), "{out}");

    let json = fieldhook(args(&["--schedule", "reconcile", "--json"]), tmp.path());
    assert!(json.status.success(), "{}", stderr(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["event"], serde_json::Value::Null);
    assert_eq!(report["schedule"]["source"], "hcp");
    let emitted = report["schedule"]["emitted"].as_array().unwrap();
    assert_eq!(emitted.len(), 3);
    assert_eq!(emitted[1]["dedupe_key"], "job_2@t1");
    assert_eq!(emitted[1]["json"]["data"]["id"], "job_2");
    assert_eq!(report["decision"]["type"], "drop");

    let unknown = fieldhook(args(&["--schedule", "nightly"]), tmp.path());
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no schedule `nightly`; its [[schedules]]: reconcile"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn run_schedule_gives_the_run_a_scratch_kv_so_servicetrade_reconcile_runs_on_its_samples() {
    // The samples answer the job API in two pages; the run reads both.
    let tmp = tempfile::tempdir().unwrap();
    let plugin = workspace_root().join("plugins/servicetrade-reconcile");
    let component = guest("servicetrade-reconcile");
    let out = fieldhook(
        &[
            "plugin",
            "run",
            component.to_str().unwrap(),
            "--manifest",
            plugin.join("plugin.toml").to_str().unwrap(),
            "--schedule",
            "jobs",
            "--responses",
            plugin.join("samples/responses.json").to_str().unwrap(),
        ],
        tmp.path(),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("[0] job.updated job/5521 key job|5521|1795000000 -> stored"),
        "{text}"
    );
    assert!(
        text.contains("[1] job.updated job/5530 key job|5530|1795000300 -> stored"),
        "{text}"
    );
    assert!(
        text.contains("GET https://api.servicetrade.com/api/job?page=2&updatedAfter="),
        "{text}"
    );
    assert!(
        text.contains("decision: drop: 2 of 2 changed jobs new (watermark "),
        "the watermark was read from and written to kv: {text}"
    );
}
