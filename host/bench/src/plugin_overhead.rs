//! `fieldhook-bench plugin-overhead`: what a plugin costs per language.
//!
//! The same filter/map logic (keep a completed job, map it to a record,
//! deliver it) built three times, `tests/guests/overhead-{rust,js,py}`, is
//! loaded through [`fieldhook_runtime::Runtime`] and called on one 1 KiB
//! Housecall Pro `job.completed` event. Per language it reports the compile
//! time with an empty code cache and with a warm one, then p50/p99 of
//! `Runtime::call` (a fresh instance per call, as the daemon does today).
//! Rust is the baseline the other two are read against; all three must
//! return the same decision, or the run fails.
//!
//! Without `--rust/--js/--py` it builds the three components itself, with
//! the same commands an integrator uses (cargo for wasm32-wasip2,
//! `guest-sdk-js/build.mjs`, `guest-sdk-py/build.py`), into
//! `target/bench-plugins/`:
//!
//! ```sh
//! cargo run --release -p fieldhook-bench -- plugin-overhead
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fieldhook_policy::manifest::Manifest;
use fieldhook_runtime::{CacheOutcome, CodeCache, Decision, LoadedPlugin, Run, Runtime};

/// Options of the subcommand.
#[derive(clap::Args)]
pub struct Args {
    /// The Rust component (tests/guests/overhead-rust); built when absent.
    #[arg(long)]
    rust: Option<PathBuf>,
    /// The JavaScript component (tests/guests/overhead-js); built when absent.
    #[arg(long)]
    js: Option<PathBuf>,
    /// The Python component (tests/guests/overhead-py); built when absent.
    #[arg(long)]
    py: Option<PathBuf>,
    /// Timed calls per language.
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Untimed calls first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Event body size in bytes (padded with a `notes` field).
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
}

struct Row {
    language: &'static str,
    size_mb: f64,
    cold: Duration,
    warm: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Runs the benchmark and prints one row per language.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let event = std::sync::Arc::new(crate::plugin::event(args.body_bytes));
    let components = [
        ("rust", args.rust.clone().map_or_else(build_rust, Ok)?),
        ("javascript", args.js.clone().map_or_else(build_js, Ok)?),
        ("python", args.py.clone().map_or_else(build_py, Ok)?),
    ];
    let mut rows = Vec::new();
    let mut reference: Option<Decision> = None;
    for (language, path) in components {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let cache_dir =
            std::env::temp_dir().join(format!("fieldhook-bench-{}-{language}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache_dir);
        let (cold, _) = load(&cache_dir, language, &bytes, CacheOutcome::Compiled)?;
        // A second runtime over the same cache directory: the daemon's restart.
        let (warm, plugin_and_runtime) = load(&cache_dir, language, &bytes, CacheOutcome::Hit)?;
        let _ = std::fs::remove_dir_all(&cache_dir);
        let (runtime, plugin) = plugin_and_runtime;

        let mut first = None;
        for _ in 0..args.warmup.max(1) {
            let report = runtime.call(&plugin, &event, Run::FIRST).await;
            let decision = report.result.map_err(|e| {
                anyhow::anyhow!("{language} plugin failed: {e}; logs: {:?}", report.logs)
            })?;
            first.get_or_insert(decision);
        }
        let decision = first.unwrap_or(Decision::Filtered);
        match &reference {
            None => reference = Some(decision),
            Some(r) if same_decision(r, &decision) => {}
            Some(r) => bail!(
                "{language} decided differently from rust:\n  rust: {r:?}\n  {language}: {decision:?}"
            ),
        }
        let mut times = Vec::with_capacity(args.calls);
        for _ in 0..args.calls {
            let started = Instant::now();
            let report = runtime.call(&plugin, &event, Run::FIRST).await;
            times.push(started.elapsed());
            report
                .result
                .map_err(|e| anyhow::anyhow!("{language} plugin failed: {e}"))?;
        }
        times.sort();
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        rows.push(Row {
            language,
            size_mb: bytes.len() as f64 / 1e6,
            cold,
            warm,
            p50: pct(0.50),
            p99: pct(0.99),
            max: *times.last().unwrap_or(&Duration::ZERO),
        });
    }
    println!(
        "plugin overhead: {} B event, {} calls per language (fresh instance per call), filter + handle",
        event.body.len(),
        args.calls
    );
    println!(
        "{:<11} {:>8} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "language",
        "size MB",
        "compile",
        "cached load",
        "call p50",
        "call p99",
        "call max",
        "p50/rust"
    );
    let base = rows.first().map(|r| r.p50.as_secs_f64()).unwrap_or(1.0);
    for r in &rows {
        println!(
            "{:<11} {:>8.1} {:>10.2} s {:>9.1} ms {:>7.3} ms {:>7.3} ms {:>7.3} ms {:>7.1}x",
            r.language,
            r.size_mb,
            r.cold.as_secs_f64(),
            r.warm.as_secs_f64() * 1e3,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
            r.p50.as_secs_f64() / base,
        );
    }
    Ok(())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn out_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
        .join("bench-plugins")
}

fn run_build(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("building the {what} component...");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("building the {what} component failed: {cmd:?}");
    }
    Ok(())
}

fn build_rust() -> anyhow::Result<PathBuf> {
    let target = out_dir().join("cargo");
    run_build(
        "Rust",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "overhead-rust",
            ])
            .arg("--target-dir")
            .arg(&target)
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo"),
    )?;
    Ok(target.join("wasm32-wasip2/release/overhead_rust.wasm"))
}

fn build_js() -> anyhow::Result<PathBuf> {
    let out = out_dir().join("overhead-js.wasm");
    run_build(
        "JavaScript",
        Command::new("node")
            .arg("guest-sdk-js/build.mjs")
            .arg("tests/guests/overhead-js/plugin.js")
            .arg("-o")
            .arg(&out),
    )?;
    Ok(out)
}

fn build_py() -> anyhow::Result<PathBuf> {
    let out = out_dir().join("overhead-py.wasm");
    run_build(
        "Python",
        Command::new("python3")
            .arg("guest-sdk-py/build.py")
            .arg("tests/guests/overhead-py")
            .arg("-o")
            .arg(&out),
    )?;
    Ok(out)
}

type Loaded = (Runtime, LoadedPlugin);

/// Loads through a fresh runtime over `cache_dir`, checking the cache did what
/// the measurement claims.
fn load(
    cache_dir: &Path,
    language: &str,
    bytes: &[u8],
    expect: CacheOutcome,
) -> anyhow::Result<(Duration, Loaded)> {
    let runtime = Runtime::new(CodeCache::new(cache_dir), crate::plugin::offline())?;
    let manifest = Manifest::parse(
        "name = \"overhead\"\nversion = \"0\"\n[config]\nendpoint = \"http://127.0.0.1:9/books\"\n",
        Path::new("/bench/overhead/plugin.toml"),
    )?;
    let started = Instant::now();
    let plugin = runtime.load_bytes(manifest, bytes)?;
    let took = started.elapsed();
    if plugin.cache != expect {
        bail!(
            "{language}: expected a cache {expect:?}, got {:?}",
            plugin.cache
        );
    }
    Ok((took, (runtime, plugin)))
}

/// Same requests; the event id differs in nothing, so bodies compare as JSON.
fn same_decision(a: &Decision, b: &Decision) -> bool {
    match (a, b) {
        (Decision::Deliver(x), Decision::Deliver(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(x, y)| {
                    x.method == y.method
                        && x.url == y.url
                        && x.idempotency_key == y.idempotency_key
                        && serde_json::from_slice::<serde_json::Value>(&x.body).ok()
                            == serde_json::from_slice::<serde_json::Value>(&y.body).ok()
                })
        }
        _ => a == b,
    }
}
