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
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_owned()
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
        .args(["build", "--release", "--target", "wasm32-wasip2", "-p", package, "--target-dir"])
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
        assert!(ok, "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`");
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://{addr}"), state, _task: task }
    }

    /// Answer the next requests with these statuses.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses.iter().copied());
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
    state.received.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body });
    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
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
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("fieldhook listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the daemon printed its listening address");
        Self { child, url, config: config.to_owned() }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
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

pub fn unix_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
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
