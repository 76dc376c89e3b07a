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
fn new_scaffolds_a_rust_plugin_that_builds_and_runs_on_its_sample_event() {
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
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("guests");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(built.success(), "the scaffolded plugin builds");
    let component = target.join("wasm32-wasip2/release/job_notes.wasm");
    let run = fieldhook(
        &[
            "plugin",
            "run",
            component.to_str().unwrap(),
            "--manifest",
            "plugin.toml",
            "--event",
            "sample-event.json",
        ],
        &dir,
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let out = stdout(&run);
    assert!(out.contains("decision: deliver 1 request(s)"), "{out}");
    assert!(out.contains("\"job_id\":\"job_7f3e\""), "{out}");

    for lang in ["js", "python"] {
        let name = format!("notes-{lang}");
        let created = fieldhook(&["plugin", "new", &name, "--lang", lang], tmp.path());
        assert!(created.status.success(), "{}", stderr(&created));
        assert!(tmp.path().join(&name).join("wit/plugin.wit").is_file());
        assert!(tmp.path().join(&name).join("plugin.toml").is_file());
    }
}
