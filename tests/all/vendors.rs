//! Every vendor through the real daemon and the real `fieldhook verify`:
//! what each one is answered, what is stored, and what the debugger says.
//!
//! Every signature sent here comes from the public vectors of
//! shared/vendors.md or from tests/vendors/sign_cases.py (Python `hmac` and
//! the `standardwebhooks` package), never from the code under test. The few
//! cases that must be signed "now" (inside a tolerance) use the `hmac` crate
//! directly in tests/support.

// Generated (tests/vendors/sign_cases.py): kept byte for byte as printed.
#[rustfmt::skip]
mod signed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use fieldhook_core::event::EventRecord;
use fieldhook_store::EventStore;
use signed::*;

// ---- public vectors (shared/vendors.md), byte for byte

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_PUBLIC_BODY: &str = r#"{"test": 2432232314}"#;
const SW_PUBLIC_HEADERS: &[(&str, &str)] = &[
    ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
    ("webhook-timestamp", "1614265330"),
    (
        "webhook-signature",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
];

const JOBBER_SECRET: &str = "jobber_oauth_client_secret_EXAMPLE";
const JOBBER_PUBLIC_BODY: &str = r#"{"data":{"webHookEvent":{"topic":"CLIENT_CREATE","appId":"3ef22a50-072d-430c-a78f-b7646657560b","accountId":"MQ==","itemId":"MQ==","occurredAt":"2021-08-12T16:31:36-06:00"}}}"#;
const JOBBER_PUBLIC_SIG: &str = "ZUrPt1oelKKAcEnrKej5+lntn+gVUhdX7ehfHKseCxQ=";

const HCP_PUBLIC_BODY: &str = r#"{"event":"customer.updated","event_occurred_at":"2026-07-24T05:38:14Z","company_id":"233b75f9-4b4f-4a83-b21b-c1ed9e571daa","customer":{"id":"cus_d8924aacf0d24a888280e12187e40f6f","first_name":"ZZ-Webhook","last_name":"Test-DELETE-ME"}}"#;
const HCP_PUBLIC_TS: &str = "1784871495";
const HCP_PUBLIC_SIG: &str = "a0e715e3aadf86b13003475fdd315d96034bb61ee2304dd415050d113c0d5d7e";

const TITAN_SECRET: &str = "st-hmac-key-0123456789abcdef0123456789abcdef";
const TITAN_PUBLIC_BODY: &str = r#"{"eventId":"8d9f3c7e-0000-4000-8000-000000000001","eventType":"job.completed","tenantId":123456789,"data":{"id":98765}}"#;
const TITAN_PUBLIC_HEX: &str = "dae02121ce643550505dae60ffd1b81705693e17814a169a7314ec8ef629387f";
const TITAN_PUBLIC_B64: &str = "2uAhIc5kNVBQXa5g/9G4FwVpPheBShaacxTsjvYpOH8=";

const M8_HANDSHAKE: &str = "mode=subscribe&challenge=7f3c2a9e41b8";

// ---- our own secrets

const M8_TOKEN: &str = "m8-url-token-6f1c0d2b9a8e4f37";
const ST_TOKEN: &str = "st-url-token-3b9e41c07d2a5f68";
const API_KEY: &str = "fh-api-key-7d1e";

const M8_OBJECT: &str = r#"{"object":"job","entry":[{"changed_fields":["status"],"time":"2026-11-20 15:04:05","uuid":"job-uuid-1"}],"resource_url":"https://api.servicem8.com/api_1.0/job/job-uuid-1.json"}"#;
/// M8_OBJECT form-encoded (Python `urllib.parse.urlencode`).
const M8_OBJECT_FORM: &str = "object=job&entry=%5B%7B%22changed_fields%22%3A%5B%22status%22%5D%2C%22time%22%3A%222026-11-20+15%3A04%3A05%22%2C%22uuid%22%3A%22job-uuid-1%22%7D%5D&resource_url=https%3A%2F%2Fapi.servicem8.com%2Fapi_1.0%2Fjob%2Fjob-uuid-1.json";
const ST_MESSAGE: &str = r#"{"messageId":"6f1d2c3b-1111-4222-8333-944455556666","timestamp":"1401833057","data":[{"action":"updated","timestamp":1401833052,"userId":1234,"entity":{"type":"appointment","id":34872,"uri":"https://api.servicetrade.com/api/appointment/34872"},"changeset":[{"field":"status","oldValue":"scheduled","newValue":"completed"}]},{"action":"created","timestamp":1401833053,"userId":1234,"entity":{"type":"jobitem","id":99,"uri":"https://api.servicetrade.com/api/jobitem/99"},"changeset":[]},{"action":"updated","timestamp":1401833054,"userId":1234,"entity":{"type":"job","id":5501,"uri":"https://api.servicetrade.com/api/job/5501"},"changeset":[]}]}"#;

/// One daemon configuration with a source per vendor and variant.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let write =
            |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("m8.token", M8_TOKEN);
        write("st.token", ST_TOKEN);
        write("hcp.secret", HCP_SECRET);
        write("jobber.secret", JOBBER_SECRET);
        write("jobber.previous", JOBBER_PREVIOUS_SECRET);
        write("titan.secret", TITAN_SECRET);
        write("sw.secret", SW_SECRET);
        write("hmac.secret", HMAC_KEY);
        write("basic.secret", BASIC_SECRET);
        write("apikey.secret", API_KEY);
        std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins dir");
        write(
            "fieldhook.toml",
            r#"
listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"
max_body_bytes = 65536

[[sources]]
name = "m8"
vendor = "servicem8"
secret_file = "m8.token"

[[sources]]
name = "m8-office"
vendor = "servicem8"
secret_file = "m8.token"
allowed_ips = ["192.0.2.0/24"]

[[sources]]
name = "m8-local"
vendor = "servicem8"
secret_file = "m8.token"
allowed_ips = ["127.0.0.0/8", "::1"]

[[sources]]
name = "st"
vendor = "servicetrade"
secret_file = "st.token"

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"
tolerance_secs = 0

[[sources]]
name = "hcp-live"
vendor = "housecall-pro"
secret_file = "hcp.secret"

[[sources]]
name = "jobber"
vendor = "jobber"
secret_file = "jobber.secret"
previous_secret_file = "jobber.previous"

[[sources]]
name = "titan"
vendor = "servicetitan"
secret_file = "titan.secret"

[[sources]]
name = "sw"
vendor = "standard-webhooks"
secret_file = "sw.secret"
tolerance_secs = 0

[[sources]]
name = "sw-live"
vendor = "standard-webhooks"
secret_file = "sw.secret"

[[sources]]
name = "hmac512"
vendor = "hmac"
secret_file = "hmac.secret"
algorithm = "sha512"
encoding = "base64"
prefix = "sha512="
header = "X-Hub-Signature-512"

[[sources]]
name = "hmac1"
vendor = "hmac"
secret_file = "hmac.secret"
algorithm = "sha1"

[[sources]]
name = "hmac-ts"
vendor = "hmac"
secret_file = "hmac.secret"
timestamp_header = "X-Timestamp"
signed_payload = "{timestamp}.{body}"

[[sources]]
name = "basic"
vendor = "basic-auth"
secret_file = "basic.secret"

[[sources]]
name = "apikey"
vendor = "api-key"
secret_file = "apikey.secret"
"#,
        );
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldhook.toml")
    }

    fn start(&self) -> Daemon {
        Daemon {
            process: DaemonProcess::start(&self.config()),
            client: reqwest::Client::new(),
        }
    }

    /// The stopped daemon's store.
    fn store(&self) -> EventStore {
        EventStore::open(&self.dir.path().join("data").join("db")).expect("store opens")
    }
}

struct Daemon {
    process: DaemonProcess,
    client: reqwest::Client,
}

/// What the daemon answered.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    /// `{"stored":[ids],"duplicates":[ids]}` of a 200.
    fn ids(&self) -> (Vec<String>, Vec<String>) {
        assert_eq!(
            self.status, 200,
            "expected 200, got {} `{}`",
            self.status, self.body
        );
        let v: serde_json::Value = serde_json::from_str(&self.body).expect("JSON answer");
        let list = |k: &str| -> Vec<String> {
            v[k].as_array()
                .expect("an id list")
                .iter()
                .map(|id| id.as_str().expect("string id").to_owned())
                .collect()
        };
        (list("stored"), list("duplicates"))
    }

    /// The one stored id of a 200.
    fn stored_one(&self) -> String {
        let (stored, duplicates) = self.ids();
        assert_eq!((stored.len(), duplicates.len()), (1, 0), "{}", self.body);
        stored[0].clone()
    }
}

impl Daemon {
    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{path}", self.process.url))
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.expect("daemon answers");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("answer body");
        Answer {
            status,
            content_type,
            body,
        }
    }

    fn stop(self) {
        self.process.stop();
    }
}

fn event(store: &EventStore, id: &str) -> EventRecord {
    store
        .event(id)
        .expect("readable")
        .unwrap_or_else(|| panic!("event {id} not stored"))
}

// ======================================================= ServiceM8

#[tokio::test]
async fn servicem8_handshake_is_answered_with_exactly_the_challenge_and_nothing_is_stored() {
    let setup = Setup::new();
    let d = setup.start();
    let path = format!("/hooks/m8/{M8_TOKEN}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let a = d.post(&path, &form, M8_HANDSHAKE).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "7f3c2a9e41b8", "the body is exactly the challenge");
    assert!(
        a.content_type.starts_with("text/plain"),
        "{}",
        a.content_type
    );
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

#[tokio::test]
async fn servicem8_object_webhook_is_stored_with_kind_entity_and_dedupe_and_a_replay_once() {
    let setup = Setup::new();
    let d = setup.start();
    let path = format!("/hooks/m8/{M8_TOKEN}");
    let json = [("content-type", "application/json")];
    let id = d.post(&path, &json, M8_OBJECT).await.stored_one();
    let (stored, duplicates) = d.post(&path, &json, M8_OBJECT).await.ids();
    assert!(stored.is_empty());
    assert_eq!(
        duplicates,
        std::slice::from_ref(&id),
        "a replay inside the window points at the first event"
    );
    // The same change form-encoded is the same event.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (stored, duplicates) = d.post(&path, &form, M8_OBJECT_FORM).await.ids();
    assert!(stored.is_empty());
    assert_eq!(duplicates, std::slice::from_ref(&id));
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 1);
    let e = event(&store, &id);
    assert_eq!((e.source.as_str(), e.vendor.as_str()), ("m8", "servicem8"));
    assert_eq!(e.kind, "job.updated");
    let entity = e.entity.expect("entity");
    assert_eq!(
        (entity.kind.as_str(), entity.id.as_str()),
        ("job", "job-uuid-1")
    );
    assert_eq!(
        entity.url.as_deref(),
        Some("https://api.servicem8.com/api_1.0/job/job-uuid-1.json")
    );
    assert_eq!(e.occurred_at.as_deref(), Some("2026-11-20 15:04:05"));
    assert!(e.dedupe_key.is_some_and(|k| k.contains("job-uuid-1")));
    assert!(e.parsed);
    assert_eq!(e.body, M8_OBJECT.as_bytes(), "raw bytes kept");
}

#[tokio::test]
async fn servicem8_wrong_or_missing_token_is_401_never_410_or_429() {
    let setup = Setup::new();
    let d = setup.start();
    for path in ["/hooks/m8/not-the-token".to_owned(), "/hooks/m8".to_owned()] {
        let a = d.post(&path, &[], M8_OBJECT).await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        let a = d.post(&path, &[], M8_HANDSHAKE).await;
        assert_eq!(
            a.status, 401,
            "{path}: an unauthenticated handshake is refused too"
        );
    }
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

#[tokio::test]
async fn servicem8_allowed_ips_refuse_other_peers_and_accept_listed_ones() {
    let setup = Setup::new();
    let d = setup.start();
    // The test client connects from 127.0.0.1.
    let a = d
        .post(&format!("/hooks/m8-office/{M8_TOKEN}"), &[], M8_OBJECT)
        .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body.contains("allowed_ips"), "{}", a.body);
    let a = d
        .post(&format!("/hooks/m8-local/{M8_TOKEN}"), &[], M8_HANDSHAKE)
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, "7f3c2a9e41b8"));
    d.post(&format!("/hooks/m8-local/{M8_TOKEN}"), &[], M8_OBJECT)
        .await
        .stored_one();
    d.stop();
    assert_eq!(setup.store().event_count(), 1);
}

#[tokio::test]
async fn servicem8_oversized_body_is_a_retryable_5xx_never_a_4xx() {
    let setup = Setup::new();
    let d = setup.start();
    let huge = format!(r#"{{"object":"job","pad":"{}"}}"#, "x".repeat(70_000));
    let a = d.post(&format!("/hooks/m8/{M8_TOKEN}"), &[], &huge).await;
    assert_eq!(a.status, 500, "{}", a.body);
    d.stop();
}

// ======================================================= ServiceTrade

#[tokio::test]
async fn servicetrade_message_becomes_one_event_per_entity_and_a_redelivery_is_stored_once() {
    let setup = Setup::new();
    let d = setup.start();
    let path = format!("/hooks/st/{ST_TOKEN}");
    let (stored, duplicates) = d.post(&path, &[], ST_MESSAGE).await.ids();
    assert_eq!(stored.len(), 3, "one event per entity");
    assert!(duplicates.is_empty());
    // ServiceTrade delivers more than once: the same message is all duplicates.
    let (again, dup) = d.post(&path, &[], ST_MESSAGE).await.ids();
    assert!(again.is_empty());
    assert_eq!(dup, stored);
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 3);
    let m = "6f1d2c3b-1111-4222-8333-944455556666";
    let expect = [
        ("appointment.updated", "appointment", "34872", "updated"),
        ("jobitem.created", "jobitem", "99", "created"),
        ("job.updated", "job", "5501", "updated"),
    ];
    for (id, (kind, etype, eid, action)) in stored.iter().zip(expect) {
        let e = event(&store, id);
        assert!(e.parsed);
        assert_eq!(
            e.body,
            ST_MESSAGE.as_bytes(),
            "each event keeps the whole message"
        );
        assert_eq!(e.kind, kind);
        let entity = e.entity.expect("entity");
        assert_eq!((entity.kind.as_str(), entity.id.as_str()), (etype, eid));
        assert_eq!(
            entity.url.as_deref(),
            Some(format!("https://api.servicetrade.com/api/{etype}/{eid}").as_str())
        );
        let key = e.dedupe_key.expect("dedupe key");
        if etype == "job" {
            // A job change is the job and its change time, as a poll of the
            // job API finds it (servicetrade-reconcile emits the same key).
            assert_eq!(key, "job|5501|1401833054");
            continue;
        }
        for part in [m, etype, eid, action] {
            assert!(key.contains(part), "dedupe key `{key}` lacks `{part}`");
        }
    }
}

#[tokio::test]
async fn a_servicetrade_message_of_hundreds_of_items_is_stored_once_and_every_event_reads_it_whole()
{
    let setup = Setup::new();
    let d = setup.start();
    let items: Vec<String> = (0..400)
        .map(|i| {
            format!(
                r#"{{"action":"updated","timestamp":1401833052,"entity":{{"type":"appointment","id":{i},"uri":"https://api.servicetrade.com/api/appointment/{i}"}},"changeset":[]}}"#
            )
        })
        .collect();
    let message = format!(
        r#"{{"messageId":"9a1d2c3b-1111-4222-8333-944455550400","timestamp":"1401833057","data":[{}]}}"#,
        items.join(",")
    );
    assert!(message.len() > 60_000, "{} bytes", message.len());
    let (stored, _) = d
        .post(&format!("/hooks/st/{ST_TOKEN}"), &[], &message)
        .await
        .ids();
    assert_eq!(stored.len(), 400, "one event per item");
    // Durable before the 200, so the journal holds all of it now: the
    // message once and a few hundred bytes per event (each event held the
    // whole message before: 400 x 60 kB).
    let journal: u64 = std::fs::read_dir(setup.dir.path().join("data/db/journal"))
        .expect("the journal")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    let bound = message.len() as u64 + 400 * 512;
    assert!(
        journal < bound,
        "{journal} journal bytes for a {} byte message",
        message.len()
    );
    d.stop();
    let store = setup.store();
    assert_eq!(store.message_count(), 1, "the message is stored once");
    for (i, id) in stored.iter().enumerate() {
        let e = event(&store, id);
        assert_eq!(
            e.body,
            message.as_bytes(),
            "event {i} reads the whole message"
        );
        assert_eq!(
            e.entity.expect("entity").id,
            i.to_string(),
            "and its own entity"
        );
    }
}

#[tokio::test]
async fn servicetrade_is_never_answered_4xx_for_an_oversized_or_malformed_delivery() {
    let setup = Setup::new();
    let d = setup.start();
    let path = format!("/hooks/st/{ST_TOKEN}");
    let huge = format!(
        r#"{{"messageId":"m","data":[],"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let a = d.post(&path, &[], &huge).await;
    assert_eq!(
        a.status, 500,
        "ServiceTrade counts 200-499 as delivered: {}",
        a.body
    );
    // Malformed JSON from the right URL: stored raw, unparsed, never dropped.
    let id = d
        .post(&path, &[("content-type", "text/plain")], "{\"messageId\":")
        .await
        .stored_one();
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 1);
    let e = event(&store, &id);
    assert!(!e.parsed);
    assert_eq!(e.kind, "unknown");
    assert_eq!(e.body, b"{\"messageId\":");
}

#[tokio::test]
async fn servicetrade_wrong_or_missing_token_is_401() {
    let setup = Setup::new();
    let d = setup.start();
    assert_eq!(d.post("/hooks/st/wrong", &[], ST_MESSAGE).await.status, 401);
    assert_eq!(d.post("/hooks/st", &[], ST_MESSAGE).await.status, 401);
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

// ======================================================= Housecall Pro

#[tokio::test]
async fn housecall_pro_url_check_is_200_and_not_stored() {
    let setup = Setup::new();
    let d = setup.start();
    let a = d
        .post(
            "/hooks/hcp",
            &[("content-type", "application/json")],
            r#"{"foo":"bar"}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

#[tokio::test]
async fn housecall_pro_public_vector_is_stored_once_and_a_changed_timestamp_is_401() {
    let setup = Setup::new();
    let d = setup.start();
    let headers = [
        ("Api-Timestamp", HCP_PUBLIC_TS),
        ("Api-Signature", HCP_PUBLIC_SIG),
    ];
    let id = d
        .post("/hooks/hcp", &headers, HCP_PUBLIC_BODY)
        .await
        .stored_one();
    let (stored, duplicates) = d.post("/hooks/hcp", &headers, HCP_PUBLIC_BODY).await.ids();
    assert!(stored.is_empty());
    assert_eq!(duplicates, std::slice::from_ref(&id));
    let tampered = [
        ("Api-Timestamp", "1784871496"),
        ("Api-Signature", HCP_PUBLIC_SIG),
    ];
    assert_eq!(
        d.post("/hooks/hcp", &tampered, HCP_PUBLIC_BODY)
            .await
            .status,
        401
    );
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 1);
    let e = event(&store, &id);
    assert_eq!(e.kind, "customer.updated");
    let entity = e.entity.expect("entity");
    assert_eq!(
        (entity.kind.as_str(), entity.id.as_str()),
        ("customer", "cus_d8924aacf0d24a888280e12187e40f6f")
    );
    assert_eq!(e.occurred_at.as_deref(), Some("2026-07-24T05:38:14Z"));
    assert!(e.dedupe_key.is_some());
    assert!(e.parsed);
}

#[tokio::test]
async fn housecall_pro_stale_and_future_timestamps_are_401_and_now_is_accepted() {
    let setup = Setup::new();
    let d = setup.start();
    for (ts, sig) in [
        (HCP_JOB_OLD_TS, HCP_JOB_OLD_SIG),
        (HCP_JOB_FUTURE_TS, HCP_JOB_FUTURE_SIG),
    ] {
        let a = d
            .post(
                "/hooks/hcp-live",
                &[("Api-Timestamp", ts), ("Api-Signature", sig)],
                HCP_JOB,
            )
            .await;
        assert_eq!(a.status, 401, "{ts}: {}", a.body);
        assert!(a.body.contains("tolerance"), "{}", a.body);
    }
    let now = unix_now();
    let sig = sign_housecall_pro(HCP_SECRET, &now, HCP_JOB.as_bytes());
    let id = d
        .post(
            "/hooks/hcp-live",
            &[("Api-Timestamp", &now), ("Api-Signature", &sig)],
            HCP_JOB,
        )
        .await
        .stored_one();
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 1);
    assert_eq!(event(&store, &id).kind, "job.completed");
}

#[tokio::test]
async fn housecall_pro_signed_malformed_json_is_stored_unparsed_with_kind_unknown() {
    let setup = Setup::new();
    let d = setup.start();
    let headers = [
        ("content-type", "application/json"),
        ("Api-Timestamp", HCP_BROKEN_TS),
        ("Api-Signature", HCP_BROKEN_SIG),
    ];
    let id = d
        .post("/hooks/hcp", &headers, HCP_BROKEN)
        .await
        .stored_one();
    d.stop();
    let store = setup.store();
    let e = event(&store, &id);
    assert!(!e.parsed);
    assert_eq!(e.kind, "unknown");
    assert_eq!(e.body, HCP_BROKEN.as_bytes());
}

#[tokio::test]
async fn housecall_pro_missing_or_duplicate_signature_headers_are_401_with_the_reason() {
    let setup = Setup::new();
    let d = setup.start();
    let a = d
        .post(
            "/hooks/hcp",
            &[("Api-Timestamp", HCP_PUBLIC_TS)],
            HCP_PUBLIC_BODY,
        )
        .await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Api-Signature"), "{}", a.body);
    let twice = [
        ("Api-Timestamp", HCP_PUBLIC_TS),
        ("Api-Signature", HCP_PUBLIC_SIG),
        ("Api-Signature", HCP_PUBLIC_SIG),
    ];
    let a = d.post("/hooks/hcp", &twice, HCP_PUBLIC_BODY).await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("2 times"), "{}", a.body);
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

// ======================================================= Jobber

#[tokio::test]
async fn jobber_public_vector_and_the_previous_secret_are_accepted_and_a_tampered_body_is_401() {
    let setup = Setup::new();
    let d = setup.start();
    let h = |sig| [("X-Jobber-Hmac-SHA256", sig)];
    let id = d
        .post("/hooks/jobber", &h(JOBBER_PUBLIC_SIG), JOBBER_PUBLIC_BODY)
        .await
        .stored_one();
    let rotated = d
        .post(
            "/hooks/jobber",
            &h(JOBBER_INVOICE_SIG_PREVIOUS),
            JOBBER_INVOICE,
        )
        .await
        .stored_one();
    let tampered = JOBBER_PUBLIC_BODY.replace("CLIENT_CREATE", "CLIENT_UPDATE");
    assert_eq!(
        d.post("/hooks/jobber", &h(JOBBER_PUBLIC_SIG), &tampered)
            .await
            .status,
        401
    );
    assert_eq!(
        d.post("/hooks/jobber", &[], JOBBER_PUBLIC_BODY)
            .await
            .status,
        401
    );
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 2);
    let e = event(&store, &id);
    assert_eq!(e.kind, "client.created");
    assert_eq!(e.occurred_at.as_deref(), Some("2021-08-12T16:31:36-06:00"));
    let e = event(&store, &rotated);
    assert_eq!(e.kind, "invoice.updated");
    assert_eq!(e.entity.expect("entity").id, "inv-42");
}

// ======================================================= ServiceTitan

#[tokio::test]
async fn servicetitan_hex_and_base64_under_any_known_header_are_one_event() {
    let setup = Setup::new();
    let d = setup.start();
    let id = d
        .post(
            "/hooks/titan",
            &[("X-ServiceTitan-Signature", TITAN_PUBLIC_HEX)],
            TITAN_PUBLIC_BODY,
        )
        .await
        .stored_one();
    // The same event again, signed the other way: deduplicated by eventId.
    let (stored, duplicates) = d
        .post(
            "/hooks/titan",
            &[("X-ST-Signature", TITAN_PUBLIC_B64)],
            TITAN_PUBLIC_BODY,
        )
        .await
        .ids();
    assert!(stored.is_empty());
    assert_eq!(duplicates, std::slice::from_ref(&id));
    let tampered = TITAN_PUBLIC_BODY.replace("98765", "98766");
    let a = d
        .post(
            "/hooks/titan",
            &[("ServiceTitan-Signature", TITAN_PUBLIC_HEX)],
            &tampered,
        )
        .await;
    assert_eq!(a.status, 401);
    let session = d
        .post(
            "/hooks/titan",
            &[("ServiceTitan-Signature", TITAN_SESSION_SIG_HEX)],
            TITAN_SESSION,
        )
        .await
        .stored_one();
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 2);
    let e = event(&store, &id);
    assert_eq!(e.kind, "job.completed");
    assert_eq!(e.entity.expect("entity").id, "98765");
    assert_eq!(
        e.dedupe_key.as_deref(),
        Some("8d9f3c7e-0000-4000-8000-000000000001")
    );
    assert_eq!(event(&store, &session).kind, "scheduling.session_completed");
}

// ======================================================= Standard Webhooks

#[tokio::test]
async fn standard_webhooks_public_vector_is_accepted_and_stale_or_future_is_401() {
    let setup = Setup::new();
    let d = setup.start();
    let id = d
        .post("/hooks/sw", SW_PUBLIC_HEADERS, SW_PUBLIC_BODY)
        .await
        .stored_one();
    let multi = [
        ("webhook-id", SW_ID),
        ("webhook-timestamp", SW_OLD_TS),
        ("webhook-signature", SW_MULTI_SIG),
    ];
    d.post("/hooks/sw", &multi, SW_BODY).await.stored_one();
    for (ts, sig) in [(SW_OLD_TS, SW_OLD_SIG), (SW_FUTURE_TS, SW_FUTURE_SIG)] {
        let headers = [
            ("webhook-id", SW_ID),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ];
        let a = d.post("/hooks/sw-live", &headers, SW_BODY).await;
        assert_eq!(a.status, 401, "{ts}: {}", a.body);
        assert!(a.body.contains("tolerance"), "{}", a.body);
    }
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 2);
    let e = event(&store, &id);
    assert_eq!(
        e.dedupe_key.as_deref(),
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek")
    );
}

// ======================================================= generic HMAC, basic auth, API key

#[tokio::test]
async fn generic_hmac_sha512_base64_prefix_and_sha1_hex_are_accepted_and_wrong_ones_401() {
    let setup = Setup::new();
    let d = setup.start();
    let id = d
        .post(
            "/hooks/hmac512",
            &[("X-Hub-Signature-512", HMAC_SHA512_B64)],
            HMAC_BODY,
        )
        .await
        .stored_one();
    d.post("/hooks/hmac1", &[("X-Signature", HMAC_SHA1_HEX)], HMAC_BODY)
        .await
        .stored_one();
    // The sha1 digest is no sha512 signature, and the sha512 one lacks nothing but is on the wrong source.
    assert_eq!(
        d.post(
            "/hooks/hmac512",
            &[("X-Hub-Signature-512", HMAC_SHA1_HEX)],
            HMAC_BODY
        )
        .await
        .status,
        401
    );
    assert_eq!(
        d.post(
            "/hooks/hmac1",
            &[("X-Signature", HMAC_SHA512_B64)],
            HMAC_BODY
        )
        .await
        .status,
        401
    );
    // A signed timestamp outside the tolerance.
    let a = d
        .post(
            "/hooks/hmac-ts",
            &[
                ("X-Timestamp", HMAC_TS_OLD),
                ("X-Signature", HMAC_TS_OLD_SIG),
            ],
            HMAC_BODY,
        )
        .await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("tolerance"), "{}", a.body);
    d.stop();
    let store = setup.store();
    assert_eq!(store.event_count(), 2);
    assert_eq!(event(&store, &id).kind, "work_order.closed");
}

#[tokio::test]
async fn basic_auth_and_api_key_accept_the_secret_and_refuse_anything_else() {
    let setup = Setup::new();
    let d = setup.start();
    let body = r#"{"event":"job.updated","id":"j1"}"#;
    d.post("/hooks/basic", &[("Authorization", BASIC_HEADER)], body)
        .await
        .stored_one();
    assert_eq!(
        d.post(
            "/hooks/basic",
            &[("Authorization", BASIC_WRONG_HEADER)],
            body
        )
        .await
        .status,
        401
    );
    assert_eq!(d.post("/hooks/basic", &[], body).await.status, 401);
    d.post("/hooks/apikey", &[("X-API-Key", API_KEY)], body)
        .await
        .stored_one();
    assert_eq!(
        d.post("/hooks/apikey", &[("X-API-Key", "fh-api-key-7d1f")], body)
            .await
            .status,
        401
    );
    assert_eq!(
        d.post(
            "/hooks/apikey",
            &[("X-API-Key", API_KEY), ("X-API-Key", API_KEY)],
            body
        )
        .await
        .status,
        401
    );
    d.stop();
    assert_eq!(setup.store().event_count(), 2);
}

// ======================================================= any vendor

#[tokio::test]
async fn an_unknown_source_is_404_and_nothing_is_stored() {
    let setup = Setup::new();
    let d = setup.start();
    let a = d.post("/hooks/nobody", &[], "{}").await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("nobody"), "{}", a.body);
    assert_eq!(
        d.post(&format!("/hooks/nobody/{M8_TOKEN}"), &[], "{}")
            .await
            .status,
        404
    );
    let a = d
        .post(&format!("/hooks/m8/{M8_TOKEN}/extra"), &[], "{}")
        .await;
    assert_eq!(a.status, 404);
    assert!(a.body.contains("/hooks/{source}/{token}"), "{}", a.body);
    d.stop();
    assert_eq!(setup.store().event_count(), 0);
}

// ======================================================= fieldhook verify

struct Verify {
    code: i32,
    stdout: String,
    stderr: String,
}

fn verify(args: &[&str], body: &str) -> Verify {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).expect("write body");
    verify_with_body_file(args, &body_file)
}

fn verify_with_body_file(args: &[&str], body_file: &Path) -> Verify {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
        .arg("verify")
        .args(args)
        .arg("--body-file")
        .arg(body_file)
        .output()
        .expect("fieldhook runs");
    Verify {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn header_args(headers: &[(&str, &str)]) -> Vec<String> {
    headers
        .iter()
        .flat_map(|(n, v)| ["--header".to_owned(), format!("{n}: {v}")])
        .collect()
}

fn with(fixed: &[&str], headers: &[(&str, &str)]) -> Vec<String> {
    fixed
        .iter()
        .map(|s| (*s).to_owned())
        .chain(header_args(headers))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn verify_accepts_every_public_vector_and_exits_0() {
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            with(
                &[
                    "--vendor",
                    "standard-webhooks",
                    "--secret",
                    SW_SECRET,
                    "--at",
                    "1614265330",
                ],
                SW_PUBLIC_HEADERS,
            ),
            SW_PUBLIC_BODY,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ),
        (
            with(
                &["--vendor", "jobber", "--secret", JOBBER_SECRET],
                &[("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG)],
            ),
            JOBBER_PUBLIC_BODY,
            "client.created",
        ),
        (
            with(
                &[
                    "--vendor",
                    "housecall-pro",
                    "--secret",
                    HCP_SECRET,
                    "--at",
                    HCP_PUBLIC_TS,
                ],
                &[
                    ("Api-Timestamp", HCP_PUBLIC_TS),
                    ("Api-Signature", HCP_PUBLIC_SIG),
                ],
            ),
            HCP_PUBLIC_BODY,
            "customer.updated",
        ),
        (
            with(
                &["--vendor", "servicetitan", "--secret", TITAN_SECRET],
                &[("X-ServiceTitan-Signature", TITAN_PUBLIC_HEX)],
            ),
            TITAN_PUBLIC_BODY,
            "job.completed",
        ),
        (
            with(
                &["--vendor", "servicetitan", "--secret", TITAN_SECRET],
                &[("X-ST-Signature", TITAN_PUBLIC_B64)],
            ),
            TITAN_PUBLIC_BODY,
            "job.completed",
        ),
        (
            with(
                &[
                    "--vendor",
                    "servicem8",
                    "--secret",
                    M8_TOKEN,
                    "--token",
                    M8_TOKEN,
                ],
                &[("Content-Type", "application/x-www-form-urlencoded")],
            ),
            M8_HANDSHAKE,
            "body `7f3c2a9e41b8`; nothing is stored",
        ),
        (
            with(&["--vendor", "housecall-pro", "--secret", HCP_SECRET], &[]),
            r#"{"foo":"bar"}"#,
            "nothing is stored",
        ),
    ];
    for (args, body, expect) in cases {
        let out = verify(&strs(&args), body);
        assert_eq!(out.code, 0, "{args:?}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(expect),
            "{args:?}: `{expect}` missing from\n{}",
            out.stdout
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("ACCEPTED") || l.starts_with("HANDSHAKE")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn verify_rejects_every_altered_public_vector_with_the_reason_and_exits_1() {
    let cases: Vec<(Vec<String>, String, &str)> = vec![
        (
            with(
                &["--vendor", "jobber", "--secret", JOBBER_SECRET],
                &[("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG)],
            ),
            JOBBER_PUBLIC_BODY.replace("CLIENT_CREATE", "CLIENT_UPDATE"),
            "signature mismatch",
        ),
        (
            with(
                &[
                    "--vendor",
                    "housecall-pro",
                    "--secret",
                    HCP_SECRET,
                    "--at",
                    HCP_PUBLIC_TS,
                ],
                &[
                    ("Api-Timestamp", "1784871496"),
                    ("Api-Signature", HCP_PUBLIC_SIG),
                ],
            ),
            HCP_PUBLIC_BODY.to_owned(),
            "signature mismatch",
        ),
        (
            with(
                &["--vendor", "servicetitan", "--secret", TITAN_SECRET],
                &[("X-ServiceTitan-Signature", TITAN_PUBLIC_HEX)],
            ),
            TITAN_PUBLIC_BODY.replace("98765", "98766"),
            "signature mismatch",
        ),
        // The public vector judged by today's clock: stale, with the skew.
        (
            with(
                &["--vendor", "standard-webhooks", "--secret", SW_SECRET],
                SW_PUBLIC_HEADERS,
            ),
            SW_PUBLIC_BODY.to_owned(),
            "tolerance is 300s",
        ),
        // A missing header is named.
        (
            with(&["--vendor", "jobber", "--secret", JOBBER_SECRET], &[]),
            JOBBER_PUBLIC_BODY.to_owned(),
            "missing header `X-Jobber-Hmac-SHA256`",
        ),
        // A restricted encoding says which one was tried.
        (
            with(
                &[
                    "--vendor",
                    "servicetitan",
                    "--secret",
                    TITAN_SECRET,
                    "--option",
                    "encoding=hex",
                ],
                &[("X-ST-Signature", TITAN_PUBLIC_B64)],
            ),
            TITAN_PUBLIC_BODY.to_owned(),
            "not a hex",
        ),
        (
            with(
                &[
                    "--vendor",
                    "servicem8",
                    "--secret",
                    M8_TOKEN,
                    "--token",
                    "wrong",
                ],
                &[],
            ),
            M8_HANDSHAKE.to_owned(),
            "URL token missing or wrong",
        ),
    ];
    for (args, body, expect) in cases {
        let out = verify(&strs(&args), &body);
        assert_eq!(out.code, 1, "{args:?}\n{}{}", out.stdout, out.stderr);
        let last = out.stdout.lines().last().unwrap_or("");
        assert!(last.starts_with("REJECTED"), "{}", out.stdout);
        assert!(
            out.stdout.contains(expect),
            "{args:?}: `{expect}` missing from\n{}",
            out.stdout
        );
        assert!(last.contains("fieldhook answers 401"), "{last}");
    }
}

#[test]
fn verify_tries_a_second_secret_and_checks_allowed_ips_against_peer() {
    let out = verify(
        &strs(&with(
            &[
                "--vendor",
                "jobber",
                "--secret",
                "current-secret",
                "--secret",
                JOBBER_SECRET,
            ],
            &[("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG)],
        )),
        JOBBER_PUBLIC_BODY,
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("secret #2"), "{}", out.stdout);

    let base = [
        "--vendor",
        "servicem8",
        "--secret",
        M8_TOKEN,
        "--token",
        M8_TOKEN,
        "--option",
        r#"allowed_ips=["10.0.0.0/8"]"#,
    ];
    let inside = [&base[..], &["--peer", "10.1.2.3"]].concat();
    assert_eq!(verify(&inside, M8_OBJECT).code, 0);
    let outside = [&base[..], &["--peer", "192.0.2.1"]].concat();
    let out = verify(&outside, M8_OBJECT);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("outside allowed_ips"), "{}", out.stdout);
}

#[test]
fn verify_uses_a_configured_source() {
    let setup = Setup::new();
    let config = setup.config();
    let config = config.to_str().expect("utf-8 path");
    let args = with(
        &["--config", config, "--source", "jobber"],
        &[("X-Jobber-Hmac-SHA256", JOBBER_INVOICE_SIG_PREVIOUS)],
    );
    let out = verify(&strs(&args), JOBBER_INVOICE);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("secret #2 (previous)"),
        "{}",
        out.stdout
    );
    let args = with(
        &["--config", config, "--source", "hcp"],
        &[
            ("Api-Timestamp", HCP_PUBLIC_TS),
            ("Api-Signature", HCP_PUBLIC_SIG),
        ],
    );
    assert_eq!(
        verify(&strs(&args), HCP_PUBLIC_BODY).code,
        0,
        "tolerance_secs = 0 comes from the config"
    );

    let out = verify(&["--config", config, "--source", "nope"], "{}");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no source named `nope`") && out.stderr.contains("jobber"),
        "{}",
        out.stderr
    );
}

#[test]
fn verify_exits_2_for_a_bad_invocation_and_says_what_to_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["--vendor", "jobber"], "--secret"),
        (&["--vendor", "jobbr", "--secret", "x"], "known vendors"),
        (
            &[
                "--vendor",
                "jobber",
                "--secret",
                "x",
                "--header",
                "no colon here",
            ],
            "Name: value",
        ),
        (
            &["--vendor", "jobber", "--secret", "x", "--option", "nope=1"],
            "nope",
        ),
        (
            &[
                "--vendor",
                "servicem8",
                "--secret",
                "x",
                "--option",
                r#"allowed_ips=["10.0.0.1/8"]"#,
            ],
            "host bits",
        ),
        (&["--secret", "x"], "--vendor"),
        (
            &[
                "--vendor", "jobber", "--config", "f.toml", "--source", "s", "--secret", "x",
            ],
            "cannot be used with",
        ),
    ];
    for (args, expect) in cases {
        let out = verify(args, "{}");
        assert_eq!(out.code, 2, "{args:?}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(expect),
            "{args:?}: `{expect}` missing from\n{}",
            out.stderr
        );
    }
    let out = verify_with_body_file(
        &["--vendor", "jobber", "--secret", "x"],
        Path::new("/nonexistent/body"),
    );
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--body-file"), "{}", out.stderr);
}

/// The daemon's answer and `fieldhook verify`'s verdict agree on each
/// vendor: one is the debugger for the other.
#[tokio::test]
async fn verify_and_the_daemon_agree_on_the_status() {
    let setup = Setup::new();
    let d = setup.start();
    let tampered = JOBBER_PUBLIC_BODY.replace("CLIENT_CREATE", "CLIENT_UPDATE");
    for body in [JOBBER_PUBLIC_BODY, tampered.as_str()] {
        let a = d
            .post(
                "/hooks/jobber",
                &[("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG)],
                body,
            )
            .await;
        let out = verify(
            &strs(&with(
                &["--vendor", "jobber", "--secret", JOBBER_SECRET],
                &[("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG)],
            )),
            body,
        );
        let said = if out.code == 0 { 200 } else { 401 };
        assert_eq!(a.status, said, "{}", out.stdout);
    }
    d.stop();
}

#[tokio::test]
async fn the_content_type_never_decides_the_raw_bytes_are_verified_and_parsed() {
    let setup = Setup::new();
    let d = setup.start();
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("X-Jobber-Hmac-SHA256", JOBBER_PUBLIC_SIG),
    ];
    let id = d
        .post("/hooks/jobber", &headers, JOBBER_PUBLIC_BODY)
        .await
        .stored_one();
    d.stop();
    let store = setup.store();
    let e = event(&store, &id);
    assert!(e.parsed, "JSON sent as a form is still JSON");
    assert_eq!(e.kind, "client.created");
}

// ======================================================= what reaches plugins

/// The normalized fields travel from the vendor verifier through the store
/// into the plugin's `event` record: the echo fixture plugin sends back
/// what it received.
#[tokio::test]
async fn every_normalized_field_reaches_the_plugin_once_per_servicetrade_entity() {
    let dest = FakeDestination::start().await;
    let setup = Setup::new();
    install_plugin(
        &setup.dir.path().join("plugins"),
        "echo",
        &guest("echo"),
        &format!(
            r#"
name = "echo"
version = "0.1.0"

[[subscriptions]]
source = "st"

[[subscriptions]]
source = "hcp"

# Deliveries follow the same grants as the plugin's own HTTP.
[[http]]
scheme = "http"
host = "127.0.0.1"
port = {}
methods = ["POST"]
path = "/echo"

[config]
endpoint = "{}/echo"
"#,
            dest.url.rsplit(':').next().unwrap_or_default(),
            dest.url
        ),
    );
    let d = setup.start();
    let (stored, _) = d
        .post(&format!("/hooks/st/{ST_TOKEN}"), &[], ST_MESSAGE)
        .await
        .ids();
    let hcp = d
        .post(
            "/hooks/hcp",
            &[
                ("Api-Timestamp", HCP_PUBLIC_TS),
                ("Api-Signature", HCP_PUBLIC_SIG),
            ],
            HCP_PUBLIC_BODY,
        )
        .await
        .stored_one();
    let got = dest.wait_for(4, Duration::from_secs(60)).await;
    d.stop();
    assert_eq!(got.len(), 4, "one delivery per event");
    let seen: std::collections::HashMap<String, String> = got
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let id = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("id="))
                .expect("id line")
                .to_owned();
            (id, text)
        })
        .collect();
    let expect = |id: &str,
                  source: &str,
                  vendor: &str,
                  kind: &str,
                  entity: &str,
                  occurred: &str,
                  bytes: usize| {
        let text = seen
            .get(id)
            .unwrap_or_else(|| panic!("no delivery for {id}: {seen:?}"));
        let want = format!(
            "id={id}\nsource={source}\nvendor={vendor}\nkind={kind}\nentity={entity}\noccurred_at={occurred}\nattempt=1\n"
        );
        assert!(text.starts_with(&want), "got\n{text}\nwant\n{want}");
        assert!(text.contains(&format!("body_bytes={bytes}\n")), "{text}");
    };
    let st = ST_MESSAGE.len();
    let api = "https://api.servicetrade.com/api";
    expect(
        &stored[0],
        "st",
        "servicetrade",
        "appointment.updated",
        &format!("appointment 34872 {api}/appointment/34872"),
        "1401833052",
        st,
    );
    expect(
        &stored[1],
        "st",
        "servicetrade",
        "jobitem.created",
        &format!("jobitem 99 {api}/jobitem/99"),
        "1401833053",
        st,
    );
    expect(
        &stored[2],
        "st",
        "servicetrade",
        "job.updated",
        &format!("job 5501 {api}/job/5501"),
        "1401833054",
        st,
    );
    expect(
        &hcp,
        "hcp",
        "housecall-pro",
        "customer.updated",
        "customer cus_d8924aacf0d24a888280e12187e40f6f -",
        "2026-07-24T05:38:14Z",
        HCP_PUBLIC_BODY.len(),
    );
}
