//! Warm instance reuse: per-call state resets, and the recycle policy
//! retires instances after N calls, on a trap and past their memory limit.

use std::path::Path;
use std::sync::Arc;

use crate::support::{load_guest, offline_caps};
use fieldhook_core::event::EventRecord;
use fieldhook_runtime::{CodeCache, Decision, InstancePolicy, Run, Runtime};

fn event(n: u32) -> Arc<EventRecord> {
    Arc::new(EventRecord {
        id: format!("evt_{n}"),
        source: "hcp".into(),
        vendor: "housecall-pro".into(),
        kind: "job.completed".into(),
        entity: None,
        occurred_at: None,
        dedupe_key: None,
        parsed: true,
        received_at_ms: 0,
        headers: Vec::new(),
        body: br#"{"job":{"id":"job_1"}}"#.to_vec(),
    })
}

fn runtime(dir: &Path) -> Runtime {
    Runtime::new(CodeCache::new(&dir.join("compiled")), offline_caps()).unwrap()
}

#[tokio::test]
async fn a_reused_instance_starts_each_call_with_an_empty_log_and_retires_after_its_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    let plugin = load_guest(
        &runtime,
        "relay",
        "name = \"relay\"\nversion = \"1\"\n[runtime]\ninstances = \"reuse\"\nrecycle_after_calls = 3\n\
         [config]\nendpoint = \"https://x.example.com/\"\nlabel = \"warm\"\n",
    );
    assert!(matches!(plugin.instances, InstancePolicy::Reuse(_)));

    let mut warm_after = Vec::new();
    for n in 1..=4 {
        let report = runtime.call(&plugin, &event(n), Run::FIRST).await;
        assert!(
            matches!(report.result, Ok(Decision::Deliver(_))),
            "{:?}",
            report.result
        );
        let logs: Vec<_> = report.logs.iter().map(|l| l.message.clone()).collect();
        assert_eq!(
            logs,
            vec![format!("relay warm: evt_{n}")],
            "only this call's log lines"
        );
        warm_after.push(plugin.warm_instances());
    }
    // Kept after calls 1 and 2, retired after its 3rd, a new one after call 4.
    assert_eq!(warm_after, vec![1, 1, 0, 1]);
}

#[tokio::test]
async fn a_trapped_instance_is_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    let plugin = load_guest(
        &runtime,
        "trapper",
        "name = \"trapper\"\nversion = \"1\"\n[runtime]\ninstances = \"reuse\"\n[config]\nmode = \"trap\"\n",
    );
    let report = runtime.call(&plugin, &event(1), Run::FIRST).await;
    assert!(report.result.is_err());
    assert_eq!(plugin.warm_instances(), 0);
}

#[tokio::test]
async fn an_instance_whose_memory_grew_past_the_threshold_is_retired() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    // Any Rust guest's memory is past 1 MiB once it has run.
    let plugin = load_guest(
        &runtime,
        "relay",
        "name = \"relay\"\nversion = \"1\"\n[runtime]\ninstances = \"reuse\"\nrecycle_memory_mb = 1\n\
         [config]\nendpoint = \"https://x.example.com/\"\n",
    );
    let report = runtime.call(&plugin, &event(1), Run::FIRST).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert!(
        report.peak_memory_bytes > 1024 * 1024,
        "{}",
        report.peak_memory_bytes
    );
    assert_eq!(plugin.warm_instances(), 0);
}

#[tokio::test]
async fn a_small_component_runs_on_a_fresh_instance_per_call_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = runtime(tmp.path());
    let plugin = load_guest(
        &runtime,
        "relay",
        "name = \"relay\"\nversion = \"1\"\n[config]\nendpoint = \"https://x.example.com/\"\n",
    );
    assert_eq!(plugin.instances, InstancePolicy::Fresh);
    runtime
        .call(&plugin, &event(1), Run::FIRST)
        .await
        .result
        .unwrap();
    assert_eq!(plugin.warm_instances(), 0);
}
