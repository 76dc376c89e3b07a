//! Shared harness for the end-to-end tests: guest builds, the real daemon
//! as a child process, a fake destination, and vendor signing done with the
//! hmac crate directly (independent of the daemon's verifiers).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

pub fn workspace_root() -> PathBuf {
    // host/daemon/ is two levels below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/daemon/ is inside the workspace")
        .to_owned()
}

/// Builds a guest crate of the workspace for wasm32-wasip2 (once per test
/// process) and returns the component's path.
pub fn guest(package: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<std::collections::HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.get(package) {
        return p.clone();
    }
    let root = workspace_root();
    ensure_wasm_target();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
            "--target-dir",
        ])
        .arg(&target_dir)
        // Small components load faster; guests need no debug info here.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building guest `{package}` failed");
    let path = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(path.exists(), "{} missing after build", path.display());
    built.insert(package.to_owned(), path.clone());
    path
}

/// What a runtime outside the daemon gets: default sandbox, no
/// credentials, no key-value store.
pub fn offline_caps() -> Arc<fieldhook_capabilities::Capabilities> {
    Arc::new(fieldhook_capabilities::Capabilities::offline(
        fieldhook_capabilities::Sandbox::default(),
    ))
}

/// Loads the guest fixture `package` into `runtime` with the manifest text
/// `manifest` (its `component` pointed at the fixture).
pub fn load_guest(
    runtime: &fieldhook_runtime::Runtime,
    package: &str,
    manifest: &str,
) -> fieldhook_runtime::LoadedPlugin {
    let component = guest(package);
    let mut m =
        fieldhook_policy::manifest::Manifest::parse(manifest, Path::new("/nowhere/plugin.toml"))
            .unwrap();
    m.component = component.clone();
    runtime
        .load_bytes(m, &std::fs::read(component).unwrap())
        .unwrap()
}

fn ensure_wasm_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
        .unwrap_or(false);
    if !installed {
        let ok = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`"
        );
    }
}

/// Installs a plugin into `plugins_dir/<name>/` with the given manifest text.
pub fn install_plugin(plugins_dir: &Path, name: &str, component: &Path, manifest: &str) {
    let dir = plugins_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(component, dir.join("plugin.wasm")).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
}

/// One request the fake destination received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct DestinationState {
    received: Mutex<Vec<Received>>,
    /// Statuses to answer with, in order; 200 once exhausted.
    script: Mutex<std::collections::VecDeque<u16>>,
}

/// A fake destination on 127.0.0.1 that records what it receives.
pub struct FakeDestination {
    pub url: String,
    state: Arc<DestinationState>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeDestination {
    pub async fn start() -> Self {
        let state = Arc::new(DestinationState::default());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let (addr, task) = serve_local(app).await;
        Self {
            url: format!("http://{addr}"),
            state,
            _task: task,
        }
    }

    /// Answer the next requests with these statuses.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(state): State<Arc<DestinationState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// Reads a just-started daemon's stdout until it prints the address it
/// listens on (`fieldhook listening on http://...`), and returns that URL.
pub fn wait_until_listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("fieldhook listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the daemon printed its listening address")
}

/// The real `fieldhook` binary, serving a configuration in a temp dir.
pub struct DaemonProcess {
    child: Child,
    pub url: String,
    pub config: PathBuf,
}

impl DaemonProcess {
    /// Starts `fieldhook serve --config <config>` and waits until it listens.
    pub fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldhook"))
            .args(["serve", "--config"])
            .arg(config)
            .env("FIELDHOOK_LOG", "info,fieldhook=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fieldhook starts");
        let url = wait_until_listening(&mut child);
        Self {
            child,
            url,
            config: config.to_owned(),
        }
    }

    /// Starts the daemon as [`DaemonProcess::start`] does, under `sh`, which
    /// first sets its open-file limits: the soft one, and the hard one
    /// when given.
    pub fn start_with_open_files(config: &Path, soft: u64, hard: Option<u64>) -> Self {
        let mut script = format!("ulimit -S -n {soft}");
        if let Some(hard) = hard {
            script.push_str(&format!(" && ulimit -H -n {hard}"));
        }
        script.push_str(" && exec \"$0\" serve --config \"$1\"");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_fieldhook"))
            .arg(config)
            .env("FIELDHOOK_LOG", "info,fieldhook=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh starts fieldhook");
        let url = wait_until_listening(&mut child);
        Self {
            child,
            url,
            config: config.to_owned(),
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`HUP`, `TERM`...) to the daemon.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal}");
    }

    /// SIGTERM, then waits at most `limit` for the process to exit; kills
    /// it and says so when it does not.
    pub fn stop_within(mut self, limit: Duration) -> Result<(), String> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("still running {limit:?} after SIGTERM"))
    }

    /// SIGKILL: the crash path.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Housecall Pro signature: hex HMAC-SHA256 over `{timestamp}.{body}`.
pub fn sign_housecall_pro(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The admin token of the end-to-end configs ([`AdminApi`]).
pub const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// A daemon's admin API, on a port picked for the test.
pub struct AdminApi {
    port: u16,
    /// `http://127.0.0.1:{port}`.
    pub url: String,
}

impl AdminApi {
    /// Picks a free port and writes the token file into the config dir.
    pub fn new(config_dir: &Path) -> Self {
        std::fs::write(config_dir.join("admin.token"), ADMIN_TOKEN).unwrap();
        let port = free_port();
        Self {
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The `[admin]` section of the daemon's config.
    pub fn config(&self) -> String {
        format!(
            "[admin]\nlisten = \"127.0.0.1:{}\"\ntoken_file = \"admin.token\"\n",
            self.port
        )
    }

    /// `GET path` with the token.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `GET path` with the token, as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }
}

/// A POST of `body` to `url`, signed with `secret` as Housecall Pro signs
/// (timestamp now); callers add what else they need and send it.
pub fn signed_housecall_pro(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    let ts = unix_now();
    let signature = sign_housecall_pro(secret, &ts, body.as_bytes());
    client
        .post(url)
        .header("content-type", "application/json")
        .header("Api-Timestamp", ts)
        .header("Api-Signature", signature)
        .body(body.to_owned())
}

pub fn unix_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// A free port on 127.0.0.1 (bound, then released), for a listener the
/// daemon opens itself (its admin API).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves `app` on 127.0.0.1 at a random port until the returned task is
/// dropped or aborted: the fakes (vendor APIs, destinations) the tests run.
pub async fn serve_local(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

pub fn local(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The manifest `[[http]]` rule granting a plugin the origin of `url`
/// (deliveries and a plugin's own requests need one).
pub fn http_grant(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    format!(
        "[[http]]\nscheme = \"http\"\nhost = \"{host}\"\nport = {port}\nmethods = [\"GET\", \"POST\", \"PUT\"]\n"
    )
}

// ---- JavaScript and Python guests ----------------------------------------
//
// Built with the SDKs' own build scripts (guest-sdk-js/build.mjs,
// guest-sdk-py/build.py), once per test process, and cached under
// `<target>/guests/{js,py}/` keyed by a hash of every input (the plugin's
// directory, the SDK, the WIT and the tool's pinned version), so a CI run
// whose sources did not change reuses the last build (each takes 30-60 s).

/// The componentize-py version the harness installs when none is on PATH
/// (keep in step with `.ci/run` and docs/plugin-guide.md).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.0";

/// Builds a JavaScript plugin (`entry` relative to the workspace root, e.g.
/// `plugins/servicetrade-job-status/plugin.js`) and returns the component.
pub fn js_guest(entry: &str) -> PathBuf {
    let root = workspace_root();
    let entry_path = root.join(entry);
    let plugin_dir = entry_path
        .parent()
        .expect("entry has a directory")
        .to_owned();
    let sdk = root.join("guest-sdk-js");
    let inputs = [
        plugin_dir.clone(),
        // Every SDK module, build.mjs and package-lock.json (hash_tree
        // skips node_modules).
        sdk.clone(),
        root.join("wit/0.2"),
    ];
    cached_build("js", entry, &inputs, |out| {
        ensure_js_tools(&sdk);
        let status = Command::new("node")
            .arg(sdk.join("build.mjs"))
            .arg(&entry_path)
            .arg("-o")
            .arg(out)
            .status()
            .expect("node runs (install Node.js 18+)");
        assert!(
            status.success(),
            "building the JavaScript guest {entry} failed"
        );
    })
}

/// Builds a Python plugin (`dir` relative to the workspace root, holding
/// `app.py`) and returns the component.
pub fn py_guest(dir: &str) -> PathBuf {
    let root = workspace_root();
    let plugin_dir = root.join(dir);
    let sdk = root.join("guest-sdk-py");
    let inputs = [
        plugin_dir.clone(),
        sdk.join("fieldhook"),
        sdk.join("build.py"),
        root.join("wit/0.2"),
    ];
    cached_build("py", dir, &inputs, |out| {
        let tool = componentize_py();
        let status = Command::new("python3")
            .arg(sdk.join("build.py"))
            .arg(&plugin_dir)
            .arg("-o")
            .arg(out)
            .arg("--componentize-py")
            .arg(&tool)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "building the Python guest {dir} failed");
    })
}

fn guests_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("guests")
}

/// Runs `build` into `<target>/guests/<lang>/<name>-<hash>.wasm` unless that
/// file exists; concurrent tests wait for one build of the same guest.
fn cached_build(lang: &str, name: &str, inputs: &[PathBuf], build: impl FnOnce(&Path)) -> PathBuf {
    type Slots = Mutex<std::collections::HashMap<String, Arc<OnceLock<PathBuf>>>>;
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    let key = format!("{lang}:{name}");
    let slot = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone();
    slot.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(lang.as_bytes());
        h.update(COMPONENTIZE_PY_VERSION.as_bytes());
        for input in inputs {
            hash_tree(&mut h, input);
        }
        let hash = hex::encode(&h.finalize()[..8]);
        let dir = guests_dir().join(lang);
        std::fs::create_dir_all(&dir).unwrap();
        let stem = name.trim_end_matches(".js").replace(['/', '.'], "_");
        let out = dir.join(format!("{stem}-{hash}.wasm"));
        if !out.exists() {
            let partial = dir.join(format!("{stem}-{hash}.wasm.partial-{}", std::process::id()));
            build(&partial);
            std::fs::rename(&partial, &out).unwrap();
        }
        out
    })
    .clone()
}

/// Hashes file names and contents under `path` in a stable order, skipping
/// build outputs.
fn hash_tree(h: &mut impl sha2::Digest, path: &Path) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if matches!(name, "node_modules" | "__pycache__" | "target" | ".git")
                || name.ends_with(".wasm")
            {
                continue;
            }
            hash_tree(h, &p);
        }
    } else if let Ok(bytes) = std::fs::read(path) {
        h.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
}

/// `npm install` in guest-sdk-js when its node_modules is missing (pinned by
/// package-lock.json).
fn ensure_js_tools(sdk: &Path) {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if sdk
            .join("node_modules/@bytecodealliance/componentize-js")
            .exists()
        {
            return;
        }
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(sdk)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`npm install` in guest-sdk-js failed: install Node.js 18+ and npm"
        );
    });
}

/// componentize-py from PATH when it is the pinned version, else installed
/// into a virtualenv under the target dir.
pub fn componentize_py() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let pinned = |tool: &Path| {
            Command::new(tool)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY_VERSION))
                .unwrap_or(false)
        };
        let on_path = PathBuf::from("componentize-py");
        if pinned(&on_path) {
            return on_path;
        }
        let venv = guests_dir().join("py-tools");
        let tool = venv.join("bin/componentize-py");
        if !pinned(&tool) {
            let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().map(|s| s.success()).unwrap_or(false)
                && Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", &format!("componentize-py=={COMPONENTIZE_PY_VERSION}")])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
            assert!(ok, "installing componentize-py {COMPONENTIZE_PY_VERSION} failed: pip install componentize-py=={COMPONENTIZE_PY_VERSION}");
        }
        tool
    })
    .clone()
}

/// The compiled-code cache shared by the end-to-end tests: a daemon's
/// `data_dir/compiled` links here (see [`link_compiled_cache`]), so a 12-18 MB
/// JS/Python component is compiled once per machine, not once per daemon.
pub fn shared_compiled_cache() -> PathBuf {
    guests_dir().join("compiled")
}

/// Compiles `component` into [`shared_compiled_cache`] with the daemon's own
/// runtime (once per test process per component; a no-op when cached).
/// JS/Python take 15 s or more each to compile; parallel tests wait here
/// instead of each daemon compiling the same code at once.
pub fn precompile(component: &Path) {
    type Slots = Mutex<std::collections::HashMap<PathBuf, Arc<OnceLock<()>>>>;
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let slot = SLOTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(component.to_owned())
        .or_default()
        .clone();
    slot.get_or_init(|| {
        // Compiling is parallel inside wasmtime already.
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let runtime = fieldhook_runtime::Runtime::new(
            fieldhook_runtime::CodeCache::new(&shared_compiled_cache()),
            offline_caps(),
        )
        .expect("the runtime starts");
        let manifest = fieldhook_policy::manifest::Manifest::parse(
            "name = \"precompile\"\nversion = \"0\"\n",
            &component.with_file_name("plugin.toml"),
        )
        .expect("a minimal manifest");
        let bytes = std::fs::read(component).expect("the component was built");
        let started = Instant::now();
        let loaded = runtime
            .load_bytes(manifest, &bytes)
            .expect("the component compiles");
        eprintln!(
            "precompiled {} ({:?}) in {:.1} s",
            component.display(),
            loaded.cache,
            started.elapsed().as_secs_f64()
        );
    });
}

/// Makes `data_dir/compiled` a link to [`shared_compiled_cache`].
pub fn link_compiled_cache(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::create_dir_all(shared_compiled_cache()).unwrap();
    std::os::unix::fs::symlink(shared_compiled_cache(), data_dir.join("compiled")).unwrap();
}

// ---- The operator console -------------------------------------------------

/// A client of a daemon's console over plain HTTP: it follows no redirect,
/// so tests see where each answer sends the browser, and keeps the session
/// cookie itself.
pub struct ConsoleClient {
    /// `http://127.0.0.1:{port}` of the admin listener.
    pub url: String,
    client: reqwest::Client,
    /// `fieldhook_console=...`, once signed in.
    pub cookie: Option<String>,
}

impl ConsoleClient {
    pub fn new(admin: &AdminApi) -> Self {
        Self {
            url: admin.url.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// A client whose connections come from `local` (any 127.x address
    /// reaches the loopback listener), to look like another operator.
    pub fn from_address(admin: &AdminApi, local: std::net::IpAddr) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(local)
                .build()
                .unwrap(),
            ..Self::new(admin)
        }
    }

    /// Posts the login form with `token`; keeps the cookie it sets.
    pub async fn login(&mut self, token: &str) -> reqwest::Response {
        let resp = self
            .client
            .post(format!("{}/console/login", self.url))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        resp
    }

    /// `GET path` with the session cookie, if any.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// `GET path` as text, asserting a 200.
    pub async fn page(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    /// A form `POST` with the session cookie and extra headers.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.post(format!("{}{path}", self.url)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }
}

/// The CSRF token a console page's forms carry.
pub fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("the page has a form with a CSRF token");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Headless chromium driven through chromedriver (Debian's `chromium` and
/// `chromium-driver`), on a free port; both stop when this is dropped.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs: apt-get install -y chromium chromium-driver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut chrome = serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"],
        });
        if Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = "/usr/bin/chromium".into();
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), chrome);
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session starts");
        Self { client, driver }
    }

    /// Saves a screenshot of the page as `<target>/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        path
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits for an element matching `css`; on timeout, fails with the
    /// page the browser is on.
    pub async fn wait_for(&self, css: &str) {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(fantoccini::Locator::Css(css))
            .await;
        if found.is_err() {
            let url = self.client.current_url().await.unwrap();
            let source = self.client.source().await.unwrap_or_default();
            panic!("no `{css}` on {url}:\n{source}");
        }
    }

    /// Ends the browser session (then drop stops chromedriver).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
