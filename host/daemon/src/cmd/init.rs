//! `fieldhook init [DIR]`: a starter configuration with generated secrets,
//! a plugins directory, and the next commands to run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use rand::RngCore;

const CONFIG: &str = "fieldhook.toml";
const ADMIN_TOKEN: &str = "secrets/admin.token";
const WEBHOOK_SECRET: &str = "secrets/webhooks.secret";

/// Writes the starter files into `dir` (created if missing). Refuses to
/// overwrite anything: an existing configuration or secret is an operator's.
pub fn init(dir: &Path, listen: Option<&str>, data_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = dir.join(CONFIG);
    for path in [
        config.clone(),
        dir.join(ADMIN_TOKEN),
        dir.join(WEBHOOK_SECRET),
    ] {
        if path.exists() {
            bail!(
                "{} already exists; fieldhook init never overwrites. Choose another directory \
                 (fieldhook init DIR) or move the file away",
                path.display()
            );
        }
    }
    for sub in ["secrets", "plugins", "data"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    write_new(&dir.join(ADMIN_TOKEN), &token, 0o600)?;
    write_new(&dir.join(WEBHOOK_SECRET), &secret, 0o600)?;
    let mut text = STARTER.to_owned();
    if let Some(listen) = listen {
        let addr: std::net::SocketAddr = listen
            .parse()
            .with_context(|| format!("--listen {listen}: expected an address like 0.0.0.0:8080"))?;
        text = text.replacen(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{addr}\""),
            1,
        );
    }
    if let Some(data) = data_dir {
        let data = toml::Value::String(data.display().to_string());
        text = text.replacen("data_dir = \"data\"", &format!("data_dir = {data}"), 1);
    }
    write_new(&config, &text, 0o644)?;

    let shown = display_dir(dir);
    println!(
        "Wrote {shown}/{CONFIG}, secrets in {shown}/secrets/ (mode 600), and {shown}/plugins/."
    );
    println!();
    println!("Next:");
    println!("  fieldhook config check --config {shown}/{CONFIG}");
    println!("  fieldhook serve --config {shown}/{CONFIG}");
    println!(
        "  fieldhook plugin new {shown}/plugins/my-plugin      # a Rust plugin; --lang js|python"
    );
    println!("  fieldhook send --config {shown}/{CONFIG} --source webhooks --body-file event.json");
    println!("  fieldhook stats --config {shown}/{CONFIG}");
    println!();
    println!(
        "Point a Standard Webhooks sender at http://127.0.0.1:8080/hooks/webhooks with the \
         signing secret in {shown}/{WEBHOOK_SECRET}."
    );
    Ok(())
}

fn display_dir(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s.is_empty() { ".".into() } else { s }
}

/// Creates `path` with `mode`; fails if it exists (no race with another
/// writer: `create_new`).
fn write_new(path: &PathBuf, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The starter configuration: valid as written, every setting an operator
/// is likely to change shown with its default and what it does.
const STARTER: &str = r#"# fieldhook configuration, written by `fieldhook init`.
# Check it with `fieldhook config check --config fieldhook.toml`; apply changes
# to a running daemon with `systemctl reload fieldhook` (SIGHUP) or
# `POST /reload` on the admin API. Relative paths resolve against this file.

listen = "127.0.0.1:8080"      # webhooks arrive at POST /hooks/<source name>
data_dir = "data"              # the store and compiled plugin code; back it up
                               # with `fieldhook store backup DEST`
plugins_dir = "plugins"        # one sub-directory per plugin, loaded as they land
# max_body_bytes = 1048576     # larger bodies are refused
# dedupe_window_secs = 259200  # a redelivered webhook inside the window is stored once

# The admin API (events, dead letters, replay, stats, reload). Keep it on
# loopback or a private network.
[admin]
listen = "127.0.0.1:8081"
token_file = "secrets/admin.token"

# One [[sources]] block per vendor account. docs/vendors/ has each vendor's
# block (servicem8, servicetrade, servicetitan, housecall-pro, jobber, hmac...).
[[sources]]
name = "webhooks"                      # POST /hooks/webhooks
vendor = "standard-webhooks"
secret_file = "secrets/webhooks.secret"  # whsec_...: give it to the sender
# previous_secret_file = "secrets/webhooks.secret.old"  # during a rotation

# [delivery]
# timeout_secs = 10
# max_attempts = 2
# retry_base_ms = 1000

# Ceilings for plugins and their outbound HTTP (defaults shown).
# [sandbox]
# max_memory_mb = 1024
# max_timeout_ms = 120000
# rate_per_sec = 10.0          # per destination host:port, all plugins together

# Credentials the host adds to plugins' requests; plugins never see them, and
# `hosts` says where each may be sent.
# [credentials.books]
# hosts = ["api.example-books.com"]
# kind = "api-key"
# key_file = "secrets/books.key"
# header = "Authorization"
# template = "Bearer {key}"

# [retention]
# events_secs = 604800         # keep event payloads a week
# finished_secs = 604800       # keep finished jobs and deliveries a week
"#;
