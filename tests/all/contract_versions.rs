//! One host serves plugins of every `fieldhook:plugin` version it lists,
//! side by side: a 0.1 plugin (the `echo` fixture) and a 0.2 plugin (the
//! `trapper` fixture) see the same event, and 0.2's `skip` means what 0.1's
//! `filter` returning false meant.

use std::sync::Arc;

use crate::support::{load_guest, offline_caps};
use fieldhook_core::event::{EntityRecord, EventRecord};
use fieldhook_runtime::{CodeCache, Decision, Run, Runtime, WitVersion};

/// The second attempt at a debounced burst of three events.
const SECOND_RUN_OF_A_BURST: Run = Run {
    attempt: 2,
    coalesced: 3,
};

fn event() -> Arc<EventRecord> {
    Arc::new(EventRecord {
        id: "evt_01KV".into(),
        source: "hcp".into(),
        vendor: "housecall-pro".into(),
        kind: "job.completed".into(),
        entity: Some(EntityRecord {
            kind: "job".into(),
            id: "job_7f3e".into(),
            url: None,
        }),
        occurred_at: Some("2026-11-20T15:04:05Z".into()),
        dedupe_key: Some("hcp:job_7f3e:completed".into()),
        parsed: true,
        received_at_ms: 1_763_650_000_000,
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("x-test".into(), b"sent by the test".to_vec()),
        ],
        body: br#"{"event":"job.completed","job":{"id":"job_7f3e"}}"#.to_vec(),
    })
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[tokio::test]
async fn a_0_1_and_a_0_2_plugin_run_side_by_side_on_the_same_event() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime =
        Runtime::new(CodeCache::new(&tmp.path().join("compiled")), offline_caps()).unwrap();
    let v0_1 = load_guest(
        &runtime,
        "echo",
        "name = \"echo\"\nversion = \"1\"\n[config]\nendpoint = \"https://x.example.com/echo\"\n",
    );
    let v0_2 = load_guest(
        &runtime,
        "trapper",
        "name = \"fields\"\nversion = \"1\"\n[config]\nmode = \"fields\"\n",
    );
    assert_eq!(v0_1.wit_version, WitVersion::V0_1);
    assert_eq!(v0_2.wit_version, WitVersion::V0_2);

    let event = event();
    let Ok(Decision::Deliver(requests)) = runtime
        .call(&v0_1, &event, SECOND_RUN_OF_A_BURST)
        .await
        .result
    else {
        panic!("the 0.1 plugin did not deliver");
    };
    let seen_by_0_1 = String::from_utf8(requests[0].body.clone()).unwrap();
    assert_eq!(
        lines(&seen_by_0_1),
        [
            "id=evt_01KV",
            "source=hcp",
            "vendor=housecall-pro",
            "kind=job.completed",
            "entity=job job_7f3e -",
            "occurred_at=2026-11-20T15:04:05Z",
            "attempt=2",
            // The two sent, and `fieldhook-coalesced: 3`: how 0.1 learns
            // of the burst.
            "headers=3",
            "body_bytes=49",
        ]
    );

    let report = runtime.call(&v0_2, &event, SECOND_RUN_OF_A_BURST).await;
    let Ok(Decision::Drop(seen_by_0_2)) = report.result else {
        panic!("the 0.2 plugin did not answer: {:?}", report.result);
    };
    assert_eq!(
        lines(&seen_by_0_2),
        [
            "id=evt_01KV",
            "source=hcp",
            "vendor=housecall-pro",
            "kind=job.completed",
            "entity=job job_7f3e -",
            "received_at_ms=1763650000000",
            "occurred_at=2026-11-20T15:04:05Z",
            "attempt=2",
            // New in 0.2: what 0.1 plugins cannot see.
            "dedupe_key=hcp:job_7f3e:completed",
            "parsed=true",
            "coalesced=3",
            "header(X-Test)=sent by the test",
            // The two sent: 0.2 reads the burst from `coalesced`.
            "headers=2",
            "body_bytes=49",
        ]
    );
}

#[tokio::test]
async fn a_0_2_skip_is_a_filtered_event_and_leaves_a_warm_instance_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime =
        Runtime::new(CodeCache::new(&tmp.path().join("compiled")), offline_caps()).unwrap();
    let skip = load_guest(
        &runtime,
        "trapper",
        "name = \"skip\"\nversion = \"1\"\n[runtime]\ninstances = \"reuse\"\n[config]\nmode = \"skip\"\n",
    );
    // The lent event is gone from the instance's table after each call:
    // many calls on one warm instance neither fail nor keep events alive.
    let event = event();
    for _ in 0..100 {
        let report = runtime.call(&skip, &event, Run::FIRST).await;
        assert_eq!(report.result, Ok(Decision::Filtered));
    }
    assert_eq!(skip.warm_instances(), 1);
    assert_eq!(Arc::strong_count(&event), 1, "no call kept the event");
}
