//! Capabilities, specified by hostile and honest plugins: outbound HTTP only
//! as the manifest grants, credentials the plugin never sees, hard limits,
//! and a key-value store per plugin.
//!
//! Most tests run plugins in-process through the library's runtime (fast,
//! exact reasons); the last ones run the real daemon to show a hostile
//! plugin's job dead-lettered with its reason while the others carry on.
//! Every destination is a fake on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fieldhook::config::Config;
use fieldhook_capabilities::Capabilities;
use fieldhook_core::event::EventRecord;
use fieldhook_core::task::DeliveryPayload;
use fieldhook_credentials::{Credentials, TokenTree};
use fieldhook_pipeline::delivery::{Deliverer, DeliveryGuard, DeliverySettings, Sent};
use fieldhook_policy::manifest::Manifest;
use fieldhook_runtime::directory::PluginSet;
use fieldhook_runtime::{
    CallError, CallReport, CodeCache, Decision, LoadedPlugin, Outbound, Run, Runtime,
};
use fieldhook_store::EventStore;

use crate::support::*;

// ---------------------------------------------------------------- fakes

/// One request a fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: String,
}

/// A fake vendor on 127.0.0.1: an OAuth token endpoint (client credentials
/// and rotating refresh tokens), a ServiceTrade-style session endpoint and
/// an API that only takes the credentials it issued.
#[derive(Default)]
struct Vendor {
    seen: Mutex<Vec<Seen>>,
    tokens_issued: AtomicU32,
    /// Lifetime of issued tokens, seconds.
    expires_in: AtomicU64,
    /// The refresh token the vendor accepts now (rotated on each use).
    refresh_token: Mutex<String>,
    /// Access tokens and sessions currently valid.
    valid: Mutex<Vec<String>>,
    /// Answer the next API call 401 (and invalidate its token).
    reject_next: AtomicBool,
    sessions_open: AtomicU32,
}

struct Fake {
    url: String,
    port: u16,
    vendor: Arc<Vendor>,
    _task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start() -> Self {
        let vendor = Arc::new(Vendor {
            expires_in: AtomicU64::new(3600),
            refresh_token: Mutex::new("rt-0".into()),
            ..Default::default()
        });
        let app = axum::Router::new()
            .fallback(fake_vendor)
            .with_state(vendor.clone());
        let (addr, task) = serve_local(app).await;
        Self {
            url: format!("http://{addr}"),
            port: addr.port(),
            vendor,
            _task: task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.vendor.seen.lock().unwrap().clone()
    }

    fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// `[[http]]` rule naming this fake explicitly (127.0.0.1 and its port).
    fn rule(&self, methods: &str, path: &str, credential: Option<&str>) -> String {
        let cred = credential
            .map(|c| format!("credential = \"{c}\"\n"))
            .unwrap_or_default();
        format!(
            "[[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {}\nmethods = {methods}\npath = \"{path}\"\n{cred}",
            self.port
        )
    }
}

async fn fake_vendor(
    State(v): State<Arc<Vendor>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    v.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let form = |key: &str| -> Option<String> {
        body.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
    };
    match (method.as_str(), uri.path()) {
        ("POST", "/token") => {
            let n = v.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
            let mut answer = serde_json::json!({
                "access_token": format!("at-{n}"),
                "token_type": "Bearer",
                "expires_in": v.expires_in.load(Ordering::SeqCst),
            });
            match form("grant_type").as_deref() {
                Some("client_credentials")
                    if form("client_secret").as_deref() == Some("cs-secret") => {}
                Some("refresh_token") => {
                    let mut current = v.refresh_token.lock().unwrap();
                    if form("refresh_token").as_deref() != Some(current.as_str()) {
                        return (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_grant\"}")
                            .into_response();
                    }
                    *current = format!("rt-{n}");
                    answer["refresh_token"] = current.clone().into();
                }
                _ => {
                    return (StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}")
                        .into_response();
                }
            }
            v.valid.lock().unwrap().push(format!("Bearer at-{n}"));
            axum::Json(answer).into_response()
        }
        ("POST", "/api/auth") => {
            let n = v.sessions_open.fetch_add(1, Ordering::SeqCst) + 1;
            v.valid.lock().unwrap().push(format!("PHPSESSID=sess-{n}"));
            axum::Json(serde_json::json!({"data": {"authToken": format!("sess-{n}")}}))
                .into_response()
        }
        ("DELETE", "/api/auth") => {
            let cookie = header(&headers, "cookie");
            v.valid.lock().unwrap().retain(|t| *t != cookie);
            v.sessions_open.fetch_sub(1, Ordering::SeqCst);
            StatusCode::OK.into_response()
        }
        (_, "/redirect") => (
            StatusCode::FOUND,
            [("location", "http://127.0.0.1:1/secret")],
        )
            .into_response(),
        (_, "/slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late".into_response()
        }
        (_, "/big") => "x".repeat(64 * 1024).into_response(),
        (_, p) if p.starts_with("/open/") => "open".into_response(),
        (_, p) if p.starts_with("/api/") || p.starts_with("/deliver/") => {
            let presented = [
                header(&headers, "authorization"),
                header(&headers, "cookie"),
            ];
            if v.reject_next.swap(false, Ordering::SeqCst) {
                v.valid.lock().unwrap().retain(|t| !presented.contains(t));
                return StatusCode::UNAUTHORIZED.into_response();
            }
            let static_key =
                header(&headers, "x-api-key") == "sm8-key" || presented[0] == "Token hcp-key";
            let valid = v
                .valid
                .lock()
                .unwrap()
                .iter()
                .any(|t| presented.contains(t));
            if static_key || valid {
                "ok".into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------- host

/// A runtime with the daemon's capabilities, built from a configuration
/// whose secrets are files in a temp dir.
struct Host {
    _dir: Option<tempfile::TempDir>,
    path: PathBuf,
    runtime: Runtime,
    caps: Arc<Capabilities>,
    /// Held open for the host's lifetime, like the daemon's store.
    _store: EventStore,
}

fn cache_dir() -> PathBuf {
    workspace_root()
        .join("target")
        .join("capabilities-test-cache")
}

impl Host {
    fn new(fake: &Fake, extra_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut host = Self::at(dir.path(), fake, extra_config);
        host._dir = Some(dir);
        host
    }

    /// A host over the data in `path` (opened again: a restart).
    fn at(path: &Path, fake: &Fake, extra_config: &str) -> Self {
        for (file, secret) in [
            ("hcp.key", "hcp-key"),
            ("sm8.key", "sm8-key"),
            ("st.secret", "cs-secret"),
            ("st.app", "app-key-1"),
            ("jobber.secret", "cs-secret"),
            ("jobber.refresh", "rt-0"),
            ("strade.password", "pw"),
        ] {
            std::fs::write(path.join(file), secret).unwrap();
        }
        let url = &fake.url;
        let text = format!(
            r#"
{extra_config}

[credentials.hcp]
hosts = ["127.0.0.1"]
kind = "api-key"
key_file = "hcp.key"
template = "Token {{key}}"

[credentials.sm8]
hosts = ["127.0.0.1"]
kind = "api-key"
header = "X-API-Key"
key_file = "sm8.key"

[credentials.servicetitan]
hosts = ["127.0.0.1"]
kind = "oauth-client-credentials"
token_url = "{url}/token"
client_id = "cid"
client_secret_file = "st.secret"
headers = {{ "ST-App-Key" = {{ file = "st.app" }} }}

[credentials.jobber]
hosts = ["127.0.0.1"]
kind = "oauth-refresh-token"
token_url = "{url}/token"
client_id = "cid"
client_secret_file = "jobber.secret"
refresh_token_file = "jobber.refresh"

[credentials.broken]
hosts = ["127.0.0.1"]
kind = "oauth-client-credentials"
token_url = "{url}/token"
client_id = "cid"
client_secret_file = "jobber.refresh"

[credentials.servicetrade]
hosts = ["127.0.0.1"]
kind = "servicetrade-session"
auth_url = "{url}/api/auth"
username = "integration@example.com"
password_file = "strade.password"
"#
        );
        let config = Config::parse(&text, path).expect("valid config");
        // The previous host's lock may take a moment to go.
        let deadline = Instant::now() + Duration::from_secs(10);
        let store = loop {
            match EventStore::open(&path.join("db")) {
                Ok(store) => break store,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot reopen the store: {e}"),
            }
        };
        let creds = Credentials::new(
            config.credentials.clone(),
            Some(TokenTree::open(&store).expect("credentials tree")),
        );
        let caps = Arc::new(Capabilities::new(
            config.sandbox.clone(),
            creds,
            Some(&store),
        ));
        let runtime = Runtime::new(CodeCache::new(&cache_dir()), caps.clone()).unwrap();
        Self {
            _dir: None,
            path: path.to_owned(),
            runtime,
            caps,
            _store: store,
        }
    }

    /// Loads the hostile fixture as `name` with `mode`, `url` and more
    /// manifest text (rules, limits).
    fn plugin(&self, name: &str, mode: &str, url: &str, extra: &str) -> LoadedPlugin {
        let wasm = guest("hostile");
        let text = format!(
            "name = \"{name}\"\nversion = \"0.0.1\"\ncomponent = \"{}\"\n{extra}\n[config]\nmode = \"{mode}\"\nurl = \"{url}\"\n",
            wasm.display()
        );
        let manifest =
            Manifest::parse(&text, &self.path.join("plugin.toml")).expect("valid manifest");
        self.caps
            .check_manifest(&manifest)
            .expect("credentials exist");
        self.runtime.load(manifest).expect("loads")
    }

    async fn call(&self, plugin: &LoadedPlugin) -> CallReport {
        self.runtime
            .call(plugin, &std::sync::Arc::new(event()), Run::FIRST)
            .await
    }
}

fn event() -> EventRecord {
    EventRecord {
        id: "evt_01TEST".into(),
        source: "hcp".into(),
        vendor: "housecall-pro".into(),
        kind: "job.completed".into(),
        entity: None,
        occurred_at: None,
        dedupe_key: None,
        parsed: true,
        received_at_ms: 0,
        headers: vec![],
        body: b"{}".to_vec(),
    }
}

fn dropped(r: &CallReport) -> &str {
    match &r.result {
        Ok(Decision::Drop(reason)) => reason,
        other => panic!("expected a drop, got {other:?}"),
    }
}

fn failure(r: &CallReport) -> String {
    match &r.result {
        Err(e) => e.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------- outbound HTTP

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_request_goes_through_and_anything_else_is_denied_naming_the_rule_to_add() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let granted = host.plugin(
        "granted",
        "fetch",
        &format!("{}/open/a", fake.url),
        &fake.rule("[\"GET\"]", "/open/", None),
    );
    assert_eq!(dropped(&host.call(&granted).await), "200 open");

    let p = host.plugin(
        "ungranted",
        "fetch",
        "https://not-granted.example/v1/jobs",
        "",
    );
    let reason = failure(&host.call(&p).await);
    assert!(reason.contains("HttpRequestDenied"), "{reason}");
    assert!(
        reason.contains("GET https://not-granted.example:443/v1/jobs is not granted"),
        "{reason}"
    );
    assert!(
        reason.contains("[[http]]\nscheme = \"https\"\nhost = \"not-granted.example\"\nmethods = [\"GET\"]\npath = \"/v1/jobs\""),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_refused_without_a_rule_naming_it_before_any_connection() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    // A rule for some other host does not open 127.0.0.1.
    let p = host.plugin(
        "loopback",
        "fetch",
        &format!("{}/open/x", fake.url),
        "[[http]]\nhost = \"*.example.com\"\n",
    );
    let reason = failure(&host.call(&p).await);
    assert!(
        reason.contains(&format!("host = \"127.0.0.1\"\nport = {}", fake.port)),
        "{reason}"
    );
    assert!(
        fake.seen().is_empty(),
        "nothing may reach the fake: {:?}",
        fake.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_a_denied_destination_is_not_followed() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin(
        "redirect",
        "redirect",
        &format!("{}/redirect", fake.url),
        &fake.rule("[\"GET\"]", "/redirect", None),
    );
    let reason = failure(&host.call(&p).await);
    assert!(
        reason.contains("http://127.0.0.1:1/secret is not granted"),
        "{reason}"
    );
    assert_eq!(fake.seen().len(), 1, "only the granted request was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_set_its_own_authorization_header() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin(
        "forger",
        "auth-header",
        &format!("{}/api/x", fake.url),
        &fake.rule("[\"GET\"]", "/api/", None),
    );
    let reason = failure(&host.call(&p).await);
    assert!(reason.contains("Forbidden"), "{reason}");
    assert!(fake.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_over_the_size_cap_are_refused() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "[sandbox]\nmax_response_bytes = 4096\n");
    let p = host.plugin(
        "big",
        "fetch",
        &format!("{}/big", fake.url),
        &fake.rule("[\"GET\"]", "/big", None),
    );
    let reason = failure(&host.call(&p).await);
    assert!(reason.contains("HttpResponseBodySize"), "{reason}");
}

// ---------------------------------------------------------------- sandbox and limits

#[tokio::test(flavor = "multi_thread")]
#[allow(unsafe_code)] // std::env::set_var
async fn a_plugin_sees_no_environment_no_files_and_no_sockets() {
    // SAFETY: this variable is read by no other test.
    unsafe { std::env::set_var("FIELDHOOK_CAP_TEST_SECRET", "do-not-leak") };
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin("snoop", "env-files", "", "");
    let seen = dropped(&host.call(&p).await).to_owned();
    assert!(seen.starts_with("env=0 args=0 passwd=Err("), "{seen}");
    assert!(seen.contains("cwd=Err("), "{seen}");
    assert!(seen.contains("tcp=Err("), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_traps_at_the_memory_limit() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin("bomb", "memory", "", "[limits]\nmemory_mb = 32\n");
    let r = host.call(&p).await;
    assert!(
        matches!(r.result, Err(CallError::Trap(_))),
        "{:?}",
        r.result
    );
    assert!(r.peak_memory_bytes <= 32 << 20, "{}", r.peak_memory_bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_stopped_by_its_cpu_limit() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin(
        "spin",
        "spin",
        "",
        "[limits]\ncpu_ms = 200\ntimeout_ms = 20000\n",
    );
    let r = host.call(&p).await;
    assert_eq!(r.result, Err(CallError::CpuLimit(200)));
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_on_http_counts_against_wall_time_not_cpu() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let rule = fake.rule("[\"GET\"]", "/slow", None);
    let p = host.plugin(
        "waiter",
        "fetch",
        &format!("{}/slow", fake.url),
        &format!("[limits]\ncpu_ms = 100\ntimeout_ms = 1000\n{rule}"),
    );
    let r = host.call(&p).await;
    assert_eq!(r.result, Err(CallError::Timeout(1000)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_ceiling_caps_what_a_manifest_asks_for() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "[sandbox]\nmax_cpu_ms = 150\n");
    let p = host.plugin(
        "greedy",
        "spin",
        "",
        "[limits]\ncpu_ms = 60000\ntimeout_ms = 20000\n",
    );
    assert_eq!(host.call(&p).await.result, Err(CallError::CpuLimit(150)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_fails_the_call_and_the_runtime_carries_on() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let trap = host.plugin("trap", "trap", "", "");
    let r = host.call(&trap).await;
    assert!(
        matches!(r.result, Err(CallError::Trap(_))),
        "{:?}",
        r.result
    );
    let ok = host.plugin("ok", "kv", "", "");
    assert_eq!(dropped(&host.call(&ok).await), "count=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_value_store_persists_per_plugin() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let a = host.plugin("counter-a", "kv", "", "");
    let b = host.plugin("counter-b", "kv", "", "");
    assert_eq!(dropped(&host.call(&a).await), "count=1");
    assert_eq!(dropped(&host.call(&a).await), "count=2");
    assert_eq!(dropped(&host.call(&b).await), "count=1");
}

// ---------------------------------------------------------------- credentials

#[tokio::test(flavor = "multi_thread")]
async fn static_api_keys_are_added_by_the_host_in_their_header_templates() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let hcp = host.plugin(
        "hcp",
        "fetch",
        &format!("{}/api/jobs", fake.url),
        &fake.rule("[\"GET\"]", "/api/", Some("hcp")),
    );
    assert_eq!(dropped(&host.call(&hcp).await), "200 ok");
    let sm8 = host.plugin(
        "sm8",
        "fetch",
        &format!("{}/api/job.json", fake.url),
        &fake.rule("[\"GET\"]", "/api/", Some("sm8")),
    );
    assert_eq!(dropped(&host.call(&sm8).await), "200 ok");
    let seen = fake.seen();
    assert_eq!(header(&seen[0].headers, "authorization"), "Token hcp-key");
    assert_eq!(header(&seen[1].headers, "x-api-key"), "sm8-key");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_are_fetched_once_for_concurrent_calls_with_extra_headers() {
    let fake = Fake::start().await;
    let host = Arc::new(Host::new(&fake, ""));
    let p = Arc::new(host.plugin(
        "st",
        "fetch",
        &format!("{}/api/jpm", fake.url),
        &fake.rule("[\"GET\"]", "/api/", Some("servicetitan")),
    ));
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (host, p) = (host.clone(), p.clone());
            tokio::spawn(async move { host.call(&p).await })
        })
        .collect();
    for c in calls {
        assert_eq!(dropped(&c.await.unwrap()), "200 ok");
    }
    assert_eq!(
        fake.vendor.tokens_issued.load(Ordering::SeqCst),
        1,
        "one shared token request"
    );
    for s in fake.seen_at("/api/jpm") {
        assert_eq!(header(&s.headers, "authorization"), "Bearer at-1");
        assert_eq!(header(&s.headers, "st-app-key"), "app-key-1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_gets_one_retry_with_a_fresh_token() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin(
        "st",
        "fetch",
        &format!("{}/api/jpm", fake.url),
        &fake.rule("[\"GET\"]", "/api/", Some("servicetitan")),
    );
    assert_eq!(dropped(&host.call(&p).await), "200 ok");
    fake.vendor.reject_next.store(true, Ordering::SeqCst);
    assert_eq!(dropped(&host.call(&p).await), "200 ok");
    let api = fake.seen_at("/api/jpm");
    let used: Vec<String> = api
        .iter()
        .map(|s| header(&s.headers, "authorization"))
        .collect();
    assert_eq!(used, ["Bearer at-1", "Bearer at-1", "Bearer at-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_are_used_ahead_of_expiry_and_rotations_survive_a_restart() {
    let fake = Fake::start().await;
    // Tokens live 301 s: within the 5-minute margin after one second.
    fake.vendor.expires_in.store(301, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let rule = fake.rule("[\"GET\"]", "/api/", Some("jobber"));
    let url = format!("{}/api/graphql", fake.url);
    {
        let host = Host::at(dir.path(), &fake, "");
        let p = host.plugin("jobber", "fetch", &url, &rule);
        assert_eq!(dropped(&host.call(&p).await), "200 ok");
        assert_eq!(
            dropped(&host.call(&p).await),
            "200 ok",
            "still fresh: no refresh"
        );
        assert_eq!(fake.vendor.tokens_issued.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(dropped(&host.call(&p).await), "200 ok");
        assert_eq!(
            fake.vendor.tokens_issued.load(Ordering::SeqCst),
            2,
            "refreshed ahead of expiry"
        );
    }
    // A restarted daemon uses the rotated refresh token (rt-2): the vendor
    // has invalidated the configured one (rt-0) and the first rotation.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let restarted = Host::at(dir.path(), &fake, "");
    let p = restarted.plugin("jobber", "fetch", &url, &rule);
    assert_eq!(dropped(&restarted.call(&p).await), "200 ok");
    let refreshes: Vec<String> = fake
        .seen_at("/token")
        .iter()
        .filter_map(|s| {
            s.body
                .split('&')
                .find_map(|kv| kv.strip_prefix("refresh_token="))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(refreshes, ["rt-0", "rt-1", "rt-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_servicetrade_session_is_opened_for_the_job_and_closed_after_it() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let p = host.plugin(
        "strade",
        "fetch",
        &format!("{}/api/job/1", fake.url),
        &fake.rule("[\"GET\"]", "/api/job/", Some("servicetrade")),
    );
    assert_eq!(dropped(&host.call(&p).await), "200 ok");
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.vendor.sessions_open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls: Vec<(String, String)> = fake
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST".to_string(), "/api/auth".to_string()),
            ("GET".into(), "/api/job/1".into()),
            ("DELETE".into(), "/api/auth".into())
        ]
    );
    let seen = fake.seen();
    assert_eq!(header(&seen[1].headers, "cookie"), "PHPSESSID=sess-1");
    assert_eq!(header(&seen[2].headers, "cookie"), "PHPSESSID=sess-1");
    assert!(!seen[0].body.is_empty());
}

// ---------------------------------------------------------------- deliveries

async fn deliver(
    host: &Host,
    plugin: LoadedPlugin,
    url: &str,
    headers: Vec<(String, Vec<u8>)>,
) -> Sent {
    let set = Arc::new(PluginSet::default());
    let name = plugin.manifest.name.clone();
    set.insert(plugin);
    let deliverer = Deliverer::new(
        DeliverySettings::default(),
        DeliveryGuard::new(host.caps.clone(), set),
    )
    .unwrap();
    deliverer
        .send(
            &DeliveryPayload {
                event_id: "evt_01TEST".into(),
                plugin: name,
                request: Outbound {
                    method: "POST".into(),
                    url: url.into(),
                    headers,
                    body: b"{}".to_vec(),
                    idempotency_key: None,
                },
                idempotency_key: "k".into(),
            },
            &fieldhook_pipeline::delivery::retryable_status,
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_follow_the_same_grants_and_get_the_credentials() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let rule = fake.rule("[\"POST\"]", "/deliver/", Some("servicetitan"));
    let url = format!("{}/deliver/jobs", fake.url);

    let sent = deliver(
        &host,
        host.plugin("d1", "deliver", &url, &rule),
        &url,
        vec![],
    )
    .await;
    assert_eq!(sent, Sent::Ok(200));
    assert_eq!(
        header(&fake.seen_at("/deliver/jobs")[0].headers, "authorization"),
        "Bearer at-1"
    );

    // One retry after a 401, with a new token.
    fake.vendor.reject_next.store(true, Ordering::SeqCst);
    let sent = deliver(
        &host,
        host.plugin("d2", "deliver", &url, &rule),
        &url,
        vec![],
    )
    .await;
    assert_eq!(sent, Sent::Ok(200));

    let other = format!("{}/elsewhere", fake.url);
    let Sent::Permanent(reason) = deliver(
        &host,
        host.plugin("d3", "deliver", &url, &rule),
        &other,
        vec![],
    )
    .await
    else {
        panic!("an ungranted delivery must be refused")
    };
    assert!(
        reason.contains("refused by the host") && reason.contains("path = \"/elsewhere\""),
        "{reason}"
    );

    let forged = vec![("ST-App-Key".to_string(), b"mine".to_vec())];
    let Sent::Permanent(reason) = deliver(
        &host,
        host.plugin("d4", "deliver", &url, &rule),
        &url,
        forged,
    )
    .await
    else {
        panic!("a credential header set by the plugin must be refused")
    };
    assert!(
        reason.contains("may not set the `ST-App-Key` header"),
        "{reason}"
    );
    assert_eq!(fake.seen_at("/elsewhere").len(), 0);

    // A token endpoint that refuses is worth retrying later (the operator
    // may fix the secret); the reason says what to check.
    let broken = fake.rule("[\"POST\"]", "/deliver/", Some("broken"));
    let Sent::Retryable { reason, .. } = deliver(
        &host,
        host.plugin("d5", "deliver", &url, &broken),
        &url,
        vec![],
    )
    .await
    else {
        panic!("a failing token endpoint is retryable")
    };
    assert!(
        reason.contains("credential `broken`") && reason.contains("HTTP 401"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_to_a_host_name_connects_to_the_address_its_check_approved() {
    // The deliverer's client resolves names only through the guard's
    // checked addresses; a name must still reach its destination.
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let rule = format!(
        "[[http]]\nscheme = \"http\"\nhost = \"localhost\"\nport = {}\nmethods = [\"POST\"]\npath = \"/open/\"\n",
        fake.port
    );
    let url = format!("http://localhost:{}/open/named", fake.port);
    let sent = deliver(
        &host,
        host.plugin("d6", "deliver", &url, &rule),
        &url,
        vec![],
    )
    .await;
    assert_eq!(sent, Sent::Ok(200));
    assert_eq!(fake.seen_at("/open/named").len(), 1);
}

// ---------------------------------------------------------------- escapes from a grant

/// Paths that leave `/api/` for `/internal` on a server that decodes
/// `%2e`, treats `\` as `/` or decodes `%2f`.
const ESCAPES: [&str; 4] = [
    "/api/.%2e/internal",
    "/api/%2e./internal",
    "/api/%2E%2E/internal",
    "/api/..%2Finternal",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_leave_its_path_grant_with_encoded_dot_segments() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    for (n, escape) in ESCAPES.iter().enumerate() {
        let p = host.plugin(
            &format!("dots{n}"),
            "fetch",
            &format!("{}{escape}", fake.url),
            &fake.rule("[\"GET\"]", "/api/", None),
        );
        let reason = failure(&host.call(&p).await);
        assert!(reason.contains("HttpRequestDenied"), "{escape}: {reason}");
    }
    assert!(
        fake.seen().is_empty(),
        "nothing may be sent: {:?}",
        fake.seen()
    );
    // Inside the grant, the request goes out with the path it was checked as.
    let p = host.plugin(
        "inside",
        "fetch",
        &format!("{}/api/x/%2e%2e/open", fake.url),
        &fake.rule("[\"GET\"]", "/api/", None),
    );
    host.call(&p).await;
    assert_eq!(fake.seen_at("/api/open").len(), 1, "{:?}", fake.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_cannot_leave_its_path_grant_with_encoded_dot_segments() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let rule = fake.rule("[\"POST\"]", "/api/", None);
    for (n, escape) in ESCAPES.iter().enumerate() {
        let url = format!("{}{escape}", fake.url);
        let sent = deliver(
            &host,
            host.plugin(&format!("ddots{n}"), "deliver", &url, &rule),
            &url,
            vec![],
        )
        .await;
        assert!(matches!(sent, Sent::Permanent(_)), "{escape}: {sent:?}");
    }
    assert!(
        fake.seen().is_empty(),
        "nothing may be sent: {:?}",
        fake.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_cannot_choose_its_host_header_or_carry_user_info() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    let rule = fake.rule("[\"POST\"]", "/api/", None);
    let url = format!("{}/api/jobs", fake.url);
    let Sent::Permanent(reason) = deliver(
        &host,
        host.plugin("vhost", "deliver", &url, &rule),
        &url,
        vec![("Host".into(), b"admin.internal".to_vec())],
    )
    .await
    else {
        panic!("a delivery setting Host must be refused")
    };
    assert!(reason.contains("`Host`"), "{reason}");

    let with_user = url.replace("http://", "http://admin:hunter2@");
    let Sent::Permanent(reason) = deliver(
        &host,
        host.plugin("userinfo", "deliver", &with_user, &rule),
        &with_user,
        vec![],
    )
    .await
    else {
        panic!("a delivery URL with user info must be refused")
    };
    assert!(reason.contains("user info"), "{reason}");
    assert!(
        fake.seen().is_empty(),
        "nothing may be sent: {:?}",
        fake.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_cannot_send_a_credential_to_a_host_the_operator_did_not_name() {
    let fake = Fake::start().await;
    let host = Host::new(&fake, "");
    // `hcp` may go to 127.0.0.1 only; `localhost` is the same machine under
    // another name, which the operator did not list.
    let text = format!(
        "name = \"thief\"\nversion = \"0.0.1\"\ncomponent = \"plugin.wasm\"\n\
         [[http]]\nscheme = \"http\"\nhost = \"localhost\"\nport = {}\nmethods = [\"GET\"]\ncredential = \"hcp\"\n",
        fake.port
    );
    let manifest = Manifest::parse(&text, &host.path.join("plugin.toml")).expect("valid manifest");
    let why = host.caps.check_manifest(&manifest).unwrap_err();
    assert!(
        why.contains("credential `hcp`") && why.contains("[credentials.hcp]"),
        "{why}"
    );
    // The operator's host is fine.
    let allowed = host.plugin(
        "keyed",
        "fetch",
        &format!("{}/api/x", fake.url),
        &fake.rule("[\"GET\"]", "/api/", Some("hcp")),
    );
    host.call(&allowed).await;
    assert_eq!(
        header(&fake.seen_at("/api/x")[0].headers, "authorization"),
        "Token hcp-key"
    );
}

// ---------------------------------------------------------------- the real daemon

const HCP_SECRET: &str = "hcp_webhook_signing_secret_EXAMPLE";

#[tokio::test(flavor = "multi_thread")]
async fn in_the_daemon_hostile_plugins_fail_their_own_jobs_with_clear_reasons_and_the_others_deliver()
 {
    use fieldhook_store::EventStore;
    use fieldhook_store::queue::{Queue, TaskState, Topic};

    let dest = FakeDestination::start().await;
    let port: u16 = dest.url.rsplit(':').next().unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hcp.secret"), HCP_SECRET).unwrap();
    std::fs::write(dir.path().join("hcp.key"), "hcp-key").unwrap();
    let admin = AdminApi::new(dir.path());
    std::fs::write(
        dir.path().join("fieldhook.toml"),
        r#"
listen = "127.0.0.1:0"
[delivery]
timeout_secs = 5
max_attempts = 2
retry_base_ms = 50

[[sources]]
name = "hcp"
vendor = "housecall-pro"
secret_file = "hcp.secret"

[credentials.hcp]
hosts = ["127.0.0.1"]
kind = "api-key"
key_file = "hcp.key"
template = "Token {key}"
"#
        .to_owned()
            + &admin.config(),
    )
    .unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(
        &plugins,
        "accounting-sync",
        &guest("accounting-sync"),
        &format!(
            "name = \"accounting-sync\"\nversion = \"0.1.0\"\n[[subscriptions]]\nsource = \"hcp\"\n\
             [[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nmethods = [\"POST\"]\npath = \"/books/\"\n\
             [config]\nendpoint = \"{}/books/jobs\"\n",
            dest.url
        ),
    );
    let hostile = guest("hostile");
    let deliver_rule = format!(
        "[[http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\nmethods = [\"POST\"]\npath = \"/hcp/\"\ncredential = \"hcp\"\n"
    );
    for (name, mode, url, extra) in [
        (
            "denied",
            "fetch",
            "https://not-granted.example/v1".to_string(),
            String::new(),
        ),
        (
            "spin",
            "spin",
            String::new(),
            "[limits]\ncpu_ms = 200\n".to_string(),
        ),
        (
            "bomb",
            "memory",
            String::new(),
            "[limits]\nmemory_mb = 16\n".to_string(),
        ),
        (
            "gigantic",
            "gigantic",
            format!("{}/hcp/x", dest.url),
            deliver_rule.clone(),
        ),
        (
            "many",
            "many",
            format!("{}/hcp/x", dest.url),
            deliver_rule.clone(),
        ),
        (
            "forger",
            "auth-decision",
            format!("{}/hcp/x", dest.url),
            deliver_rule.clone(),
        ),
        (
            "honest",
            "deliver",
            format!("{}/hcp/jobs", dest.url),
            deliver_rule.clone(),
        ),
    ] {
        install_plugin(
            &plugins,
            name,
            &hostile,
            &format!(
                "name = \"{name}\"\nversion = \"0.0.1\"\n[[subscriptions]]\nsource = \"*\"\n{extra}\n\
                 [config]\nmode = \"{mode}\"\nurl = \"{url}\"\n"
            ),
        );
    }
    let daemon = DaemonProcess::start(&dir.path().join("fieldhook.toml"));
    let body = r#"{"event":"job.completed","job":{"id":"job_7f3e","invoice_number":"1042","total_amount":24500,"customer":{"id":"cus_d892","first_name":"Dana","last_name":"Reyes"}}}"#;
    let url = format!("{}/hooks/hcp", daemon.url);
    let resp = signed_housecall_pro(&reqwest::Client::new(), &url, HCP_SECRET, body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let got = dest.wait_for(2, Duration::from_secs(60)).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/books/jobs", "/hcp/jobs"]);
    let honest = got.iter().find(|r| r.path == "/hcp/jobs").unwrap();
    assert_eq!(
        honest.headers.get("authorization").unwrap(),
        "Token hcp-key"
    );
    // Wait for the retried failures (short backoff) to run out: all six
    // hostile jobs dead-lettered.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stats = admin.get_json("/stats").await;
        if stats["dlq"].as_u64() >= Some(6) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hostile jobs not all dead-lettered: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.stop();

    let store = EventStore::open(&dir.path().join("data").join("db")).unwrap();
    let queue = Queue::open(&store).unwrap();
    let jobs = queue.tasks(Topic::Jobs).unwrap();
    let job = |plugin: &str| {
        jobs.iter()
            .find(|t| t.id.ends_with(&format!(".{plugin}")))
            .unwrap_or_else(|| panic!("job of {plugin}"))
    };
    for (plugin, reason) in [
        ("denied", "host = \"not-granted.example\""),
        ("spin", "CPU limit of 200 ms"),
        ("bomb", "trapped"),
        ("gigantic", "over the 10485760-byte limit per delivery"),
        ("many", "asked for 10000 requests"),
        ("forger", "may not set `Authorization`"),
    ] {
        let j = job(plugin);
        assert_eq!(j.state, TaskState::Dead, "{plugin}: {j:?}");
        let last = &j.history.last().unwrap().outcome;
        assert!(last.contains(reason), "{plugin}: {last}");
    }
    for plugin in ["accounting-sync", "honest"] {
        assert_eq!(job(plugin).state, TaskState::Done, "{plugin}");
    }
}
