//! A plugin whose only purpose is to get past the sandbox. `mode` (manifest
//! `[config]`) picks the attempt; `url` is where it reaches. It uses the
//! SDK's thin `wasi:http` client, which adds no checks of its own, so every
//! refusal seen here comes from the host.
//!
//! - `fetch`: `GET url`, answers `Drop("<status> <body>")`.
//! - `redirect`: `GET url` and follows one redirect itself.
//! - `auth-header`: `GET url` with its own `Authorization` header.
//! - `auth-decision`: asks the host to deliver a request with `Authorization`.
//! - `deliver`: asks the host to deliver `POST url` (credentials by rule).
//! - `env-files`: reports what it can see of env, args, files and sockets.
//! - `memory`: allocates until it cannot.
//! - `spin`: loops forever.
//! - `gigantic`: returns a decision with a 20 MiB body.
//! - `many`: returns a decision with 10 000 requests.
//! - `kv`: increments a counter in its key-value store.
//! - `trap`: panics.
//! - `header-maps`, `big-bodies`, `log-flood`, `log-forge`, `denied-flood`:
//!   make the host hold memory or write its log on the plugin's behalf
//!   ([`hoard`]).

mod hoard;

use fieldhook_guest::{Decision, Event, Plugin, PluginError, Request, config, http, kv};

struct Hostile;

impl Plugin for Hostile {
    fn handle(_event: Event) -> Result<Decision, PluginError> {
        let url = config::get("url").unwrap_or_default();
        match config::get("mode").as_deref().unwrap_or("") {
            "fetch" => {
                let r = http::get(&url)?;
                Ok(Decision::drop(format!(
                    "{} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                )))
            }
            "redirect" => {
                let r = http::get(&url)?;
                let next = r
                    .header("location")
                    .ok_or_else(|| {
                        PluginError::fatal(format!("expected a redirect, got {}", r.status))
                    })?
                    .to_owned();
                let r = http::get(&next)?;
                Ok(Decision::drop(format!("followed to {next}: {}", r.status)))
            }
            "auth-header" => {
                let r = http::send(&Request::get(&url).header("Authorization", "Bearer forged"))?;
                Ok(Decision::drop(format!(
                    "sent with my own Authorization: {}",
                    r.status
                )))
            }
            "auth-decision" => Ok(Decision::deliver([Request::post(&url)
                .header("Authorization", "Bearer forged")
                .body("x")])),
            "deliver" => Ok(Decision::deliver([
                Request::post(&url).body("{\"hello\":1}")
            ])),
            "env-files" => Ok(Decision::drop(env_files())),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = n.wrapping_add(1);
                    std::hint::black_box(n);
                }
            }
            "gigantic" => Ok(Decision::deliver([
                Request::post(&url).body(vec![b'x'; 20 << 20])
            ])),
            "many" => Ok(Decision::deliver(
                (0..10_000).map(|i| Request::post(format!("{url}/{i}"))),
            )),
            "kv" => {
                let n: u64 = kv::get_json("count")?.unwrap_or(0) + 1;
                kv::set_json("count", &n, None)?;
                Ok(Decision::drop(format!("count={n}")))
            }
            "trap" => panic!("hostile: trapping on purpose"),
            "header-maps" => hoard::header_maps(),
            "big-bodies" => hoard::big_bodies(&url),
            "log-flood" => hoard::log_flood(),
            "log-forge" => hoard::log_forge(),
            "denied-flood" => hoard::denied_flood(&url),
            other => Err(PluginError::fatal(format!("unknown mode `{other}`"))),
        }
    }
}

/// What the sandbox lets through, one line per attempt.
fn env_files() -> String {
    let env = std::env::vars().count();
    let args = std::env::args().count();
    let passwd = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
    let cwd = std::fs::read_dir(".").map(|d| d.count());
    let tcp = std::net::TcpStream::connect("127.0.0.1:22").map(|_| ());
    format!("env={env} args={args} passwd={passwd:?} cwd={cwd:?} tcp={tcp:?}")
}

fieldhook_guest::export_plugin!(Hostile);
