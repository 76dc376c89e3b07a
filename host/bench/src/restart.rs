//! `fieldhook-bench restart`: how long `fieldhook serve` takes to become
//! ready on a store holding N events and their finished work, for several
//! N, so that start-up cost can be seen not to grow with history.
//!
//! Each store is filled through the store's own API (the events, then for
//! each a job done with one follow-up delivery, done too, with checkpoints
//! along the way as the daemon takes them), closed, and then the real
//! daemon binary is started on it. Ready means its admin API answers
//! `/readyz` with 200; the finished counts it reports must then match what
//! was filled, or the run fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fieldhook_core::decision::Outbound;
use fieldhook_core::event::{Message, NewEvent};
use fieldhook_core::task::{DeliveryPayload, JobPayload};
use fieldhook_store::queue::{NewTask, Queue, Settlement, TaskEnd, TaskLog, TaskState, Topic};
use fieldhook_store::{EventStore, Ingested};

/// What `fieldhook-bench restart` runs.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Store sizes, in events (each with a finished job and delivery).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
    events: Vec<usize>,
    /// The `fieldhook` binary (default: the one beside this benchmark).
    #[arg(long)]
    fieldhook: Option<PathBuf>,
    /// Body size of the stored events, bytes.
    #[arg(long, default_value_t = 920)]
    body_bytes: usize,
    /// Leave the filled stores in this directory (to look at a start-up
    /// more closely) instead of removing them.
    #[arg(long)]
    keep: Option<PathBuf>,
}

const BATCH: usize = 1_000;
const TOKEN: &str = "restart-bench-admin-token";

fn event(i: usize, body: &[u8], now: u64) -> NewEvent {
    NewEvent {
        source: "hcp".into(),
        vendor: "api-key".into(),
        kind: "job.completed".into(),
        entity: None,
        occurred_at: None,
        dedupe_key: Some(format!("job_{i:012}")),
        parsed: true,
        received_at_ms: now,
        message: std::sync::Arc::new(Message {
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.to_vec(),
        }),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    Ok(postcard::to_stdvec(value)?)
}

/// Fills a store in `db` with `n` events, each with a done job and a done
/// delivery; returns how long it took.
async fn fill(db: &Path, n: usize, body_bytes: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let store = EventStore::open(db).context("open the store")?;
    let queue = Queue::open(&store).context("open the task log")?;
    let body = vec![b'x'; body_bytes];
    let mut done = 0;
    while done < n {
        let now = fieldhook_core::time::now_ms();
        let batch: Vec<NewEvent> = (done..(done + BATCH).min(n))
            .map(|i| event(i, &body, now))
            .collect();
        done += batch.len();
        let ids: Vec<String> = store
            .ingest(batch, 3_600_000)
            .await?
            .into_iter()
            .map(|o| match o {
                Ingested::Stored(id) | Ingested::Duplicate(id) => id,
            })
            .collect();
        let jobs = ids
            .iter()
            .map(|id| {
                Ok(NewTask::new(
                    Topic::Jobs,
                    format!("{id}.accounting-sync"),
                    encode(&JobPayload {
                        event_id: id.clone(),
                        plugin: "accounting-sync".into(),
                        coalesced: 1,
                        events: vec![id.clone()],
                    })?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        queue.fanned_out(&jobs, ids.last().map(String::as_str), &[], now)?;
        for topic in Topic::ALL {
            let leases = queue.lease(topic, now, 60_000, BATCH)?.durable().await?;
            let settlements = leases
                .into_iter()
                .map(|lease| {
                    let follow_ups = match topic {
                        Topic::Jobs => {
                            let event_id = lease.id.trim_end_matches(".accounting-sync");
                            vec![NewTask::new(
                                Topic::Deliveries,
                                format!("{}.0", lease.id),
                                encode(&DeliveryPayload {
                                    event_id: event_id.to_owned(),
                                    plugin: "accounting-sync".into(),
                                    request: Outbound {
                                        method: "POST".into(),
                                        url: "https://books.example.com/api/jobs".into(),
                                        headers: vec![(
                                            "content-type".into(),
                                            b"application/json".to_vec(),
                                        )],
                                        body: vec![b'r'; 300],
                                        idempotency_key: None,
                                    },
                                    idempotency_key: format!("accounting-sync:{event_id}"),
                                })?,
                            )]
                        }
                        Topic::Deliveries | Topic::Schedules => Vec::new(),
                    };
                    Ok(Settlement {
                        lease,
                        end: TaskEnd::Done {
                            outcome: "ok".into(),
                            follow_ups,
                        },
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            queue.settle(settlements, now)?;
        }
        // As the daemon's checkpoint loop does, every so often.
        queue.checkpoint().await?;
    }
    queue.sync().await?;
    let depth = queue.depth();
    for topic in Topic::ALL {
        let finished = depth.get(topic, TaskState::Done);
        if finished != n as u64 {
            bail!(
                "filling left {finished} {} done, expected {n}",
                topic.name()
            );
        }
    }
    drop(queue);
    store.close().await?;
    Ok(started.elapsed())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the daemon on `data` and returns (time to ready, its `/stats`).
async fn start(binary: &Path, dir: &Path) -> anyhow::Result<(Duration, serde_json::Value)> {
    let admin_port = free_port()?;
    std::fs::create_dir_all(dir.join("plugins"))?;
    std::fs::write(dir.join("hcp.key"), "restart-bench-api-key")?;
    std::fs::write(dir.join("admin.token"), TOKEN)?;
    std::fs::write(
        dir.join("fieldhook.toml"),
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
plugins_dir = "plugins"

[admin]
listen = "127.0.0.1:{admin_port}"
token_file = "admin.token"

[[sources]]
name = "hcp"
vendor = "api-key"
secret_file = "hcp.key"
kind_field = "/event"
id_field = "/job/id"
"#
        ),
    )?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(dir.join("fieldhook.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{admin_port}");
    let ready = loop {
        if let Ok(r) = client
            .get(format!("{base}/readyz"))
            .bearer_auth(TOKEN)
            .send()
            .await
            && r.status().is_success()
        {
            break started.elapsed();
        }
        if let Some(status) = child.try_wait()? {
            bail!("fieldhook exited before it was ready ({status})");
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            bail!("fieldhook was not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let stats: serde_json::Value = client
        .get(format!("{base}/stats"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    Ok((ready, stats))
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let binary = match args.fieldhook.clone() {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("fieldhook"),
    };
    if !binary.exists() {
        bail!(
            "{} not found: build it beside the benchmark (`cargo build --release -p fieldhook -p fieldhook-bench`) or pass --fieldhook",
            binary.display()
        );
    }
    println!(
        "fieldhook-bench restart: stores of {:?} events, each with a done job and a done delivery; {}-byte bodies; {} cores",
        args.events,
        args.body_bytes,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let scratch = match &args.keep {
        Some(dir) => dir.clone(),
        None => crate::tempfile_dir()?,
    };
    for &n in &args.events {
        let dir = scratch.join(format!("store-{n}"));
        std::fs::create_dir_all(dir.join("data"))?;
        let filled = fill(&dir.join("data/db"), n, args.body_bytes).await?;
        let bytes = dir_size(&dir.join("data"));
        let (ready, stats) = start(&binary, &dir).await?;
        for topic in ["jobs", "deliveries"] {
            let done = stats["tasks"][topic]["done"].as_u64().unwrap_or(0);
            if done != n as u64 {
                bail!("after the restart the daemon counts {done} {topic} done, expected {n}");
            }
        }
        println!(
            "{n:>9} events + {} finished tasks ({:.1} GB on disk, filled in {:.0} s): ready in {} ms",
            2 * n,
            bytes as f64 / 1e9,
            filled.as_secs_f64(),
            ready.as_millis()
        );
        if args.keep.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    if args.keep.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            // Allocated blocks: sparse files count what they use.
            _ => e
                .metadata()
                .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                .unwrap_or(0),
        })
        .sum()
}
